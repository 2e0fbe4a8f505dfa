package httpapi

import (
	"container/list"
	"errors"
	"hash/maphash"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// Defaults of RateLimits.
const (
	// DefaultRateLimitClients caps how many client addresses the limiter
	// tracks at once; beyond it the least recently seen one is forgotten.
	DefaultRateLimitClients = 100000
	// rateLimitIdle is the shortest time an idle client address is kept.
	// An entry is dropped only once all its buckets would have refilled, so
	// idle expiry never hands a client a fresh budget early.
	rateLimitIdle = time.Minute
	// rateLimitSweep bounds the expired entries dropped per request (lazy
	// eviction: no janitor goroutine).
	rateLimitSweep = 8
	// rateLimitShards splits the limiter's state by address so that
	// concurrent requests of different clients rarely share a lock (every
	// request consults the limiter). Used only when every shard can still
	// track rateLimitShardMin addresses; small caps keep one exact LRU.
	rateLimitShards   = 16
	rateLimitShardMin = 64
)

// msgRateLimited is the error of a 429 answer.
const msgRateLimited = "rate limit exceeded"

// RateLimits configures a RateLimiter. A rate of 0 turns that limit off.
type RateLimits struct {
	// PerSecond and Burst limit every request of one client address
	// (token bucket: Burst requests at once, refilled at PerSecond).
	PerSecond float64
	Burst     int
	// BadAuthPerSecond and BadAuthBurst limit failed authentications
	// (403 invalid token) of one client address. Once that bucket is empty
	// every request of the address is answered 429 until it refills.
	BadAuthPerSecond float64
	BadAuthBurst     int
	// MaxClients caps the tracked client addresses (0 = DefaultRateLimitClients).
	MaxClients int
}

// RateLimiter holds the per-client-address token buckets of the HTTP API
// (Options.RateLimiter). A nil *RateLimiter limits nothing. It starts no
// goroutine: idle entries are dropped lazily, so there is nothing to stop.
//
// Client addresses are keyed by IP (an IPv6 address by its /64, which one
// host usually owns whole). The bad-auth budget is keyed by the address and
// never by the token presented: changing a token's case, padding it or
// inventing new ones does not reset it.
type RateLimiter struct {
	lim  RateLimits
	idle time.Duration
	seed maphash.Seed
	// shards hold the clients, an address always in the same one; each
	// tracks at most its share of MaxClients, evicting its least recently
	// seen address.
	shards []rateShard
}

// rateShard is one lock's worth of client addresses. mu guards every field.
type rateShard struct {
	mu      sync.Mutex
	max     int
	clients map[netip.Addr]*list.Element // of *rateClient
	lru     list.List                    // front = most recently seen
}

// rateClient is the state of one client address.
type rateClient struct {
	addr    netip.Addr
	seen    time.Time
	all     bucket
	badAuth bucket
}

// bucket is a token bucket; the zero value is full.
type bucket struct {
	used   bool
	tokens float64
	last   time.Time
}

// refill brings the bucket up to now.
func (b *bucket) refill(now time.Time, rate float64, burst int) {
	if !b.used {
		b.used, b.tokens, b.last = true, float64(burst), now
		return
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(float64(burst), b.tokens+d.Seconds()*rate)
		b.last = now
	}
}

// wait is how long until the bucket holds one token.
func (b *bucket) wait(rate float64) time.Duration {
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// NewRateLimiter returns a limiter for lim, or nil when every limit is off.
func NewRateLimiter(lim RateLimits) *RateLimiter {
	if lim.PerSecond <= 0 && lim.BadAuthPerSecond <= 0 {
		return nil
	}
	if lim.MaxClients <= 0 {
		lim.MaxClients = DefaultRateLimitClients
	}
	if lim.PerSecond > 0 && lim.Burst < 1 {
		lim.Burst = 1
	}
	if lim.BadAuthPerSecond > 0 && lim.BadAuthBurst < 1 {
		lim.BadAuthBurst = 1
	}
	idle := rateLimitIdle
	for _, full := range []time.Duration{refillTime(lim.PerSecond, lim.Burst), refillTime(lim.BadAuthPerSecond, lim.BadAuthBurst)} {
		if full > idle {
			idle = full
		}
	}
	n := 1
	if lim.MaxClients >= rateLimitShards*rateLimitShardMin {
		n = rateLimitShards
	}
	rl := &RateLimiter{lim: lim, idle: idle, seed: maphash.MakeSeed(), shards: make([]rateShard, n)}
	for i := range rl.shards {
		sh := &rl.shards[i]
		sh.max = lim.MaxClients / n
		sh.clients = make(map[netip.Addr]*list.Element)
		sh.lru.Init()
	}
	return rl
}

// shard is the shard of addr.
func (rl *RateLimiter) shard(addr netip.Addr) *rateShard {
	if len(rl.shards) == 1 {
		return &rl.shards[0]
	}
	b := addr.As16()
	return &rl.shards[maphash.Bytes(rl.seed, b[:])%uint64(len(rl.shards))]
}

// refillTime is how long an empty bucket takes to fill up.
func refillTime(rate float64, burst int) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(burst) / rate * float64(time.Second))
}

// client returns the state of addr at now in its shard sh, creating it
// (and evicting the shard's oldest entry when full). Called with sh.mu held.
func (rl *RateLimiter) client(sh *rateShard, addr netip.Addr, now time.Time) *rateClient {
	// Lazy expiry: drop a few entries idle long enough to be full again.
	for i := 0; i < rateLimitSweep; i++ {
		back := sh.lru.Back()
		if back == nil {
			break
		}
		rc := back.Value.(*rateClient)
		if now.Sub(rc.seen) < rl.idle || rc.addr == addr {
			break
		}
		sh.lru.Remove(back)
		delete(sh.clients, rc.addr)
	}
	if e, ok := sh.clients[addr]; ok {
		sh.lru.MoveToFront(e)
		rc := e.Value.(*rateClient)
		if now.After(rc.seen) {
			rc.seen = now
		}
		return rc
	}
	for len(sh.clients) >= sh.max {
		back := sh.lru.Back()
		sh.lru.Remove(back)
		delete(sh.clients, back.Value.(*rateClient).addr)
	}
	rc := &rateClient{addr: addr, seen: now}
	sh.clients[addr] = sh.lru.PushFront(rc)
	return rc
}

// Allow reports whether a request of addr may run at now, consuming from
// its request bucket; when not, it returns how long to wait. A request is
// refused while the address's bad-auth bucket is empty, before the token
// is even looked at, so a flood of bad tokens costs almost nothing.
func (rl *RateLimiter) Allow(addr netip.Addr, now time.Time) (bool, time.Duration) {
	if rl == nil {
		return true, 0
	}
	sh := rl.shard(addr)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	rc := rl.client(sh, addr, now)
	if rl.lim.BadAuthPerSecond > 0 {
		rc.badAuth.refill(now, rl.lim.BadAuthPerSecond, rl.lim.BadAuthBurst)
		if rc.badAuth.tokens < 1 {
			return false, rc.badAuth.wait(rl.lim.BadAuthPerSecond)
		}
	}
	if rl.lim.PerSecond > 0 {
		rc.all.refill(now, rl.lim.PerSecond, rl.lim.Burst)
		if rc.all.tokens < 1 {
			return false, rc.all.wait(rl.lim.PerSecond)
		}
		rc.all.tokens--
	}
	return true, 0
}

// FailedAuth records a failed authentication of addr at now.
func (rl *RateLimiter) FailedAuth(addr netip.Addr, now time.Time) {
	if rl == nil || rl.lim.BadAuthPerSecond <= 0 {
		return
	}
	sh := rl.shard(addr)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	rc := rl.client(sh, addr, now)
	rc.badAuth.refill(now, rl.lim.BadAuthPerSecond, rl.lim.BadAuthBurst)
	if rc.badAuth.tokens > 0 {
		rc.badAuth.tokens = math.Max(0, rc.badAuth.tokens-1)
	}
}

// Len is the number of client addresses tracked.
func (rl *RateLimiter) Len() int {
	if rl == nil {
		return 0
	}
	n := 0
	for i := range rl.shards {
		sh := &rl.shards[i]
		sh.mu.Lock()
		n += len(sh.clients)
		sh.mu.Unlock()
	}
	return n
}

// rateLimitKey is the limiter key of an address: the IP, or the /64 of an
// IPv6 address.
func rateLimitKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap().WithZone("")
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.Addr()
		}
	}
	return ip
}

// rateLimitExempt reports the requests no limit applies to: the health
// check (load balancers poll it). Node-to-node paths never reach serve's
// hook (they are answered before it).
func rateLimitExempt(r *http.Request) bool {
	return r.URL.Path == "/v1/sys/health"
}

// limitAddr is the client address a request is limited under: r.RemoteAddr,
// or on the leader, for a hop-marked forwarded request, the client address
// the forwarding node stamped and signed (clientAddr in role.go). Never
// X-Forwarded-For, which the client controls; a forged stamp does not
// verify and the request counts against its real RemoteAddr.
func (s *server) limitAddr(r *http.Request) (netip.Addr, bool) {
	ip, ok := s.clientAddr(r)
	if !ok {
		return netip.Addr{}, false
	}
	return rateLimitKey(ip), true
}

// rateLimit is serve()'s first check: false means it answered 429 with
// Retry-After.
func (s *server) rateLimit(c *call) bool {
	rl := s.opts.RateLimiter
	if rl == nil || rateLimitExempt(c.r) {
		return true
	}
	addr, ok := s.limitAddr(c.r)
	if !ok {
		return true
	}
	allowed, wait := rl.Allow(addr, s.opts.Now())
	if allowed {
		return true
	}
	secs := int64(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	c.w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	s.writeError(c, newError(http.StatusTooManyRequests, msgRateLimited))
	return false
}

// rateLimitDone runs when serve() returns: a 403 invalid-token answer given
// here (not one relayed from the leader, which counted it itself) consumes
// from the client address's bad-auth budget.
func (s *server) rateLimitDone(c *call) {
	rl := s.opts.RateLimiter
	if rl == nil || c.err == nil || c.forwarded {
		return
	}
	var ae *apiError
	if !errors.As(c.err, &ae) || ae.Status != http.StatusForbidden || ae.Msg != msgInvalidToken {
		return
	}
	if addr, ok := s.limitAddr(c.r); ok {
		rl.FailedAuth(addr, s.opts.Now())
	}
}
