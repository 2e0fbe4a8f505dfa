package acl

import (
	"fmt"
	"strings"
	"testing"
)

// bigPolicy returns a policy with n exact, n prefix and n/10 segment rules:
// far more than a real token carries, to show evaluation does not scan.
func bigPolicy(tb testing.TB, n int) *Policy {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "path \"app%d/exact/item\" { capabilities = [\"read\"] }\n", i)
		fmt.Fprintf(&b, "path \"app%d/data/*\" { capabilities = [\"read\", \"list\"] }\n", i)
		if i%10 == 0 {
			fmt.Fprintf(&b, "path \"app%d/+/config\" { capabilities = [\"update\"] }\n", i)
		}
	}
	return mustParse(tb, "big", b.String())
}

func BenchmarkAllowed(b *testing.B) {
	def := mustParse(b, DefaultPolicyName, DefaultPolicyText)
	big := bigPolicy(b, 1000)
	cases := []struct {
		name string
		acl  *ACL
		req  Request
	}{
		{"default/exact", New(def), Request{Path: "auth/token/lookup-self", Operation: OpRead}},
		{"default/denied", New(def), Request{Path: "auth/token/create", Operation: OpUpdate}},
		{"default/segment", New(def), Request{Path: "identity/oidc/provider/p/authorize", Operation: OpRead}},
		{"big/exact", New(def, big), Request{Path: "app500/exact/item", Operation: OpRead}},
		{"big/prefix", New(def, big), Request{Path: "app500/data/some/deep/key", Operation: OpRead}},
		{"big/segment", New(def, big), Request{Path: "app500/x/config", Operation: OpUpdate}},
		{"big/nomatch", New(def, big), Request{Path: "nothing/here/at/all", Operation: OpRead}},
		{"big/list", New(def, big), Request{Path: "app7/data/", Operation: OpList}},
		{"params", New(mustParse(b, "p", `path "auth/token/create" { capabilities = ["update"] allowed_parameters = { "policies" = ["web", "db-*"] "ttl" = [] } }`)),
			Request{Path: "auth/token/create", Operation: OpUpdate, Params: map[string]any{"policies": []any{"web", "db-ro"}, "ttl": "1h"}}},
		{"root", New(Root()), Request{Path: "auth/token/accessors/", Operation: OpList, RootProtected: true}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if res := c.acl.Allowed(c.req); res.Allowed == (c.name == "default/denied" || c.name == "big/nomatch") {
					b.Fatalf("unexpected decision %+v", res)
				}
			}
		})
	}
}

func BenchmarkCapabilities(b *testing.B) {
	a := New(mustParse(b, DefaultPolicyName, DefaultPolicyText), bigPolicy(b, 1000))
	b.ReportAllocs()
	for b.Loop() {
		a.Capabilities("app500/data/key")
	}
}

func BenchmarkParseDefault(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(DefaultPolicyName, DefaultPolicyText); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNew is the cost of building a token's ACL from parsed policies
// (worth caching per policy set if it shows up in profiles).
func BenchmarkNew(b *testing.B) {
	def := mustParse(b, DefaultPolicyName, DefaultPolicyText)
	web := mustParse(b, "web", `path "secret/web/*" { capabilities = ["read", "list"] } path "auth/token/create" { capabilities = ["update"] }`)
	b.ReportAllocs()
	for b.Loop() {
		New(def, web)
	}
}
