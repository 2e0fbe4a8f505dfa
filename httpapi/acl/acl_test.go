package acl

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// check is one row of an evaluator table.
type check struct {
	path    string
	op      Operation
	allowed bool
}

func runChecks(t *testing.T, a *ACL, checks []check) {
	t.Helper()
	for _, c := range checks {
		res := a.Allowed(Request{Path: c.path, Operation: c.op})
		if res.Allowed != c.allowed {
			t.Errorf("%s %s: Allowed = %v, want %v (reason %q)", c.op, c.path, res.Allowed, c.allowed, res.DeniedReason)
		}
		if !res.Allowed && res.DeniedReason == "" {
			t.Errorf("%s %s: denied without a reason", c.op, c.path)
		}
	}
}

func aclOf(t *testing.T, docs ...string) *ACL {
	t.Helper()
	var ps []*Policy
	for i, d := range docs {
		ps = append(ps, mustParse(t, "p"+string(rune('a'+i)), d))
	}
	return New(ps...)
}

func TestAllowedCustomPolicy(t *testing.T) {
	a := aclOf(t, `
path "auth/token/create" { capabilities = ["create", "update"] }
path "auth/token/lookup" { capabilities = ["update"] }
path "auth/token/roles/*" { capabilities = ["read", "list"] }
path "auth/token/roles" { capabilities = ["list"] }
path "secret/+/config" { capabilities = ["read", "patch"] }
path "kv/data/*" { capabilities = ["create", "read", "update", "delete"] }
path "kv/data/locked" { capabilities = ["deny"] }
`)
	runChecks(t, a, []check{
		{"auth/token/create", OpUpdate, true},
		{"auth/token/create", OpCreate, true},
		{"auth/token/create", OpRead, false},
		{"auth/token/create", OpDelete, false},
		{"/auth/token/create", OpUpdate, true}, // leading slash ignored
		{"auth/token/create/role1", OpUpdate, false},
		{"auth/token/create-orphan", OpUpdate, false},
		{"auth/token/lookup", OpUpdate, true},
		{"auth/token/lookup", OpRead, false},
		{"auth/token/lookup-self", OpRead, false},
		{"auth/token/roles/web", OpRead, true},
		{"auth/token/roles/web", OpUpdate, false},
		{"auth/token/roles/", OpList, true},
		{"auth/token/roles", OpList, true},
		{"auth/token/roles", OpRead, false},
		{"secret/app/config", OpRead, true},
		{"secret/app/config", OpPatch, true},
		{"secret/app/config", OpUpdate, false},
		{"secret/a/b/config", OpRead, false},
		{"secret/app/config/x", OpRead, false},
		{"secret//config", OpRead, true}, // "+" matches an empty segment, as in Vault
		{"kv/data/anything/deep", OpDelete, true},
		{"kv/data/", OpRead, true},
		{"kv/data", OpRead, false},
		{"kv/data/locked", OpRead, false},
		{"kv/data/locked/child", OpRead, true},
		{"sys/policies/acl/x", OpRead, false},
		{"auth/token/create", Operation("help"), false},
	})
}

func TestAllowedRoot(t *testing.T) {
	for _, a := range []*ACL{New(Root()), New(mustParse(t, "x", `path "a" { capabilities = ["deny"] }`), Root())} {
		res := a.Allowed(Request{Path: "anything/at/all", Operation: OpDelete, RootProtected: true})
		if !res.Allowed || !res.RootPrivs || !res.IsRoot {
			t.Errorf("root: %+v", res)
		}
		if !a.IsRoot() || !a.Sudo("x") {
			t.Error("root ACL must be root and have sudo everywhere")
		}
		if got := a.Capabilities("a"); !reflect.DeepEqual(got, []string{"root"}) {
			t.Errorf("root Capabilities = %q", got)
		}
	}
	// A policy merely named "root" is not the root policy.
	a := New(mustParse(t, "root", `path "a" { capabilities = ["read"] }`))
	if a.IsRoot() || a.Allowed(Request{Path: "b", Operation: OpRead}).Allowed {
		t.Error("a parsed policy named root must not make a root ACL")
	}
}

func TestAllowedNilAndEmpty(t *testing.T) {
	var nilACL *ACL
	for _, a := range []*ACL{nilACL, New(), New(nil, nil), {}} {
		res := a.Allowed(Request{Path: "auth/token/lookup-self", Operation: OpRead})
		if res.Allowed || res.RootPrivs || res.IsRoot || res.DeniedReason == "" {
			t.Errorf("empty ACL: %+v", res)
		}
		if got := a.Capabilities("auth/token/lookup-self"); !reflect.DeepEqual(got, []string{"deny"}) {
			t.Errorf("empty Capabilities = %q", got)
		}
		if a.Sudo("x") || a.IsRoot() {
			t.Error("empty ACL must not have sudo or be root")
		}
	}
}

func TestAllowedSudo(t *testing.T) {
	a := aclOf(t, `
path "auth/token/accessors" { capabilities = ["list", "sudo"] }
path "auth/token/revoke-orphan" { capabilities = ["update"] }
path "auth/token/create" { capabilities = ["update", "sudo"] }
path "sys/leases/revoke-prefix/*" { capabilities = ["update", "sudo"] }
path "sys/leases/revoke-force/*" { capabilities = ["sudo"] }
`)
	tests := []struct {
		path    string
		op      Operation
		sudoReq bool
		allowed bool
		root    bool
	}{
		{"auth/token/accessors/", OpList, true, true, true},
		{"auth/token/accessors", OpList, true, true, true},
		{"auth/token/revoke-orphan", OpUpdate, true, false, false},
		{"auth/token/revoke-orphan", OpUpdate, false, true, false},
		{"auth/token/create", OpUpdate, true, true, true},
		{"sys/leases/revoke-prefix/auth/token/create/web", OpUpdate, true, true, true},
		// sudo alone grants nothing but the root privilege.
		{"sys/leases/revoke-force/auth/token/create", OpUpdate, true, false, true},
		{"sys/leases/revoke-force/auth/token/create", OpRead, false, false, true},
	}
	for _, tt := range tests {
		res := a.Allowed(Request{Path: tt.path, Operation: tt.op, RootProtected: tt.sudoReq})
		if res.Allowed != tt.allowed || res.RootPrivs != tt.root || res.IsRoot {
			t.Errorf("%s %s sudo=%v: %+v, want allowed=%v rootPrivs=%v", tt.op, tt.path, tt.sudoReq, res, tt.allowed, tt.root)
		}
	}
	if !a.Sudo("auth/token/create") || a.Sudo("auth/token/revoke-orphan") || a.Sudo("auth/token/create/x") {
		t.Error("Sudo is wrong")
	}
	// Sudo uses read semantics: no retry without the trailing slash.
	if a.Sudo("auth/token/accessors/") {
		t.Error("Sudo must not strip a trailing slash")
	}
}

// TestMatchOrdering covers VAULT-API.md §4.2: exact over glob, then the most
// specific non-exact match, and only the winner's capabilities apply.
func TestMatchOrdering(t *testing.T) {
	tests := []struct {
		name  string
		doc   string
		path  string
		list  bool
		wantC []string
	}{
		{
			name:  "exact_beats_glob",
			doc:   `path "secret/foo" { capabilities = ["read"] } path "secret/*" { capabilities = ["deny"] }`,
			path:  "secret/foo",
			wantC: []string{"read"},
		},
		{
			name:  "glob_still_covers_the_rest",
			doc:   `path "secret/foo" { capabilities = ["read"] } path "secret/*" { capabilities = ["deny"] }`,
			path:  "secret/bar",
			wantC: []string{"deny"},
		},
		{
			name:  "star_matches_trailing_slash",
			doc:   `path "auth/token/*" { capabilities = ["update"] }`,
			path:  "auth/token/",
			wantC: []string{"update"},
		},
		{
			name:  "star_does_not_match_parent",
			doc:   `path "auth/token/*" { capabilities = ["update"] }`,
			path:  "auth/token",
			wantC: []string{"deny"},
		},
		{
			name:  "longest_prefix_wins",
			doc:   `path "secret/*" { capabilities = ["read"] } path "secret/app/*" { capabilities = ["update"] }`,
			path:  "secret/app/x",
			wantC: []string{"update"},
		},
		{
			name:  "no_union_across_patterns",
			doc:   `path "secret/*" { capabilities = ["read"] } path "secret/app/*" { capabilities = ["update"] }`,
			path:  "secret/app/x",
			wantC: []string{"update"},
		},
		{
			name:  "later_first_wildcard_wins",
			doc:   `path "foo/+/baz" { capabilities = ["update"] } path "foo/bar/+" { capabilities = ["read"] }`,
			path:  "foo/bar/baz",
			wantC: []string{"read"},
		},
		{
			name:  "glob_position_beats_earlier_plus",
			doc:   `path "foo/+" { capabilities = ["update"] } path "foo/a*" { capabilities = ["read"] }`,
			path:  "foo/ab",
			wantC: []string{"read"},
		},
		{
			name:  "segment_beats_prefix_at_same_position",
			doc:   `path "foo/*" { capabilities = ["update"] } path "foo/+" { capabilities = ["read"] }`,
			path:  "foo/bar",
			wantC: []string{"read"},
		},
		{
			name:  "prefix_when_segment_count_differs",
			doc:   `path "foo/*" { capabilities = ["update"] } path "foo/+" { capabilities = ["read"] }`,
			path:  "foo/bar/baz",
			wantC: []string{"update"},
		},
		{
			name:  "non_prefix_beats_prefix",
			doc:   `path "foo/+/ba*" { capabilities = ["update"] } path "foo/+/bar" { capabilities = ["read"] }`,
			path:  "foo/x/bar",
			wantC: []string{"read"},
		},
		{
			name:  "fewer_wildcards_win",
			doc:   `path "foo/+/+/baz" { capabilities = ["update"] } path "foo/+/bar/baz" { capabilities = ["read"] }`,
			path:  "foo/x/bar/baz",
			wantC: []string{"read"},
		},
		{
			name:  "longer_pattern_wins",
			doc:   `path "foo/+/bar/b*" { capabilities = ["update"] } path "foo/+/bar/ba*" { capabilities = ["read"] }`,
			path:  "foo/x/bar/baz",
			wantC: []string{"read"},
		},
		{
			name:  "lexicographically_larger_wins",
			doc:   `path "a/+/+/d" { capabilities = ["update"] } path "a/+/c/+" { capabilities = ["read"] }`,
			path:  "a/b/c/d",
			wantC: []string{"read"},
		},
		{
			name:  "segment_prefix_needs_the_segment",
			doc:   `path "foo/+/*" { capabilities = ["read"] }`,
			path:  "foo/x",
			wantC: []string{"deny"},
		},
		{
			name:  "segment_prefix_matches_deeper",
			doc:   `path "foo/+/*" { capabilities = ["read"] }`,
			path:  "foo/x/y/z",
			wantC: []string{"read"},
		},
		{
			name:  "bare_star_matches_everything",
			doc:   `path "*" { capabilities = ["list"] }`,
			path:  "anything/here",
			wantC: []string{"list"},
		},
		{
			name:  "list_semantics_exact_without_slash",
			doc:   `path "auth/token/roles" { capabilities = ["list"] }`,
			path:  "auth/token/roles/",
			wantC: []string{"list"},
		},
		{
			// The bare path is tried first, so the more specific "foo/+"
			// beats the glob that matches only the slashed form.
			name:  "list_semantics_trimmed_first",
			doc:   `path "foo/+" { capabilities = ["list"] } path "foo/bar/*" { capabilities = ["deny"] }`,
			path:  "foo/bar/",
			wantC: []string{"list"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := aclOf(t, tt.doc)
			if got := a.Capabilities(tt.path); !reflect.DeepEqual(got, tt.wantC) {
				t.Errorf("Capabilities(%q) = %q, want %q", tt.path, got, tt.wantC)
			}
		})
	}
}

func TestListSemanticsOnlyForList(t *testing.T) {
	a := aclOf(t, `path "foo/+" { capabilities = ["list", "read"] } path "foo/bar/*" { capabilities = ["deny"] }`)
	runChecks(t, a, []check{
		{"foo/bar/", OpList, true},
		{"foo/bar/", OpRead, false}, // read does not retry without the slash
		{"foo/bar", OpRead, true},
	})
}

func TestMergeAcrossPolicies(t *testing.T) {
	t.Run("capabilities_union", func(t *testing.T) {
		a := aclOf(t, `path "secret/*" { capabilities = ["read"] }`, `path "secret/*" { capabilities = ["update"] }`)
		if got := a.Capabilities("secret/x"); !reflect.DeepEqual(got, []string{"read", "update"}) {
			t.Errorf("Capabilities = %q", got)
		}
	})
	t.Run("deny_wins_either_order", func(t *testing.T) {
		for _, docs := range [][]string{
			{`path "secret/*" { capabilities = ["read", "sudo"] }`, `path "secret/*" { capabilities = ["deny"] }`},
			{`path "secret/*" { capabilities = ["deny"] }`, `path "secret/*" { capabilities = ["read", "sudo"] }`},
			{`path "secret/*" { policy = "deny" }`, `path "secret/*" { policy = "sudo" }`},
		} {
			a := aclOf(t, docs...)
			res := a.Allowed(Request{Path: "secret/x", Operation: OpRead})
			if res.Allowed || res.RootPrivs {
				t.Errorf("%q: %+v", docs, res)
			}
			if got := a.Capabilities("secret/x"); !reflect.DeepEqual(got, []string{"deny"}) {
				t.Errorf("%q: Capabilities = %q", docs, got)
			}
		}
	})
	t.Run("deny_is_per_pattern", func(t *testing.T) {
		a := aclOf(t, `path "secret/foo" { capabilities = ["read"] }`, `path "secret/*" { capabilities = ["deny"] }`)
		runChecks(t, a, []check{{"secret/foo", OpRead, true}, {"secret/bar", OpRead, false}})
	})
	t.Run("segment_rules_merge", func(t *testing.T) {
		a := aclOf(t, `path "a/+/c" { capabilities = ["read"] }`, `path "a/+/c" { capabilities = ["list"] }`)
		if got := a.Capabilities("a/b/c"); !reflect.DeepEqual(got, []string{"list", "read"}) {
			t.Errorf("Capabilities = %q", got)
		}
	})
	t.Run("same_pattern_twice_in_one_policy", func(t *testing.T) {
		a := aclOf(t, `path "a" { capabilities = ["read"] } path "a" { capabilities = ["update"] }`)
		if got := a.Capabilities("a"); !reflect.DeepEqual(got, []string{"read", "update"}) {
			t.Errorf("Capabilities = %q", got)
		}
	})
	t.Run("merge_does_not_mutate_policies", func(t *testing.T) {
		p1 := mustParse(t, "p1", `path "a" { capabilities = ["read"] allowed_parameters = { "x" = ["1"] } }`)
		p2 := mustParse(t, "p2", `path "a" { capabilities = ["update"] allowed_parameters = { "x" = ["2"] } required_parameters = ["x"] }`)
		before := p1.Paths[0]
		beforeAllowed := append([]any(nil), p1.Paths[0].AllowedParameters["x"]...)
		New(p1, p2)
		New(p1, p2)
		if p1.Paths[0].Capabilities != before.Capabilities || !reflect.DeepEqual(p1.Paths[0].AllowedParameters["x"], beforeAllowed) ||
			len(p1.Paths[0].RequiredParameters) != 0 {
			t.Errorf("p1 mutated: %+v", p1.Paths[0])
		}
	})
	t.Run("unknown_policy_is_nil", func(t *testing.T) {
		a := New(nil, mustParse(t, "d", DefaultPolicyText), nil)
		runChecks(t, a, []check{{"auth/token/lookup-self", OpRead, true}})
	})
}

func TestDefaultPolicyGrants(t *testing.T) {
	a := New(mustParse(t, DefaultPolicyName, DefaultPolicyText))
	runChecks(t, a, []check{
		{"auth/token/lookup-self", OpRead, true},
		{"auth/token/lookup-self", OpUpdate, false}, // POST lookup-self is 403 with default only
		{"auth/token/renew-self", OpUpdate, true},
		{"auth/token/renew-self", OpRead, false},
		{"auth/token/revoke-self", OpUpdate, true},
		{"sys/capabilities-self", OpUpdate, true},
		{"sys/capabilities", OpUpdate, false},
		{"sys/capabilities-accessor", OpUpdate, false},
		{"auth/token/create", OpUpdate, false},
		{"auth/token/create", OpCreate, false},
		{"auth/token/create-orphan", OpUpdate, false},
		{"auth/token/lookup", OpUpdate, false},
		{"auth/token/lookup-accessor", OpUpdate, false},
		{"auth/token/renew", OpUpdate, false},
		{"auth/token/revoke", OpUpdate, false},
		{"auth/token/roles/", OpList, false},
		{"auth/token/accessors/", OpList, false},
		{"sys/policies/acl/", OpList, false},
		{"sys/policies/acl/default", OpRead, false},
		{"sys/leases/renew", OpUpdate, true},
		{"sys/renew", OpUpdate, true},
		{"sys/leases/lookup", OpUpdate, true},
		{"cubbyhole/mine", OpCreate, true},
		{"cubbyhole/", OpList, true},
		{"sys/wrapping/unwrap", OpUpdate, true},
		{"sys/tools/hash/sha2-256", OpUpdate, true},
		{"sys/control-group/request", OpUpdate, true},
		{"identity/oidc/provider/p1/authorize", OpRead, true},
		{"identity/oidc/provider/p1/authorize", OpUpdate, true},
		{"identity/oidc/provider/p1/x/authorize", OpRead, false},
		{"sys/internal/ui/resultant-acl", OpRead, true},
		// Templated rules never match: tokend tokens have no entity.
		{"identity/entity/id/{{identity.entity.id}}", OpRead, false},
		{"identity/entity/id/abc", OpRead, false},
	})
	for path, want := range map[string][]string{
		"auth/token/renew-self":  {"update"},
		"auth/token/lookup-self": {"read"},
		"auth/token/create":      {"deny"},
		"cubbyhole/x":            {"create", "delete", "list", "read", "update"},
	} {
		if got := a.Capabilities(path); !reflect.DeepEqual(got, want) {
			t.Errorf("Capabilities(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestParameters(t *testing.T) {
	a := aclOf(t, `
path "auth/token/create" {
  capabilities = ["update", "create"]
  allowed_parameters = {
    "policies" = ["web", "db-*"]
    "ttl" = []
    "num_uses" = [1, 2]
    "renewable" = [true]
  }
  denied_parameters = {
    "policies" = ["db-admin"]
  }
}
path "auth/token/create-orphan" {
  capabilities = ["update"]
  allowed_parameters = { "*" = [] }
  denied_parameters = { "id" = [] }
  required_parameters = ["policies"]
}
path "auth/token/roles/*" {
  capabilities = ["update", "list"]
  denied_parameters = { "*" = [] }
}
path "auth/token/lookup" {
  capabilities = ["update"]
  allowed_parameters = { "*" = [] "token" = ["*abc"] }
}
`)
	tests := []struct {
		name    string
		path    string
		op      Operation
		params  map[string]any
		allowed bool
	}{
		{"no_params", "auth/token/create", OpUpdate, nil, true},
		{"allowed_value", "auth/token/create", OpUpdate, map[string]any{"policies": "web"}, true},
		{"key_case_insensitive", "auth/token/create", OpUpdate, map[string]any{"Policies": "web"}, true},
		{"glob_value", "auth/token/create", OpUpdate, map[string]any{"policies": []any{"web", "db-ro"}}, true},
		{"comma_string_all_allowed", "auth/token/create", OpUpdate, map[string]any{"policies": "web, db-ro"}, true},
		{"comma_string_one_not_allowed", "auth/token/create", OpUpdate, map[string]any{"policies": "web,admin"}, false},
		{"list_one_not_allowed", "auth/token/create", OpUpdate, map[string]any{"policies": []any{"web", "admin"}}, false},
		{"typed_string_slice", "auth/token/create", OpUpdate, map[string]any{"policies": []string{"web", "db-x"}}, true},
		{"denied_value_wins_over_glob", "auth/token/create", OpUpdate, map[string]any{"policies": []any{"web", "db-admin"}}, false},
		{"denied_in_comma_string", "auth/token/create", OpUpdate, map[string]any{"policies": "db-admin,web"}, false},
		{"unlisted_param", "auth/token/create", OpUpdate, map[string]any{"ttl": "1h", "period": "1h"}, false},
		{"any_value_param", "auth/token/create", OpCreate, map[string]any{"ttl": "768h"}, true},
		{"number_from_json_float", "auth/token/create", OpUpdate, map[string]any{"num_uses": float64(2)}, true},
		{"number_from_json_number", "auth/token/create", OpUpdate, map[string]any{"num_uses": json.Number("1")}, true},
		{"number_not_allowed", "auth/token/create", OpUpdate, map[string]any{"num_uses": float64(3)}, false},
		{"bool_allowed", "auth/token/create", OpUpdate, map[string]any{"renewable": true}, true},
		{"bool_not_allowed", "auth/token/create", OpUpdate, map[string]any{"renewable": false}, false},
		{"nil_value_not_allowed", "auth/token/create", OpUpdate, map[string]any{"renewable": nil}, false},
		{"required_present", "auth/token/create-orphan", OpUpdate, map[string]any{"policies": "x"}, true},
		{"required_missing", "auth/token/create-orphan", OpUpdate, map[string]any{"ttl": "1h"}, false},
		{"required_missing_no_params", "auth/token/create-orphan", OpUpdate, nil, false},
		{"star_allowed_but_denied_key", "auth/token/create-orphan", OpUpdate, map[string]any{"policies": "x", "id": "abc"}, false},
		{"all_denied", "auth/token/roles/web", OpUpdate, map[string]any{"orphan": true}, false},
		{"all_denied_but_no_params", "auth/token/roles/web", OpUpdate, nil, true},
		{"list_ignores_params", "auth/token/roles/", OpList, map[string]any{"orphan": true}, true},
		{"star_plus_listed_key_checks_value", "auth/token/lookup", OpUpdate, map[string]any{"token": "xyzabc", "other": 1}, true},
		{"star_plus_listed_key_bad_value", "auth/token/lookup", OpUpdate, map[string]any{"token": "abcxyz"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := a.Allowed(Request{Path: tt.path, Operation: tt.op, Params: tt.params})
			if res.Allowed != tt.allowed {
				t.Fatalf("Allowed = %v, want %v (reason %q)", res.Allowed, tt.allowed, res.DeniedReason)
			}
			if res.Allowed {
				return
			}
			// Reasons name parameters, never values.
			for _, v := range tt.params {
				if s, ok := v.(string); ok && len(s) > 2 && strings.Contains(res.DeniedReason, s) {
					t.Errorf("reason %q leaks value %q", res.DeniedReason, s)
				}
			}
		})
	}
}

func TestParameterMergeAcrossPolicies(t *testing.T) {
	a := aclOf(t,
		`path "a" { capabilities = ["update"] allowed_parameters = { "x" = ["1"] "y" = ["1"] } }`,
		`path "a" { capabilities = ["update"] allowed_parameters = { "x" = ["2"] "y" = [] } required_parameters = ["x"] }`,
	)
	for _, tt := range []struct {
		params  map[string]any
		allowed bool
	}{
		{map[string]any{"x": "1"}, true},
		{map[string]any{"x": "2"}, true},
		{map[string]any{"x": "3"}, false},
		{map[string]any{"x": "1", "y": "anything"}, true}, // empty list overrides
		{map[string]any{"y": "1"}, false},                 // x required
	} {
		if got := a.Allowed(Request{Path: "a", Operation: OpUpdate, Params: tt.params}).Allowed; got != tt.allowed {
			t.Errorf("%v: Allowed = %v, want %v", tt.params, got, tt.allowed)
		}
	}
}

func TestWrappingTTL(t *testing.T) {
	a := aclOf(t, `path "a" { capabilities = ["update"] min_wrapping_ttl = "1m" max_wrapping_ttl = "1h" }`)
	for ttl, want := range map[time.Duration]bool{0: false, 30 * time.Second: false, time.Minute: true, time.Hour: true, 2 * time.Hour: false} {
		if got := a.Allowed(Request{Path: "a", Operation: OpUpdate, WrapTTL: ttl}).Allowed; got != want {
			t.Errorf("wrap %s: Allowed = %v, want %v", ttl, got, want)
		}
	}
	// Merging keeps the smaller bound of each kind.
	a = aclOf(t,
		`path "a" { capabilities = ["update"] max_wrapping_ttl = "1h" }`,
		`path "a" { capabilities = ["update"] max_wrapping_ttl = "10m" }`)
	if a.Allowed(Request{Path: "a", Operation: OpUpdate, WrapTTL: 30 * time.Minute}).Allowed {
		t.Error("merged max_wrapping_ttl should be 10m")
	}
}

func TestDeniedReasonIsDeterministic(t *testing.T) {
	a := aclOf(t, `path "a" { capabilities = ["update"] allowed_parameters = { "ok" = [] } }`)
	params := map[string]any{"zz": 1, "bb": 2, "cc": 3, "ok": 4, "dd": 5}
	first := a.Allowed(Request{Path: "a", Operation: OpUpdate, Params: params}).DeniedReason
	if !strings.Contains(first, `"bb"`) {
		t.Fatalf("reason %q should name the smallest failing parameter", first)
	}
	for range 50 {
		if got := a.Allowed(Request{Path: "a", Operation: OpUpdate, Params: params}).DeniedReason; got != first {
			t.Fatalf("reason changed: %q vs %q", got, first)
		}
	}
}

func TestSegRuleMatch(t *testing.T) {
	for _, tt := range []struct {
		pattern string
		path    string
		want    bool
	}{
		{"a/+", "a/b", true},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"a/+", "a/b/c", false},
		{"+", "x", true},
		{"+", "", true},
		{"+", "x/y", false},
		{"+/b", "a/b", true},
		{"a/+/c*", "a/b/cde", true},
		{"a/+/c*", "a/b/cde/f", true},
		{"a/+/c*", "a/b/d", false},
		{"a/+/*", "a/b/", true},
		{"a/+/*", "a/b", false},
	} {
		a := New(mustParse(t, "p", `path "`+tt.pattern+`" { capabilities = ["read"] }`))
		segs := a.segments()
		if len(segs) != 1 {
			t.Fatalf("%q: not a segment rule", tt.pattern)
		}
		if got := segs[0].match(tt.path); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}

// segments returns every segment rule of a in most-specific-first order.
func (a *ACL) segments() []segRule {
	all := append([]segRule(nil), a.segsWild...)
	for _, l := range a.segsByFirst {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[j].rank.less(all[i].rank) })
	return all
}
