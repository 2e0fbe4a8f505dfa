package httpapi

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock for the limiter tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestRateLimiterBurstAndRefill(t *testing.T) {
	rl := NewRateLimiter(RateLimits{PerSecond: 10, Burst: 5})
	a := netip.MustParseAddr("192.0.2.1")
	now := time.Unix(1000, 0)
	for i := 0; i < 5; i++ {
		if ok, _ := rl.Allow(a, now); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := rl.Allow(a, now)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("after burst: ok=%v wait=%v, want refused with wait in (0,100ms]", ok, wait)
	}
	// Another address has its own budget.
	if ok, _ := rl.Allow(netip.MustParseAddr("192.0.2.2"), now); !ok {
		t.Fatal("other address refused")
	}
	// 100ms refills one token.
	now = now.Add(100 * time.Millisecond)
	if ok, _ := rl.Allow(a, now); !ok {
		t.Fatal("refused after refill")
	}
	if ok, _ := rl.Allow(a, now); ok {
		t.Fatal("allowed beyond refill")
	}
	// A long pause refills only up to the burst.
	now = now.Add(time.Hour)
	n := 0
	for ok, _ := rl.Allow(a, now); ok; ok, _ = rl.Allow(a, now) {
		n++
	}
	if n != 5 {
		t.Fatalf("after a long pause allowed %d, want burst 5", n)
	}
}

func TestRateLimiterBadAuth(t *testing.T) {
	rl := NewRateLimiter(RateLimits{BadAuthPerSecond: 2, BadAuthBurst: 3})
	a := netip.MustParseAddr("192.0.2.1")
	now := time.Unix(1000, 0)
	for i := 0; i < 3; i++ {
		if ok, _ := rl.Allow(a, now); !ok {
			t.Fatalf("request %d refused before the bad-auth budget is used", i)
		}
		rl.FailedAuth(a, now)
	}
	ok, wait := rl.Allow(a, now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("after 3 failures: ok=%v wait=%v, want refused, 500ms", ok, wait)
	}
	if ok, _ := rl.Allow(netip.MustParseAddr("192.0.2.2"), now); !ok {
		t.Fatal("other address refused")
	}
	if ok, _ := rl.Allow(a, now.Add(500*time.Millisecond)); !ok {
		t.Fatal("still refused after refill")
	}
}

func TestRateLimiterEviction(t *testing.T) {
	rl := NewRateLimiter(RateLimits{PerSecond: 1, Burst: 1, MaxClients: 3})
	now := time.Unix(1000, 0)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}) }
	for i := 0; i < 10; i++ {
		rl.Allow(addr(i), now)
		if n := rl.Len(); n > 3 {
			t.Fatalf("tracking %d addresses, cap 3", n)
		}
	}
	// The most recent ones are kept: 9 is still limited.
	if ok, _ := rl.Allow(addr(9), now); ok {
		t.Fatal("most recent address forgotten")
	}
	// Idle entries are dropped lazily once they would be full again.
	now = now.Add(2 * rateLimitIdle)
	rl.Allow(addr(100), now)
	if n := rl.Len(); n != 1 {
		t.Fatalf("after idle expiry tracking %d addresses, want 1", n)
	}
	if NewRateLimiter(RateLimits{}) != nil {
		t.Fatal("limiter with every limit off is not nil")
	}
	var off *RateLimiter
	if ok, _ := off.Allow(addr(1), now); !ok {
		t.Fatal("nil limiter refused")
	}
	off.FailedAuth(addr(1), now)
}

func TestRateLimitKeyIPv6(t *testing.T) {
	a := rateLimitKey(netip.MustParseAddr("2001:db8::1"))
	b := rateLimitKey(netip.MustParseAddr("2001:db8::ffff:1234"))
	c := rateLimitKey(netip.MustParseAddr("2001:db8:0:1::1"))
	if a != b || a == c {
		t.Fatalf("IPv6 keys %v %v %v: want one /64 per key", a, b, c)
	}
	if k := rateLimitKey(netip.MustParseAddr("::ffff:192.0.2.1")); k != netip.MustParseAddr("192.0.2.1") {
		t.Fatalf("4in6 key %v", k)
	}
}

// rlEnv is an API handler with a rate limiter and a fake clock.
type rlEnv struct {
	h     http.Handler
	clock *fakeClock
	root  string
}

func newRLEnv(t *testing.T, lim RateLimits) *rlEnv {
	t.Helper()
	node := newFakeLeader()
	clock := &fakeClock{now: time.Now()}
	opts := testOptions(io.Discard)
	opts.Now = clock.Now
	opts.RateLimiter = NewRateLimiter(lim)
	root, err := InitRoot(context.Background(), node, "")
	if err != nil {
		t.Fatalf("InitRoot: %v", err)
	}
	return &rlEnv{h: New(node, opts), clock: clock, root: root}
}

func (e *rlEnv) do(remote, path, token string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	r.RemoteAddr = remote
	if token != "" {
		r.Header.Set("X-Vault-Token", token)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

func TestRateLimitBadTokenFlood(t *testing.T) {
	e := newRLEnv(t, RateLimits{BadAuthPerSecond: 20, BadAuthBurst: 100})
	const a, b = "192.0.2.10:5000", "198.51.100.7:6000"
	bad := "hvs.notavalidtokenatall0000000"
	for i := 0; i < 100; i++ {
		if w := e.do(a, "/v1/auth/token/lookup-self", bad); w.Code != http.StatusForbidden {
			t.Fatalf("bad token %d: status %d, want 403", i, w.Code)
		}
	}
	// The budget is per address: case changes, padding and new tokens
	// do not reset it, and neither does a valid token.
	for _, tok := range []string{bad, strings.ToUpper(bad), " " + bad + " ", bad + "\t", "other", e.root} {
		w := e.do(a, "/v1/auth/token/lookup-self", tok)
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("token variant after the flood: status %d, want 429", w.Code)
		}
		if got := strings.TrimSpace(w.Body.String()); got != `{"errors":["rate limit exceeded"]}` {
			t.Fatalf("429 body %s", got)
		}
		if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
		}
	}
	// Health stays exempt.
	if w := e.do(a, "/v1/sys/health", ""); w.Code == http.StatusTooManyRequests {
		t.Fatal("sys/health rate limited")
	}
	// Another address with a valid token is served.
	for i := 0; i < 50; i++ {
		if w := e.do(b, "/v1/auth/token/lookup-self", e.root); w.Code != http.StatusOK {
			t.Fatalf("valid client: status %d, want 200", w.Code)
		}
	}
	// After the refill the flooder is served again.
	e.clock.Add(time.Second)
	if w := e.do(a, "/v1/auth/token/lookup-self", e.root); w.Code != http.StatusOK {
		t.Fatalf("after refill: status %d, want 200", w.Code)
	}
}

func TestRateLimitValidTrafficUnderDefaults(t *testing.T) {
	// The server's defaults: requests unlimited, bad auth 20/s burst 100.
	e := newRLEnv(t, RateLimits{Burst: 4000, BadAuthPerSecond: 20, BadAuthBurst: 100})
	for i := 0; i < 2000; i++ {
		if w := e.do("192.0.2.10:5000", "/v1/auth/token/lookup-self", e.root); w.Code != http.StatusOK {
			t.Fatalf("request %d: status %d, want 200", i, w.Code)
		}
	}
	// With a request limit, a client below it is never refused.
	e = newRLEnv(t, RateLimits{PerSecond: 2000, Burst: 4000})
	for i := 0; i < 3000; i++ {
		if i%100 == 0 {
			e.clock.Add(50 * time.Millisecond) // 2000 req/s
		}
		if w := e.do("192.0.2.10:5000", "/v1/auth/token/lookup-self", e.root); w.Code != http.StatusOK {
			t.Fatalf("request %d: status %d, want 200", i, w.Code)
		}
	}
}

func TestRateLimitForgedForwardHeader(t *testing.T) {
	// A client claiming to be forwarded, with a bogus stamped address,
	// still counts under its own address.
	e := newRLEnv(t, RateLimits{BadAuthPerSecond: 1, BadAuthBurst: 2})
	for i := 0; i < 3; i++ {
		r := httptest.NewRequest("GET", "/v1/auth/token/lookup-self", nil)
		r.RemoteAddr = "192.0.2.10:5000"
		r.Header.Set("X-Vault-Token", "bad")
		r.Header.Set(HopHeader, "1")
		r.Header.Set(headerClientAddr, "203.0.113."+strconv.Itoa(i)+" 0 mac")
		r.Header.Set("X-Forwarded-For", "203.0.113.99")
		w := httptest.NewRecorder()
		e.h.ServeHTTP(w, r)
		if i == 2 && w.Code != http.StatusTooManyRequests {
			t.Fatalf("third bad request with forged headers: status %d, want 429", w.Code)
		}
	}
}

// TestRateLimiterSharded: with a cap large enough to shard, every address
// keeps its own budget, the cap still bounds the state, the most recently
// seen addresses are kept, and concurrent use is safe.
func TestRateLimiterSharded(t *testing.T) {
	const maxClients = rateLimitShards * rateLimitShardMin
	rl := NewRateLimiter(RateLimits{PerSecond: 1, Burst: 1, MaxClients: maxClients})
	if len(rl.shards) != rateLimitShards {
		t.Fatalf("%d shards, want %d", len(rl.shards), rateLimitShards)
	}
	now := time.Unix(1000, 0)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := 0; i < 5*maxClients; i++ {
		if ok, _ := rl.Allow(addr(i), now); !ok {
			t.Fatalf("first request of address %d refused", i)
		}
		if n := rl.Len(); n > maxClients {
			t.Fatalf("tracking %d addresses, cap %d", n, maxClients)
		}
	}
	// The last address of the run is remembered (and limited) in its shard.
	if ok, _ := rl.Allow(addr(5*maxClients-1), now); ok {
		t.Fatal("most recent address forgotten")
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				a := addr(1_000_000 + g*1000 + i)
				rl.Allow(a, now)
				rl.FailedAuth(a, now)
			}
		}()
	}
	wg.Wait()
	if n := rl.Len(); n > maxClients {
		t.Fatalf("tracking %d addresses after the concurrent run, cap %d", n, maxClients)
	}
}
