package acl

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fuzzPaths are evaluated against every policy the fuzzer manages to parse,
// together with paths derived from the policy's own patterns.
var fuzzPaths = []string{
	"", "/", "auth/token/create", "auth/token/create/", "auth/token/roles/",
	"secret/a/config", "a/b/c/d", "foo/bar/baz", "x",
}

var fuzzOps = []Operation{OpRead, OpList, OpUpdate, OpCreate, OpDelete, OpPatch}

// FuzzParsePolicy: Parse never panics; every error is a *ParseError matching
// ErrInvalidPolicy; a parsed policy parses the same again from its Raw text;
// and two ACLs built from it decide every request identically.
func FuzzParsePolicy(f *testing.F) {
	seeds := []string{
		DefaultPolicyText,
		`path "auth/token/create" { capabilities = ["create", "update", "sudo"] }`,
		`{"path":{"auth/token/create":{"capabilities":["create","update","sudo"]}}}`,
		`path "secret/+/config" { capabilities = ["read"] } path "secret/*" { policy = "write" }`,
		`path "a" { capabilities = ["update"] allowed_parameters = { "x" = ["1", 2, true] } denied_parameters = { "*" = [] } required_parameters = ["x"] min_wrapping_ttl = "1m" max_wrapping_ttl = 3600 }`,
		`path "a/+/c*" { capabilities = ["deny"] }`,
		"path \"x\" {\n  capabilities = [\"read\"\n}\n",
		`path "x" { capabilities = ["fly"] }`,
		`path "+*" { capabilities = ["read"] }`,
		`path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }`,
		base64.StdEncoding.EncodeToString([]byte(`path "a" { capabilities = ["read"] }`)),
		"path \"a\" {\n capabilities = [\"read\"]\n capabilities = [\"list\"]\n}",
		`{"path": [{"a": {"capabilities": ["read"]}}]}`,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		p, err := Parse("fuzz", text)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error %T %q is not a ParseError", err, err)
			}
			return
		}
		// Raw holds the decoded text; unless that is itself valid base64 it
		// must parse to the same rules.
		if _, b64 := base64.StdEncoding.DecodeString(p.Raw); b64 != nil && p.Raw != "" {
			again, err := Parse("fuzz", p.Raw)
			if err != nil {
				t.Fatalf("Raw does not parse again: %v", err)
			}
			if !reflect.DeepEqual(again.Paths, p.Paths) {
				t.Fatalf("reparse differs:\n%+v\n%+v", again.Paths, p.Paths)
			}
		}
		a1, a2 := New(p), New(p, p)
		paths := append([]string(nil), fuzzPaths...)
		for _, r := range p.Paths {
			paths = append(paths, r.Path, r.Path+"/", r.Path+"x/y", strings.ReplaceAll(r.Path, "+", "seg"))
		}
		for _, path := range paths {
			if c1, c2 := a1.Capabilities(path), a2.Capabilities(path); !reflect.DeepEqual(c1, c2) {
				t.Fatalf("Capabilities(%q) differ: %q vs %q", path, c1, c2)
			}
			for _, op := range fuzzOps {
				req := Request{Path: path, Operation: op, Params: map[string]any{"x": "1", "y": []any{"a", 2.0}}}
				r1, r2, r3 := a1.Allowed(req), a1.Allowed(req), a2.Allowed(req)
				if r1 != r2 || r1 != r3 {
					t.Fatalf("%s %q: %+v / %+v / %+v", op, path, r1, r2, r3)
				}
			}
		}
	})
}
