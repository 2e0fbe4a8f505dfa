package httpapi

import (
	"container/list"
	"crypto/sha256"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/tokend/tokend/fsm"
)

// Per-token rate limiting (-rate-limit-token), on top of the per-address
// limits of ratelimit.go.
//
// Where a request counts, so that a forwarded request counts once:
//   - the per-address request budget is charged on the node the client
//     reached; the leader does not charge a request another node forwarded
//     (it still refuses it while the address's bad-auth budget is empty);
//   - the per-token budget is charged on the node that authenticates and
//     serves the request: for a forwarded write the leader (the receiving
//     node forwards before looking at the token), for a local read the
//     node that answers it. Budgets are per node.
//
// The key of a token is its accessor, the canonical identity the state
// machine knows, never the string the client sent: a variant of a valid
// token (other case, padding) is a different, invalid token, which fails
// authentication and costs the address's bad-auth budget instead. Batch
// tokens have no accessor and are keyed by a digest of the whole blob
// (which authenticates itself: a modified blob does not open).

// tokenLimiter holds one token bucket per token, LRU-bounded like the
// address table.
type tokenLimiter struct {
	rate  float64
	burst int
	max   int
	idle  time.Duration

	mu     sync.Mutex
	tokens map[string]*list.Element // of *tokenBucket
	lru    list.List
}

// tokenBucket is the state of one token.
type tokenBucket struct {
	name string // the limiter key
	seen time.Time
	b    bucket
}

// newTokenLimiter returns the per-token limiter of lim, nil when off.
func newTokenLimiter(lim RateLimits) *tokenLimiter {
	if lim.TokenPerSecond <= 0 {
		return nil
	}
	burst := lim.TokenBurst
	if burst <= 0 {
		burst = int(math.Ceil(lim.TokenPerSecond))
	}
	idle := rateLimitIdle
	if full := refillTime(lim.TokenPerSecond, burst); full > idle {
		idle = full
	}
	max := lim.MaxClients
	if max <= 0 {
		max = DefaultRateLimitClients
	}
	tl := &tokenLimiter{rate: lim.TokenPerSecond, burst: burst, max: max, idle: idle, tokens: make(map[string]*list.Element)}
	tl.lru.Init()
	return tl
}

// allow charges one request to name at now, or says how long to wait.
func (tl *tokenLimiter) allow(name string, now time.Time) (bool, time.Duration) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for i := 0; i < rateLimitSweep; i++ {
		back := tl.lru.Back()
		if back == nil {
			break
		}
		tb := back.Value.(*tokenBucket)
		if now.Sub(tb.seen) < tl.idle || tb.name == name {
			break
		}
		tl.lru.Remove(back)
		delete(tl.tokens, tb.name)
	}
	var tb *tokenBucket
	if e, ok := tl.tokens[name]; ok {
		tl.lru.MoveToFront(e)
		tb = e.Value.(*tokenBucket)
	} else {
		for len(tl.tokens) >= tl.max {
			back := tl.lru.Back()
			tl.lru.Remove(back)
			delete(tl.tokens, back.Value.(*tokenBucket).name)
		}
		tb = &tokenBucket{name: name}
		tl.tokens[name] = tl.lru.PushFront(tb)
	}
	if now.After(tb.seen) {
		tb.seen = now
	}
	tb.b.refill(now, tl.rate, tl.burst)
	if tb.b.tokens < 1 {
		return false, tb.b.wait(tl.rate)
	}
	tb.b.tokens--
	return true, 0
}

// AllowToken charges one request made with the token whose key is key
// (tokenLimitKey) at now; when refused it returns how long to wait.
func (rl *RateLimiter) AllowToken(key string, now time.Time) (bool, time.Duration) {
	if rl == nil || rl.tokens == nil {
		return true, 0
	}
	return rl.tokens.allow(key, now)
}

// TokensTracked is the number of tokens the per-token limiter holds.
func (rl *RateLimiter) TokensTracked() int {
	if rl == nil || rl.tokens == nil {
		return 0
	}
	rl.tokens.mu.Lock()
	defer rl.tokens.mu.Unlock()
	return len(rl.tokens.tokens)
}

// tokenLimitKey is the limiter key of an authenticated token.
func tokenLimitKey(tok *fsm.Token, clientToken string) string {
	if tok.Accessor != "" {
		return "a:" + tok.Accessor
	}
	sum := sha256.Sum256([]byte(clientToken))
	return "b:" + string(sum[:])
}

// tokenRateLimit is serve()'s per-token check, run once the token is
// authenticated on the node that serves the request: false means it
// answered 429 with Retry-After.
func (s *server) tokenRateLimit(c *call, tok *fsm.Token, clientToken string) bool {
	rl := s.opts.RateLimiter
	if rl == nil || rl.tokens == nil {
		return true
	}
	ok, wait := rl.AllowToken(tokenLimitKey(tok, clientToken), s.opts.Now())
	if !ok {
		s.tooManyRequests(c, wait)
	}
	return ok
}

// forwardedByPeer reports a request another node forwarded: hop-marked
// with a client-address stamp that verifies (role.go). A client forging
// the headers fails the MAC and is charged as usual.
func (s *server) forwardedByPeer(r *http.Request) bool {
	if r.Header.Get(HopHeader) == "" {
		return false
	}
	v := r.Header.Get(headerClientAddr)
	if v == "" {
		return false
	}
	_, ok := s.verifyClientAddr(v, requestToken(r))
	return ok
}
