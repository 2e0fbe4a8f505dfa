package acl

import (
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t testing.TB, name, text string) *Policy {
	t.Helper()
	p, err := Parse(name, text)
	if err != nil {
		t.Fatalf("Parse(%q): %v", name, err)
	}
	return p
}

func TestParse(t *testing.T) {
	type want struct {
		path      string
		prefix    bool
		seg       bool
		templated bool
		caps      Capability
	}
	tests := []struct {
		name string
		doc  string
		want []want
	}{
		{
			name: "hcl_exact",
			doc:  `path "auth/token/create" { capabilities = ["create", "update", "sudo"] }`,
			want: []want{{path: "auth/token/create", caps: CapCreate | CapUpdate | CapSudo}},
		},
		{
			name: "json_exact",
			doc:  `{"path":{"auth/token/create":{"capabilities":["create","update","sudo"]}}}`,
			want: []want{{path: "auth/token/create", caps: CapCreate | CapUpdate | CapSudo}},
		},
		{
			name: "json_two_paths_in_order",
			doc:  `{"path":{"a":{"capabilities":["read"]},"b/*":{"capabilities":["list"]}}}`,
			want: []want{{path: "a", caps: CapRead}, {path: "b/", prefix: true, caps: CapList}},
		},
		{
			name: "every_capability",
			doc:  `path "x" { capabilities = ["create","read","update","patch","delete","list","sudo","subscribe","recover"] }`,
			want: []want{{path: "x", caps: CapCreate | CapRead | CapUpdate | CapPatch | CapDelete | CapList | CapSudo | CapSubscribe | CapRecover}},
		},
		{
			name: "glob_suffix_is_prefix",
			doc:  `path "secret/*" { capabilities = ["read"] }`,
			want: []want{{path: "secret/", prefix: true, caps: CapRead}},
		},
		{
			name: "bare_star_is_empty_prefix",
			doc:  `path "*" { capabilities = ["read"] }`,
			want: []want{{path: "", prefix: true, caps: CapRead}},
		},
		{
			name: "inner_star_is_literal",
			doc:  `path "a*b" { capabilities = ["read"] }`,
			want: []want{{path: "a*b", caps: CapRead}},
		},
		{
			name: "leading_slash_removed",
			doc:  `path "/auth/token/lookup-self" { capabilities = ["read"] }`,
			want: []want{{path: "auth/token/lookup-self", caps: CapRead}},
		},
		{
			name: "plus_segment",
			doc:  `path "secret/+/config" { capabilities = ["read"] }`,
			want: []want{{path: "secret/+/config", seg: true, caps: CapRead}},
		},
		{
			name: "plus_with_trailing_star_keeps_star",
			doc:  `path "secret/+/conf*" { capabilities = ["read"] }`,
			want: []want{{path: "secret/+/conf*", seg: true, caps: CapRead}},
		},
		{
			name: "plus_alone",
			doc:  `path "+" { capabilities = ["read"] }`,
			want: []want{{path: "+", seg: true, caps: CapRead}},
		},
		{
			name: "plus_inside_a_segment_is_literal",
			doc:  `path "a+b/c" { capabilities = ["read"] }`,
			want: []want{{path: "a+b/c", caps: CapRead}},
		},
		{
			name: "legacy_read",
			doc:  `path "a" { policy = "read" }`,
			want: []want{{path: "a", caps: CapRead | CapList}},
		},
		{
			name: "legacy_write",
			doc:  `path "a" { policy = "write" }`,
			want: []want{{path: "a", caps: CapCreate | CapRead | CapUpdate | CapDelete | CapList}},
		},
		{
			name: "legacy_sudo",
			doc:  `path "a" { policy = "sudo" }`,
			want: []want{{path: "a", caps: CapCreate | CapRead | CapUpdate | CapDelete | CapList | CapSudo}},
		},
		{
			name: "legacy_deny",
			doc:  `path "a" { policy = "deny" }`,
			want: []want{{path: "a", caps: CapDeny}},
		},
		{
			name: "legacy_plus_capabilities_union",
			doc:  `path "a" { policy = "read"  capabilities = ["patch"] }`,
			want: []want{{path: "a", caps: CapRead | CapList | CapPatch}},
		},
		{
			name: "deny_overrides_block",
			doc:  `path "a" { capabilities = ["read", "deny", "update"] }`,
			want: []want{{path: "a", caps: CapDeny}},
		},
		{
			name: "templated_path",
			doc:  `path "identity/entity/id/{{identity.entity.id}}" { capabilities = ["read"] }`,
			want: []want{{path: "identity/entity/id/{{identity.entity.id}}", templated: true, caps: CapRead}},
		},
		{
			name: "comments_and_extra_keys_accepted",
			doc: `# a comment
name = "ignored"
path "a" {
  comment = "why"
  capabilities = ["read"]
  mfa_methods = ["m"]
  subscribe_event_types = ["*"]
  control_group = { ttl = "1h" }
}`,
			want: []want{{path: "a", caps: CapRead}},
		},
		{
			name: "empty_document_body",
			doc:  "   \n",
			want: nil,
		},
		{
			name: "base64_body",
			doc:  base64.StdEncoding.EncodeToString([]byte(`path "a" { capabilities = ["read"] }`)),
			want: []want{{path: "a", caps: CapRead}},
		},
		{
			name: "heredoc_free_multiline_hcl",
			doc:  "path \"a\" {\n  capabilities = [\n    \"read\",\n    \"list\",\n  ]\n}\n",
			want: []want{{path: "a", caps: CapRead | CapList}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, " MyPolicy ", tt.doc)
			if p.Name != "mypolicy" {
				t.Errorf("Name = %q, want mypolicy", p.Name)
			}
			if len(p.Paths) != len(tt.want) {
				t.Fatalf("got %d paths, want %d: %+v", len(p.Paths), len(tt.want), p.Paths)
			}
			for i, w := range tt.want {
				r := p.Paths[i]
				if r.Path != w.path || r.IsPrefix != w.prefix || r.HasSegmentWildcards != w.seg ||
					r.Templated != w.templated || r.Capabilities != w.caps {
					t.Errorf("path %d = %+v, want %+v", i, r, w)
				}
			}
		})
	}
}

func TestParseRawIsDecodedBase64(t *testing.T) {
	doc := `path "a" { capabilities = ["read"] }`
	p := mustParse(t, "a", base64.StdEncoding.EncodeToString([]byte(doc)))
	if p.Raw != doc {
		t.Fatalf("Raw = %q, want the decoded document", p.Raw)
	}
	p = mustParse(t, "a", doc)
	if p.Raw != doc {
		t.Fatalf("Raw = %q, want the document", p.Raw)
	}
}

func TestParseParameters(t *testing.T) {
	p := mustParse(t, "p", `
path "auth/token/create" {
  capabilities = ["update"]
  allowed_parameters = {
    "TTL" = []
    "policies" = ["web", "db-*"]
    "num_uses" = [1, 2]
  }
  denied_parameters = {
    "id" = []
  }
  required_parameters = ["policies"]
  min_wrapping_ttl = "1m"
  max_wrapping_ttl = 3600
}`)
	r := p.Paths[0]
	wantAllowed := map[string][]any{"ttl": {}, "policies": {"web", "db-*"}, "num_uses": {1, 2}}
	if !reflect.DeepEqual(r.AllowedParameters, wantAllowed) {
		t.Errorf("AllowedParameters = %#v, want %#v", r.AllowedParameters, wantAllowed)
	}
	if !reflect.DeepEqual(r.DeniedParameters, map[string][]any{"id": {}}) {
		t.Errorf("DeniedParameters = %#v", r.DeniedParameters)
	}
	if !reflect.DeepEqual(r.RequiredParameters, []string{"policies"}) {
		t.Errorf("RequiredParameters = %#v", r.RequiredParameters)
	}
	if r.MinWrappingTTL != time.Minute || r.MaxWrappingTTL != time.Hour {
		t.Errorf("wrapping TTLs = %s, %s", r.MinWrappingTTL, r.MaxWrappingTTL)
	}
}

func TestParseWrappingTTLForms(t *testing.T) {
	for in, want := range map[string]time.Duration{
		`"90"`:  90 * time.Second,
		`90`:    90 * time.Second,
		`"2d"`:  48 * time.Hour,
		`"1h"`:  time.Hour,
		`"1.5"`: 0, // not an integer and not a Go duration: error
		`""`:    0,
	} {
		p, err := Parse("p", `path "a" { capabilities = ["read"] max_wrapping_ttl = `+in+` }`)
		if in == `"1.5"` {
			if err == nil || !strings.Contains(err.Error(), "error parsing max_wrapping_ttl") {
				t.Errorf("%s: err = %v, want a max_wrapping_ttl error", in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		if got := p.Paths[0].MaxWrappingTTL; got != want {
			t.Errorf("%s: MaxWrappingTTL = %s, want %s", in, got, want)
		}
	}
}

func TestParseDuplicateAttributeWarns(t *testing.T) {
	p := mustParse(t, "p", "path \"a\" {\n  capabilities = [\"read\"]\n  capabilities = [\"list\"]\n}\n")
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "duplicate attributes") {
		t.Fatalf("Warnings = %q", p.Warnings)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want string // exact message
		line int
	}{
		{
			name: "unknown_capability",
			doc:  `path "x" { capabilities = ["fly"] }`,
			want: `failed to parse policy: path "x": invalid capability "fly"`,
			line: 1,
		},
		{
			name: "root_is_not_writable",
			doc:  `path "x" { capabilities = ["root"] }`,
			want: `failed to parse policy: path "x": invalid capability "root"`,
			line: 1,
		},
		{
			name: "capability_case_matters",
			doc:  `path "x" { capabilities = ["Read"] }`,
			want: `failed to parse policy: path "x": invalid capability "Read"`,
			line: 1,
		},
		{
			name: "unknown_capability_json",
			doc:  `{"path":{"x":{"capabilities":["fly"]}}}`,
			want: `failed to parse policy: path "x": invalid capability "fly"`,
			line: 1,
		},
		{
			name: "unknown_legacy_policy",
			doc:  `path "x" { policy = "admin" }`,
			want: `failed to parse policy: path "x": invalid policy "admin"`,
			line: 1,
		},
		{
			name: "plus_star_forbidden",
			doc:  `path "/secret/+*" { capabilities = ["read"] }`,
			want: `failed to parse policy: path "secret/+*": invalid use of wildcards ('+*' is forbidden)`,
			line: 1,
		},
		{
			name: "unknown_top_level_key",
			doc:  "path \"a\" { capabilities = [\"read\"] }\nbogus = 1\n",
			want: `failed to parse policy: invalid key "bogus" on line 2`,
			line: 2,
		},
		{
			name: "unknown_top_level_block",
			doc:  "\n\npaths \"a\" { capabilities = [\"read\"] }\n",
			want: `failed to parse policy: invalid key "paths" on line 3`,
			line: 3,
		},
		{
			name: "unknown_path_key",
			doc:  "path \"a\" {\n  capabilities = [\"read\"]\n  capability = [\"list\"]\n}\n",
			want: `failed to parse policy: path "a": invalid key "capability" on line 3`,
			line: 3,
		},
		{
			name: "every_unknown_path_key_named",
			doc:  "path \"a\" {\n  ttl = 1\n  max_ttl = 2\n}\n",
			want: `failed to parse policy: path "a": invalid key "ttl" on line 2; invalid key "max_ttl" on line 3`,
			line: 2,
		},
		{
			name: "unknown_path_key_json",
			doc:  "{\"path\": {\"a\": {\"capabilities\": [\"read\"],\n  \"ttl\": \"1h\"}}}",
			want: `failed to parse policy: path "a": invalid key "ttl" on line 2`,
			line: 2,
		},
		{
			name: "hcl_unclosed_list",
			doc:  "path \"x\" {\n  capabilities = [\"read\"\n}\n",
			want: `failed to parse policy: At 3:1: error parsing list, expected comma or list end, got: RBRACE`,
			line: 3,
		},
		{
			name: "hcl_unclosed_block",
			doc:  "path \"x\" {\n  capabilities = [\"read\"]\n",
			want: `failed to parse policy: At 3:2: object expected closing RBRACE got: EOF`,
			line: 3,
		},
		{
			name: "hcl_unterminated_string",
			doc:  "path \"x\" {\n  capabilities = [\"read]\n}\n",
			want: `failed to parse policy: At 2:25: literal not terminated`,
			line: 2,
		},
		{
			name: "hcl_path_without_block",
			doc:  `path "x" = 5`,
			want: `failed to parse policy: At 1:10: nested object expected: LBRACE got: ASSIGN`,
			line: 1,
		},
		{
			name: "hcl_garbage",
			doc:  "path \"x\" {\n  capabilities = [\"read\"]\n}\n}\n",
			want: `failed to parse policy: At 4:1: expected: IDENT | STRING | ASSIGN | LBRACE got: RBRACE`,
			line: 4,
		},
		{
			name: "json_syntax_error",
			doc:  "{\"path\": {\"a\": {\n\"capabilities\": [\"read\"], \"x\": \"\\q\"}}}",
			want: `failed to parse policy: 2:34: illegal char escape`,
			line: 2,
		},
		{
			name: "capabilities_not_a_list",
			doc:  "path \"x\" {\n  capabilities = 5\n}\n",
			want: `failed to parse policy: path "x": At 2:18: unknown slice type: *ast.LiteralType`,
			line: 2,
		},
		{
			name: "capabilities_nested_list",
			doc:  "path \"x\" {\n  capabilities = [[\"read\"]]\n}\n",
			want: `failed to parse policy: path "x": At 2:19: root.capabilities[0]: unknown type for string *ast.ListType`,
			line: 2,
		},
		{
			name: "bad_min_wrapping_ttl",
			doc:  `path "x" { capabilities = ["read"] min_wrapping_ttl = "soon" }`,
			want: `failed to parse policy: error parsing min_wrapping_ttl: time: invalid duration "soon"`,
			line: 1,
		},
		{
			name: "negative_max_wrapping_ttl",
			doc:  `path "x" { capabilities = ["read"] max_wrapping_ttl = "-5s" }`,
			want: `failed to parse policy: error parsing max_wrapping_ttl: duration must not be negative`,
			line: 1,
		},
		{
			name: "max_wrapping_below_min",
			doc:  `path "x" { capabilities = ["read"] min_wrapping_ttl = "2h" max_wrapping_ttl = "1h" }`,
			want: `failed to parse policy: max_wrapping_ttl cannot be less than min_wrapping_ttl`,
			line: 1,
		},
		{
			name: "unclosed_template",
			doc:  `path "identity/entity/id/{{identity.entity.id" { capabilities = ["read"] }`,
			want: `failed to parse policy: failed to validate policy templating: unbalanced template delimiters in "identity/entity/id/{{identity.entity.id"`,
			line: 1,
		},
		{
			name: "unknown_template",
			doc:  `path "secret/{{user.name}}" { capabilities = ["read"] }`,
			want: `failed to parse policy: failed to validate policy templating: invalid template parameter "user.name"`,
			line: 1,
		},
		{
			// The HCL JSON scanner panics on this input; Parse must not.
			name: "hcl_library_panic",
			doc:  "{\"\\0",
			want: `failed to parse policy: malformed document`,
		},
		{
			// hcl's Token.Value panics on this key's escape.
			name: "invalid_key_escape",
			doc:  `"\700"=0`,
			want: `failed to parse policy: invalid key "\"\\700\"" on line 1`,
			line: 1,
		},
		{
			name: "empty",
			doc:  "",
			want: `'policy' parameter not supplied or empty`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("p", tt.doc)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", p)
			}
			if err.Error() != tt.want {
				t.Errorf("error = %q\nwant    %q", err.Error(), tt.want)
			}
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Errorf("errors.Is(err, ErrInvalidPolicy) = false")
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error is %T, want *ParseError", err)
			}
			if pe.Line != tt.line {
				t.Errorf("Line = %d, want %d", pe.Line, tt.line)
			}
		})
	}
}

func TestParseEmptyIsErrEmptyPolicy(t *testing.T) {
	if _, err := Parse("p", ""); !errors.Is(err, ErrEmptyPolicy) {
		t.Fatalf("err = %v, want ErrEmptyPolicy", err)
	}
}

func TestParseDenySkipsRestOfBlock(t *testing.T) {
	// Vault stops reading a block at "deny": later capabilities and the
	// parameter/wrapping settings are neither validated nor kept.
	p := mustParse(t, "p", `path "a" { capabilities = ["deny", "fly"] min_wrapping_ttl = "soon" }`)
	if r := p.Paths[0]; r.Capabilities != CapDeny || r.MinWrappingTTL != 0 {
		t.Fatalf("rule = %+v", r)
	}
}

func TestNormalizeName(t *testing.T) {
	for in, want := range map[string]string{" Web ": "web", "DEFAULT": "default", "a-b_c": "a-b_c", "\tx\n": "x"} {
		if got := NormalizeName(in); got != want {
			t.Errorf("NormalizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProtectedNames(t *testing.T) {
	tests := []struct {
		name              string
		write, del        string
		assignable, isErr bool
	}{
		{name: "root", write: `cannot update "root" policy`, del: `cannot delete "root" policy`, assignable: true},
		{name: "response-wrapping", write: `cannot update "response-wrapping" policy`, del: `cannot delete "response-wrapping" policy`},
		{name: "control-group", write: `cannot update "control-group" policy`, del: `cannot delete "control-group" policy`},
		{name: "default", del: "cannot delete default policy", assignable: true},
		{name: "web", assignable: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check := func(op string, err error, want string) {
				t.Helper()
				if want == "" {
					if err != nil {
						t.Errorf("%s: %v, want nil", op, err)
					}
					return
				}
				if err == nil || err.Error() != want || !errors.Is(err, ErrProtectedPolicy) {
					t.Errorf("%s: %v, want %q matching ErrProtectedPolicy", op, err, want)
				}
			}
			check("CheckWritable", CheckWritable(tt.name), tt.write)
			check("CheckDeletable", CheckDeletable(tt.name), tt.del)
			if got := Assignable(tt.name); got != tt.assignable {
				t.Errorf("Assignable = %v, want %v", got, tt.assignable)
			}
		})
	}
}

func TestDefaultPolicyParses(t *testing.T) {
	p := mustParse(t, DefaultPolicyName, DefaultPolicyText)
	if !p.Templated {
		t.Error("default policy should be templated (identity entity paths)")
	}
	if len(p.Warnings) != 0 {
		t.Errorf("Warnings = %q", p.Warnings)
	}
	if p.IsRoot() {
		t.Error("default policy is not root")
	}
	if !Root().IsRoot() || Root().Name != RootPolicyName || Root().Raw != "" {
		t.Errorf("Root() = %+v", Root())
	}
}

func TestCapabilityNames(t *testing.T) {
	all := CapCreate | CapRead | CapUpdate | CapPatch | CapDelete | CapList | CapSudo | CapSubscribe | CapRecover
	want := []string{"create", "delete", "list", "patch", "read", "recover", "subscribe", "sudo", "update"}
	if got := all.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %q, want %q", got, want)
	}
	if got := (CapDeny | CapRead).Names(); !reflect.DeepEqual(got, []string{"deny"}) {
		t.Errorf("deny Names = %q", got)
	}
	if got := Capability(0).Names(); !reflect.DeepEqual(got, []string{"deny"}) {
		t.Errorf("empty Names = %q", got)
	}
	if _, ok := ParseCapability("root"); ok {
		t.Error("root must not parse as a capability")
	}
	if !(CapRead | CapSudo).Has(CapSudo) || CapRead.Has(CapRead|CapSudo) {
		t.Error("Has is wrong")
	}
}
