package httpapi

import (
	"encoding/json"
	"flag"
	"os"
	"strings"
	"testing"
)

// TestBadInput sends malformed and hostile requests: each gets a clear
// {"errors":[…]} with Vault's status, and the server keeps serving.
func TestBadInput(t *testing.T) {
	e := newEnv(t, true)
	big := `{"display_name":"` + strings.Repeat("x", DefaultMaxRequestBytes+10) + `"}`
	cases := []struct {
		name, method, path, token, body string
		status                          int
		msg                             string
	}{
		{"malformed json", "POST", "/v1/auth/token/create", e.root, `{"ttl":`, 400, "unexpected EOF"},
		{"trailing garbage", "POST", "/v1/auth/token/create", e.root, `{} x`, 400, "invalid character"},
		{"json array", "POST", "/v1/auth/token/create", e.root, `[1,2]`, 400, "JSON object"},
		{"wrong type bool", "POST", "/v1/auth/token/create", e.root, `{"renewable":"maybe"}`, 400, `field "renewable"`},
		{"wrong type meta", "POST", "/v1/auth/token/create", e.root, `{"meta":42}`, 400, `field "meta"`},
		{"wrong type policies", "POST", "/v1/auth/token/create", e.root, `{"policies":{"a":1}}`, 400, `field "policies"`},
		{"bad duration", "POST", "/v1/auth/token/create", e.root, `{"ttl":"forever"}`, 400, `field "ttl"`},
		{"huge duration", "POST", "/v1/auth/token/create", e.root, `{"ttl":"99999999999999d"}`, 400, `field "ttl"`},
		{"fractional num_uses", "POST", "/v1/auth/token/create", e.root, `{"num_uses":1.5}`, 400, `field "num_uses"`},
		{"negative num_uses", "POST", "/v1/auth/token/create", e.root, `{"num_uses":-3}`, 400, "number of uses cannot be negative"},
		{"negative increment", "PUT", "/v1/auth/token/renew-self", e.root, `{"increment":-1}`, 400, "cannot provide negative value"},
		{"missing token", "GET", "/v1/auth/token/lookup-self", "", "", 403, "permission denied"},
		{"unknown token", "GET", "/v1/auth/token/lookup-self", "hvs.AAAAAAAAAAAAAAAAAAAAAAAA", "", 403, "invalid token"},
		{"missing required", "POST", "/v1/auth/token/lookup-accessor", e.root, `{}`, 400, "missing accessor"},
		{"unknown path", "GET", "/v1/auth/token/nope", e.root, "", 404, "unsupported path"},
		{"wrong method", "DELETE", "/v1/auth/token/lookup-self", e.root, "", 405, "unsupported operation"},
		{"oversized body", "POST", "/v1/auth/token/create", e.root, big, 413, "too large"},
		{"bad index header", "GET", "/v1/auth/token/lookup-self", e.root, "", 400, "X-Vault-Index"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.name == "bad index header" {
				hdr = []string{"X-Vault-Index", "!!!not base64"}
			}
			code, _, body := e.do(tc.method, tc.path, tc.token, tc.body, hdr...)
			var env struct {
				Errors []string `json:"errors"`
			}
			if err := json.Unmarshal([]byte(body), &env); err != nil || env.Errors == nil {
				t.Fatalf("body is not an error envelope: %q", body)
			}
			if code != tc.status || len(env.Errors) != 1 || !strings.Contains(env.Errors[0], tc.msg) {
				t.Fatalf("got %d %q, want %d containing %q", code, env.Errors, tc.status, tc.msg)
			}
			if code, _, _ := e.do("GET", "/v1/auth/token/lookup-self", e.root, ""); code != 200 {
				t.Fatalf("server stopped serving: %d", code)
			}
		})
	}
}

// TestEveryRouteRejectsBadInput sends every authenticated route a wrong-typed
// value for each declared field, and each write route an oversized body.
func TestEveryRouteRejectsBadInput(t *testing.T) {
	e := newEnv(t, true)
	s := newServer(e.node, Options{})
	for _, rt := range s.router.routes {
		for method := range rt.Ops {
			if method != "POST" && method != "PUT" {
				continue
			}
			path := strings.ReplaceAll(strings.ReplaceAll(rt.Path, "{token}", "x"), "{role_name}", "r")
			for name, f := range rt.Fields {
				if strings.Contains(rt.Path, "{"+name+"}") {
					continue
				}
				bad := `{"` + name + `":{"nested":[1]}}`
				if f.Type == Map {
					bad = `{"` + name + `":true}`
				}
				rec := record(s, method, path, e.root, bad)
				if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"errors":[`) {
					t.Errorf("%s %s field %s: %d %s", method, path, name, rec.Code, rec.Body.String())
				}
			}
			rec := record(s, method, path, e.root, `{"x":"`+strings.Repeat("a", DefaultMaxRequestBytes)+`"}`)
			if rec.Code != 413 {
				t.Errorf("%s %s oversized: %d", method, path, rec.Code)
			}
		}
	}
}

var updateDocs = flag.Bool("update", false, "rewrite docs/api.md")

// TestDocsUpToDate fails when docs/api.md is stale, or a route lacks a
// Summary or a field a Description. Regenerate: go test ./httpapi -run Docs -update.
func TestDocsUpToDate(t *testing.T) {
	s := newServer(nil, Options{})
	for _, rt := range append(s.tokenRoutes(), s.sysRoutes()...) {
		for m, op := range rt.Ops {
			if op.Summary == "" {
				t.Errorf("%s %s has no Summary", m, rt.Path)
			}
		}
		for n, f := range rt.Fields {
			if f.Description == "" {
				t.Errorf("%s field %s has no Description", rt.Path, n)
			}
		}
	}
	const file = "../docs/api.md"
	want := APIDocs()
	if *updateDocs {
		if err := os.MkdirAll("../docs", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(file)
	if err != nil || string(got) != string(want) {
		t.Fatalf("docs/api.md is stale (%v): run `go run ./httpapi/cmd/gendocs` or `go test ./httpapi -run Docs -update`", err)
	}
}
