package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"
)

// unauthenticatedAllowlist is every route that answers without a token,
// with the reason. TestEveryRouteRequiresAuth fails when a route table
// declares another Unauthenticated route, so adding one is a decision
// made here, not by accident.
var unauthenticatedAllowlist = map[string]string{
	"/v1/sys/health":      "load balancers and orchestrators poll it without credentials (Vault: unauthenticated)",
	"/v1/sys/init":        "GET reports whether the store is initialised; PUT initialises it once, before any token exists (Vault: unauthenticated)",
	"/v1/sys/seal-status": "clients and the CLI check it before they have a token (Vault: unauthenticated)",
	"/v1/sys/leader":      "clients find the active node with it (Vault: unauthenticated)",
}

// fillPath turns a route pattern into a concrete path.
func fillPath(pattern string) string {
	segs := strings.Split(pattern, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "...}") {
			segs[i] = "some/thing"
		} else if strings.HasPrefix(s, "{") {
			segs[i] = "thing"
		}
	}
	return strings.Join(segs, "/")
}

// unauthEnv is a fake leader with one token in every state S2 names.
type unauthEnv struct {
	h      http.Handler
	clock  *fakeClock
	root   string
	tokens []authCase
}

// authCase is one kind of credential presented.
type authCase struct {
	name   string
	header map[string]string // request headers carrying it
	// invalid: the token is not valid (unknown, revoked, expired, …): the
	// answer must be byte-identical to every other invalid one.
	invalid bool
}

func newUnauthEnv(t *testing.T) *unauthEnv {
	t.Helper()
	node := newFakeLeader()
	clock := &fakeClock{now: time.Now()}
	opts := Options{Now: clock.Now}
	root, err := InitRoot(context.Background(), node, "")
	if err != nil {
		t.Fatal(err)
	}
	e := &unauthEnv{h: New(node, opts), clock: clock, root: root}
	create := func(body string) (string, string) {
		w := e.do("POST", "/v1/auth/token/create", map[string]string{"X-Vault-Token": root}, body)
		var out struct {
			Auth struct {
				ClientToken string `json:"client_token"`
				Accessor    string `json:"accessor"`
			} `json:"auth"`
		}
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &out) != nil || out.Auth.ClientToken == "" {
			t.Fatalf("create %s: %d %s", body, w.Code, w.Body.String())
		}
		return out.Auth.ClientToken, out.Auth.Accessor
	}
	valid, validAcc := create(`{"ttl":"700h"}`)
	wrongPolicy, _ := create(`{"policies":["nothing-granted"],"no_default_policy":true,"ttl":"700h"}`)
	revoked, _ := create(`{"ttl":"700h"}`)
	if w := e.do("POST", "/v1/auth/token/revoke-self", map[string]string{"X-Vault-Token": revoked}, ""); w.Code != 204 {
		t.Fatalf("revoke-self: %d %s", w.Code, w.Body.String())
	}
	expired, _ := create(`{"ttl":"60s"}`)
	clock.Add(time.Hour) // expired is past its TTL; the others are not
	if w := e.do("GET", "/v1/auth/token/lookup-self", map[string]string{"X-Vault-Token": valid}, ""); w.Code != 200 {
		t.Fatalf("control token not valid: %d", w.Code)
	}
	nearMiss := []byte(valid)
	last := len(nearMiss) - 1
	if nearMiss[last] == 'A' {
		nearMiss[last] = 'B'
	} else {
		nearMiss[last] = 'A'
	}
	tok := func(v string) map[string]string { return map[string]string{"X-Vault-Token": v} }
	e.tokens = []authCase{
		{name: "no token", header: nil},
		{name: "empty token", header: tok("")},
		{name: "empty bearer", header: map[string]string{"Authorization": "Bearer "}},
		{name: "too short", header: tok("hvs.abc"), invalid: true},
		{name: "bad charset", header: tok("hvs.!!!!@@@@####$$$$%%%%^^^^"), invalid: true},
		{name: "10 KiB token", header: tok("hvs." + strings.Repeat("Z", 10<<10)), invalid: true},
		{name: "garbage batch token", header: tok("hvb.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), invalid: true},
		{name: "unknown", header: tok("hvs.UnknownUnknownUnknown00"), invalid: true},
		{name: "near miss", header: tok(string(nearMiss)), invalid: true},
		{name: "upper-cased", header: tok(strings.ToUpper(valid)), invalid: true},
		{name: "padded", header: tok(" " + valid + " "), invalid: true},
		{name: "revoked", header: tok(revoked), invalid: true},
		{name: "expired", header: tok(expired), invalid: true},
		{name: "accessor as token", header: tok(validAcc), invalid: true},
		{name: "revoked as bearer", header: map[string]string{"Authorization": "Bearer " + revoked}, invalid: true},
		{name: "valid, wrong policy", header: tok(wrongPolicy)},
	}
	return e
}

func (e *unauthEnv) do(method, path string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	return w
}

// TestEveryRouteRequiresAuth is S2's HTTP half: the route list comes from
// the router's tables, so no endpoint escapes. Every route × every method
// Vault's HTTP layer knows, with every kind of missing, malformed or
// invalid credential, answers 403 — except the allowlist — and the answers
// to every invalid token (unknown, near-miss, revoked, expired, accessor,
// …) are byte-identical on every route.
func TestEveryRouteRequiresAuth(t *testing.T) {
	e := newUnauthEnv(t)
	s := newServer(nil, Options{})
	methods := make([]string, 0, len(knownMethods))
	for m := range knownMethods {
		methods = append(methods, m)
	}
	sort.Strings(methods)

	// The allowlist is exact: no undeclared unauthenticated route, no
	// stale entry.
	seenUnauth := map[string]bool{}
	for _, rt := range s.router.routes {
		if rt.Unauthenticated {
			seenUnauth[rt.Path] = true
			if _, ok := unauthenticatedAllowlist[rt.Path]; !ok {
				t.Errorf("route %s is Unauthenticated but not in unauthenticatedAllowlist: add it with the reason, or require a token", rt.Path)
			}
		}
	}
	for p := range unauthenticatedAllowlist {
		if !seenUnauth[p] {
			t.Errorf("allowlist entry %s is not an unauthenticated route any more", p)
		}
	}

	var invalidBody string
	tested := map[string]int{}
	for _, rt := range s.router.routes {
		if rt.Unauthenticated {
			continue
		}
		path := fillPath(rt.Path)
		if got, _ := s.router.find(path); got != rt {
			t.Fatalf("filled path %s of %s routes to %v", path, rt.Path, got)
		}
		for _, m := range methods {
			for _, ac := range e.tokens {
				body := ""
				if m == "POST" || m == "PUT" || m == "PATCH" {
					body = `{"policies":["root"],"token":"x","accessor":"y","policy":"path \"*\" {capabilities=[\"sudo\"]}"}`
				}
				w := e.do(m, path, ac.header, body)
				tested[rt.Path]++
				if w.Code != http.StatusForbidden {
					t.Errorf("%s %s with %s: %d %s, want 403", m, path, ac.name, w.Code, w.Body.String())
					continue
				}
				if m == "HEAD" {
					continue
				}
				got := w.Body.String()
				switch {
				case ac.invalid:
					if invalidBody == "" {
						invalidBody = got
					}
					if got != invalidBody {
						t.Errorf("%s %s with %s: body %q differs from the other invalid tokens' %q", m, path, ac.name, got, invalidBody)
					}
				case ac.name == "valid, wrong policy":
					if !strings.Contains(got, "permission denied") {
						t.Errorf("%s %s with %s: body %q", m, path, ac.name, got)
					}
				default:
					if got != `{"errors":["permission denied"]}`+"\n" {
						t.Errorf("%s %s with %s: body %q", m, path, ac.name, got)
					}
				}
			}
		}
	}
	// 0 routes untested.
	for _, rt := range s.router.routes {
		if !rt.Unauthenticated && tested[rt.Path] != len(methods)*len(e.tokens) {
			t.Errorf("route %s tested %d times, want %d", rt.Path, tested[rt.Path], len(methods)*len(e.tokens))
		}
	}
	if want := `{"errors":["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"]}` + "\n"; invalidBody != want {
		t.Errorf("invalid-token body %q, want Vault's %q", invalidBody, want)
	}
	t.Logf("%d authenticated routes × %d methods × %d credentials: all 403; %d allowlisted routes", len(tested), len(methods), len(e.tokens), len(seenUnauth))

	// The allowlisted routes answer without a token (and never with a 5xx).
	for p := range unauthenticatedAllowlist {
		w := e.do("GET", p, nil, "")
		if w.Code >= 500 && !(p == "/v1/sys/health" && w.Code == 503) {
			t.Errorf("GET %s without a token: %d", p, w.Code)
		}
	}
}

// TestInvalidTokensIndistinguishable: unknown, near-miss, revoked and
// expired tokens get the same status, the same body bytes and the same
// header names on the validation endpoints, also through Authorization:
// Bearer.
func TestInvalidTokensIndistinguishable(t *testing.T) {
	e := newUnauthEnv(t)
	for _, path := range []string{"/v1/auth/token/lookup-self", "/v1/auth/token/renew-self", "/v1/auth/token/revoke-self", "/v1/sys/capabilities-self"} {
		for _, m := range []string{"GET", "POST"} {
			var ref *httptest.ResponseRecorder
			var refName string
			for _, ac := range e.tokens {
				if !ac.invalid {
					continue
				}
				w := e.do(m, path, ac.header, "")
				if ref == nil {
					ref, refName = w, ac.name
					continue
				}
				if w.Code != ref.Code || w.Body.String() != ref.Body.String() || headerNames(w.Header()) != headerNames(ref.Header()) {
					t.Errorf("%s %s: %s → %d %v %q; %s → %d %v %q", m, path, ac.name, w.Code, headerNames(w.Header()), w.Body.String(),
						refName, ref.Code, headerNames(ref.Header()), ref.Body.String())
				}
			}
		}
	}
}

func headerNames(h http.Header) string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}
