package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
)

// benchWriter is a reusable http.ResponseWriter that keeps only the status
// and the body length, so that a benchmark's allocs/op are the adapter's
// own (httptest.ResponseRecorder allocates a buffer and a header snapshot
// of its own per request).
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header { return w.h }

func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

func (w *benchWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

// benchFollower returns the adapter of a fake follower (holding a read
// lease: not stale, leader known) replicated from a fake leader, and the ID
// of a token created on the leader with the given create body; an empty
// body returns the leader's adapter and the root token instead.
func benchFollower(b *testing.B, createBody string) (http.Handler, string) {
	b.Helper()
	leader := newFakeLeader()
	root, err := InitRoot(context.Background(), leader, "")
	if err != nil {
		b.Fatal(err)
	}
	if createBody == "" {
		return New(leader, Options{}), root
	}
	rec := record(New(leader, Options{}), "POST", "/v1/auth/token/create", root, createBody)
	var m struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || rec.Code != http.StatusOK {
		b.Fatalf("create: %d %v %s", rec.Code, err, rec.Body)
	}
	follower := newFakeFollower(leader, "http://127.0.0.1:1")
	follower.replicate(0)
	return New(follower, Options{}), m.Auth.ClientToken
}

// BenchmarkLookupSelf is lookup-self through the adapter alone (no
// network, no client), sequentially, so that allocs/op are the read path's
// own allocations per request. "follower/root-child" is the token the
// over-HTTP BenchmarkFollowerLookupSelf (test/) uses: a child of root, so
// root policies and the ACL's root shortcut; "follower/default" is a
// typical service token whose ACL (the default policy) is evaluated;
// "leader/root" is the root token on the leader.
func BenchmarkLookupSelf(b *testing.B) {
	for _, bc := range []struct{ name, body string }{
		{"follower/root-child", `{"ttl":"24h"}`},
		{"follower/default", `{"policies":["default"],"ttl":"24h"}`},
		{"leader/root", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h, tok := benchFollower(b, bc.body)
			benchGets(b, h, tok)
		})
	}
}

// BenchmarkBareHandler is the in-process baseline of BenchmarkLookupSelf: a
// plain handler writing a body of the same size.
func BenchmarkBareHandler(b *testing.B) {
	h, tok := benchFollower(b, `{"ttl":"24h"}`)
	body := record(h, "GET", "/v1/auth/token/lookup-self", tok, "").Body.Bytes()
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	benchGets(b, bare, tok)
}

func benchGets(b *testing.B, h http.Handler, tok string) {
	req := httptest.NewRequest("GET", "/v1/auth/token/lookup-self", nil)
	req.Header.Set("X-Vault-Token", tok)
	w := &benchWriter{h: http.Header{}}
	h.ServeHTTP(w, req)
	if w.status != http.StatusOK {
		b.Fatalf("lookup-self: status %d", w.status)
	}
	b.SetBytes(int64(w.n))
	b.ReportAllocs()
	for b.Loop() {
		w.reset()
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("lookup-self: status %d", w.status)
		}
	}
}

// BenchmarkLookupSelfParallel is follower lookup-self through the adapter
// from 64 goroutines, without and with the rate limiter of the server's
// defaults (failed authentications limited per address, which every
// request consults): the limiter's lock is the one the read path shares
// between all requests.
func BenchmarkLookupSelfParallel(b *testing.B) {
	for _, bc := range []struct {
		name string
		rl   *RateLimiter
	}{
		{"no-limiter", nil},
		{"default-limiter", NewRateLimiter(RateLimits{BadAuthPerSecond: 20, BadAuthBurst: 100})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			leader := newFakeLeader()
			root, err := InitRoot(context.Background(), leader, "")
			if err != nil {
				b.Fatal(err)
			}
			rec := record(New(leader, Options{}), "POST", "/v1/auth/token/create", root, `{"policies":["default"],"ttl":"24h"}`)
			var m struct {
				Auth struct {
					ClientToken string `json:"client_token"`
				} `json:"auth"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				b.Fatal(err)
			}
			follower := newFakeFollower(leader, "http://127.0.0.1:1")
			follower.replicate(0)
			h := New(follower, Options{RateLimiter: bc.rl})
			b.ReportAllocs()
			b.SetParallelism(32)
			var client atomic.Int32
			b.RunParallel(func(pb *testing.PB) {
				// Each goroutine is its own client address.
				n := client.Add(1)
				req := httptest.NewRequest("GET", "/v1/auth/token/lookup-self", nil)
				req.RemoteAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(n >> 8), byte(n)}), 1234).String()
				req.Header.Set("X-Vault-Token", m.Auth.ClientToken)
				w := &benchWriter{h: http.Header{}}
				for pb.Next() {
					w.reset()
					h.ServeHTTP(w, req)
					if w.status != http.StatusOK {
						b.Errorf("lookup-self: status %d", w.status)
						return
					}
				}
			})
		})
	}
}
