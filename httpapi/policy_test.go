package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi/acl"
)

// putPolicy writes a policy as root through the official client.
func (e *env) putPolicy(name, text string) {
	e.t.Helper()
	if err := e.client(e.root).Sys().PutPolicy(name, text); err != nil {
		e.t.Fatalf("put policy %s: %v", name, err)
	}
}

// tokenWith creates a token with exactly these policies (no default).
func (e *env) tokenWith(policies ...string) string {
	e.t.Helper()
	return e.create(e.root, &vault.TokenCreateRequest{Policies: policies, NoDefaultPolicy: true}).Auth.ClientToken
}

// errorsOf decodes {"errors":[…]}.
func errorsOf(t *testing.T, body string) []string {
	t.Helper()
	var v struct {
		Errors []string `json:"errors"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
	return v.Errors
}

func TestPolicyEndpoints(t *testing.T) {
	e := newEnv(t, true)
	sys := e.client(e.root).Sys()

	// A fresh store: the seeded default, then the synthetic root.
	names, err := sys.ListPolicies()
	if err != nil || !slices.Equal(names, []string{"default", "root"}) {
		t.Fatalf("list = %v %v", names, err)
	}
	if text, ok := e.node.fsm.Policy("default"); !ok || text != acl.DefaultPolicyText {
		t.Fatalf("default not seeded at init: %v", ok)
	}
	code, _, body := e.do("GET", "/v1/sys/policies/acl/root", e.root, "")
	if code != 200 || !strings.Contains(body, `"data":{"name":"root","policy":""}`) || !strings.Contains(body, `"mount_type":"system"`) {
		t.Fatalf("root: %d %s", code, body)
	}
	if text, err := sys.GetPolicy("default"); err != nil || text != acl.DefaultPolicyText {
		t.Fatalf("default: %v", err)
	}
	code, _, body = e.do("GET", "/v1/sys/policies/acl/nope", e.root, "")
	if code != 404 || body != `{"errors":[]}`+"\n" {
		t.Fatalf("missing: %d %s", code, body)
	}
	if text, err := sys.GetPolicy("nope"); err != nil || text != "" {
		t.Fatalf("client missing: %q %v", text, err)
	}

	// Upper case is converted, with a warning.
	doc := `path "auth/token/lookup" { capabilities = ["update"] }`
	code, _, body = e.do("PUT", "/v1/sys/policies/acl/Web", e.root, `{"policy":`+jsonString(doc)+`}`)
	if code != 200 || !strings.Contains(body, `"warnings":["policy name was converted to web"]`) {
		t.Fatalf("put Web: %d %s", code, body)
	}
	if text, err := sys.GetPolicy("web"); err != nil || text != doc {
		t.Fatalf("get web = %q %v", text, err)
	}
	names, _ = sys.ListPolicies()
	if !slices.Equal(names, []string{"default", "web", "root"}) {
		t.Fatalf("list = %v", names)
	}
	// POST, JSON documents and base64 bodies work; base64 is stored decoded.
	jsonDoc := `{"path":{"auth/token/create":{"capabilities":["create","update"]}}}`
	code, _, body = e.do("POST", "/v1/sys/policies/acl/j", e.root, `{"policy":`+jsonString(base64.StdEncoding.EncodeToString([]byte(jsonDoc)))+`}`)
	if code != 204 {
		t.Fatalf("post base64 json: %d %s", code, body)
	}
	if text, _ := sys.GetPolicy("j"); text != jsonDoc {
		t.Fatalf("stored %q", text)
	}

	// Bad documents and protected names: 400, nothing changed.
	before := e.node.fsm.PolicyVersion()
	idx := e.node.AppliedIndex()
	bad := []struct {
		method, path, body, want string
	}{
		{"PUT", "x", `{"policy":"path \"x\" { capabilities = [\"fly\"] }"}`, `failed to parse policy: path "x": invalid capability "fly"`},
		{"PUT", "x", `{"policy":"path \"x\" {\n  capabilities = [\"read\"\n}"}`, "failed to parse policy: At 3:1"},
		{"PUT", "x", `{"policy":"path \"x\" {"}`, "failed to parse policy: "},
		{"PUT", "x", `{"policy":""}`, "'policy' parameter not supplied or empty"},
		{"PUT", "x", `{}`, "'policy' parameter not supplied or empty"},
		{"PUT", "x", `{"policy":"path \"a/+*\" { capabilities = [\"read\"] }"}`, "failed to parse policy: "},
		{"PUT", "root", `{"policy":"path \"x\" { capabilities = [\"read\"] }"}`, `cannot update "root" policy`},
		{"PUT", "Root", `{"policy":"path \"x\" { capabilities = [\"read\"] }"}`, `cannot update "root" policy`},
		{"PUT", "response-wrapping", `{"policy":"path \"x\" { capabilities = [\"read\"] }"}`, `cannot update "response-wrapping" policy`},
		{"DELETE", "default", ``, "cannot delete default policy"},
		{"DELETE", "root", ``, `cannot delete "root" policy`},
		{"DELETE", "control-group", ``, `cannot delete "control-group" policy`},
	}
	for _, tc := range bad {
		code, _, body := e.do(tc.method, "/v1/sys/policies/acl/"+tc.path, e.root, tc.body)
		if code != 400 {
			t.Errorf("%s %s %s: %d %s", tc.method, tc.path, tc.body, code, body)
			continue
		}
		if errs := errorsOf(t, body); len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
			t.Errorf("%s %s %s: errors %q, want %q", tc.method, tc.path, tc.body, errs, tc.want)
		}
	}
	if e.node.fsm.PolicyVersion() != before || e.node.AppliedIndex() != idx {
		t.Fatal("a rejected policy write changed the state")
	}
	// A parse error names the line.
	code, _, body = e.do("PUT", "/v1/sys/policies/acl/x", e.root, `{"policy":"\n\npath \"x\" { capabilities = [\"read\"] }\npath \"y\" { capabilities = \"read\" bogus }"}`)
	if code != 400 || !strings.Contains(body, "At 4:") {
		t.Fatalf("line: %d %s", code, body)
	}

	// Delete: 204, also for a missing policy; the default can still be edited.
	if err := sys.DeletePolicy("web"); err != nil {
		t.Fatal(err)
	}
	if text, _ := sys.GetPolicy("web"); text != "" {
		t.Fatal("web still there")
	}
	code, _, _ = e.do("DELETE", "/v1/sys/policies/acl/never-was", e.root, "")
	if code != 204 {
		t.Fatalf("delete missing: %d", code)
	}
	e.putPolicy("default", `path "auth/token/lookup-self" { capabilities = ["read"] }`)
	// LIST verb and a trailing slash.
	code, _, body = e.do("LIST", "/v1/sys/policies/acl/", e.root, "")
	if code != 200 || !strings.Contains(body, `"keys":["default","j","root"]`) {
		t.Fatalf("LIST: %d %s", code, body)
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestLegacyPolicyRoutes(t *testing.T) {
	e := newEnv(t, true)
	e.putPolicy("web", `path "a" { capabilities = ["read"] }`)
	code, _, body := e.do("GET", "/v1/sys/policy", e.root, "")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	keys := topKeys(t, body)
	if !slices.Equal(keys[:3], []string{"keys", "policies", "request_id"}) {
		t.Fatalf("injected keys not first: %v", keys)
	}
	var v map[string]any
	_ = json.Unmarshal([]byte(body), &v)
	want := []any{"default", "web", "root"}
	if !slices.Equal(v["keys"].([]any), want) || !slices.Equal(v["policies"].([]any), want) ||
		!slices.Equal(v["data"].(map[string]any)["policies"].([]any), want) {
		t.Fatalf("legacy list: %s", body)
	}

	code, _, body = e.do("GET", "/v1/sys/policy/web", e.root, "")
	if code != 200 || !strings.HasPrefix(body, `{"name":"web","rules":"path \"a\" { capabilities = [\"read\"] }","request_id"`) ||
		!strings.Contains(body, `"data":{"name":"web","rules":`) {
		t.Fatalf("legacy read: %d %s", code, body)
	}
	// The deprecated rules field, with its warning.
	code, _, body = e.do("PUT", "/v1/sys/policy/old", e.root, `{"rules":"path \"b\" { capabilities = [\"list\"] }"}`)
	if code != 200 || !strings.Contains(body, `'rules' is deprecated, please use 'policy' instead`) {
		t.Fatalf("legacy rules: %d %s", code, body)
	}
	if text, ok := e.node.fsm.Policy("old"); !ok || !strings.Contains(text, `"b"`) {
		t.Fatal("rules not stored")
	}
	code, _, _ = e.do("PUT", "/v1/sys/policy/new", e.root, `{"policy":"path \"c\" { capabilities = [\"list\"] }"}`)
	if code != 204 {
		t.Fatalf("legacy policy: %d", code)
	}
	code, _, _ = e.do("DELETE", "/v1/sys/policy/old", e.root, "")
	if _, ok := e.node.fsm.Policy("old"); code != 204 || ok {
		t.Fatalf("legacy delete: %d", code)
	}
	code, _, body = e.do("DELETE", "/v1/sys/policy/default", e.root, "")
	if code != 400 || !strings.Contains(body, "cannot delete default policy") {
		t.Fatalf("legacy delete default: %d %s", code, body)
	}
	code, _, _ = e.do("GET", "/v1/sys/policy/nope", e.root, "")
	if code != 404 {
		t.Fatalf("legacy missing: %d", code)
	}
}

func TestCapabilitiesEndpoints(t *testing.T) {
	e := newEnv(t, true)
	e.putPolicy("ops", `
path "auth/token/create" { capabilities = ["create", "update", "sudo"] }
path "auth/token/roles/*" { capabilities = ["read", "list"] }
path "auth/token/roles/secret" { capabilities = ["deny"] }
`)
	def := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}})
	ops := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"ops"}})

	// The Go client (capabilities-self, data[path]).
	caps, err := e.client(def.Auth.ClientToken).Sys().CapabilitiesSelf("auth/token/renew-self")
	if err != nil || !slices.Equal(caps, []string{"update"}) {
		t.Fatalf("default renew-self = %v %v", caps, err)
	}
	caps, _ = e.client(def.Auth.ClientToken).Sys().CapabilitiesSelf("auth/token/create")
	if !slices.Equal(caps, []string{"deny"}) {
		t.Fatalf("default create = %v", caps)
	}
	caps, _ = e.client(e.root).Sys().CapabilitiesSelf("anything/at/all")
	if !slices.Equal(caps, []string{"root"}) {
		t.Fatalf("root = %v", caps)
	}
	// sys/capabilities on another token (root asks about ops).
	caps, err = e.client(e.root).Sys().Capabilities(ops.Auth.ClientToken, "auth/token/create")
	if err != nil || !slices.Equal(caps, []string{"create", "sudo", "update"}) {
		t.Fatalf("ops create = %v %v", caps, err)
	}
	for path, want := range map[string][]string{
		"auth/token/roles/x":      {"list", "read"},
		"auth/token/roles/secret": {"deny"},
		"auth/token/roles/":       {"list", "read"},
		"sys/policies/acl":        {"deny"},
	} {
		caps, _ = e.client(e.root).Sys().Capabilities(ops.Auth.ClientToken, path)
		if !slices.Equal(caps, want) {
			t.Errorf("ops %s = %v, want %v", path, caps, want)
		}
	}

	// Wire shape: data keys injected before request_id; one path adds
	// capabilities.
	code, _, body := e.do("POST", "/v1/sys/capabilities-self", def.Auth.ClientToken, `{"paths":["auth/token/create"]}`)
	if code != 200 || !strings.HasPrefix(body, `{"auth/token/create":["deny"],"capabilities":["deny"],"request_id":"`) ||
		!strings.Contains(body, `"data":{"auth/token/create":["deny"],"capabilities":["deny"]}`) ||
		!strings.Contains(body, `"mount_type":"system"`) {
		t.Fatalf("self shape: %d %s", code, body)
	}
	// A comma string of two paths: no capabilities key.
	code, _, body = e.do("PUT", "/v1/sys/capabilities-self", def.Auth.ClientToken, `{"paths":"auth/token/lookup-self,auth/token/revoke-self"}`)
	if code != 200 || strings.Contains(body, `"capabilities"`) ||
		!strings.Contains(body, `"data":{"auth/token/lookup-self":["read"],"auth/token/revoke-self":["update"]}`) {
		t.Fatalf("two paths: %d %s", code, body)
	}
	// The deprecated path field.
	code, _, body = e.do("POST", "/v1/sys/capabilities-self", def.Auth.ClientToken, `{"path":"auth/token/lookup-self"}`)
	if code != 200 || !strings.Contains(body, `"capabilities":["read"]`) {
		t.Fatalf("path: %d %s", code, body)
	}
	code, _, body = e.do("POST", "/v1/sys/capabilities-self", def.Auth.ClientToken, `{}`)
	if code != 400 || !strings.Contains(body, "paths must be supplied") {
		t.Fatalf("no paths: %d %s", code, body)
	}
	// The default policy does not grant sys/capabilities or -accessor.
	code, _, _ = e.do("POST", "/v1/sys/capabilities", def.Auth.ClientToken, `{"token":"x","paths":["a"]}`)
	if code != 403 {
		t.Fatalf("default on sys/capabilities: %d", code)
	}
	code, _, body = e.do("POST", "/v1/sys/capabilities", e.root, `{"token":"hvs.nope","paths":["a"]}`)
	if code != 400 || !strings.Contains(body, "invalid token") {
		t.Fatalf("unknown token: %d %s", code, body)
	}
	// By accessor.
	code, _, body = e.do("POST", "/v1/sys/capabilities-accessor", e.root,
		`{"accessor":"`+ops.Auth.Accessor+`","paths":["auth/token/create","auth/token/lookup"]}`)
	if code != 200 || !strings.Contains(body, `"data":{"auth/token/create":["create","sudo","update"],"auth/token/lookup":["deny"]}`) {
		t.Fatalf("accessor: %d %s", code, body)
	}
	code, _, body = e.do("POST", "/v1/sys/capabilities-accessor", e.root, `{"accessor":"nope","paths":["a"]}`)
	if code != 400 || !strings.Contains(body, "invalid accessor") {
		t.Fatalf("unknown accessor: %d %s", code, body)
	}
	code, _, body = e.do("POST", "/v1/sys/capabilities-accessor", e.root, `{"paths":["a"]}`)
	if code != 400 || !strings.Contains(body, "missing accessor") {
		t.Fatalf("missing accessor: %d %s", code, body)
	}
}

// TestACLEnforcement: a token with a custom policy can do exactly what the
// policy grants, before routing, sudo included.
func TestACLEnforcement(t *testing.T) {
	e := newEnv(t, true)
	e.putPolicy("app", `
path "auth/token/lookup" { capabilities = ["update"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }
path "auth/token/accessors" { capabilities = ["list"] }
path "auth/token/revoke-orphan" { capabilities = ["update"] }
path "auth/token/create" {
  capabilities = ["update"]
  denied_parameters = { "num_uses" = [] }
}
path "auth/token/nowhere" { capabilities = ["read"] }
path "auth/token/lookup-self" { capabilities = ["deny"] }
`)
	e.putPolicy("admin", `
path "auth/token/accessors/" { capabilities = ["list", "sudo"] }
path "auth/token/revoke-orphan" { capabilities = ["update", "sudo"] }
path "auth/token/create" { capabilities = ["update", "sudo"] }
`)
	app := e.tokenWith("app")
	admin := e.tokenWith("admin")
	victim := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}})

	cases := []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"lookup granted", "POST", "auth/token/lookup", app, `{"token":"` + victim.Auth.ClientToken + `"}`, 200},
		{"lookup GET needs read", "GET", "auth/token/lookup?token=x", app, "", 403},
		{"lookup-accessor granted", "POST", "auth/token/lookup-accessor", app, `{"accessor":"` + victim.Auth.Accessor + `"}`, 200},
		{"explicit deny on lookup-self", "GET", "auth/token/lookup-self", app, "", 403},
		{"accessors without sudo", "LIST", "auth/token/accessors", app, "", 403},
		{"accessors with sudo (slash rule)", "LIST", "auth/token/accessors", admin, "", 200},
		{"accessors GET list with sudo", "GET", "auth/token/accessors?list=true", admin, "", 200},
		{"revoke-orphan without sudo", "POST", "auth/token/revoke-orphan", app, `{"token":"x"}`, 403},
		{"revoke-orphan with sudo", "POST", "auth/token/revoke-orphan", admin, `{"token":"x"}`, 400}, // passes the ACL: unknown token
		{"unknown path non-root", "GET", "auth/token/nowhere", app, "", 404},                         // granted, then unsupported
		{"unknown path not granted", "GET", "auth/token/elsewhere", app, "", 403},
		{"unknown mount", "GET", "nope/x", app, "", 403},
		{"wrong method not granted", "DELETE", "auth/token/create", app, "", 403},
		{"denied parameter", "POST", "auth/token/create", app, `{"num_uses":1}`, 403},
		{"allowed parameters", "POST", "auth/token/create", app, `{"ttl":"1h"}`, 200},
		{"policies need sudo to differ", "POST", "auth/token/create", app, `{"policies":["admin"]}`, 400},
		{"sudo caller sets any policies", "POST", "auth/token/create", admin, `{"policies":["app","other"]}`, 200},
		{"no_parent needs sudo", "POST", "auth/token/create", app, `{"no_parent":true}`, 400},
		{"no_parent with sudo", "POST", "auth/token/create", admin, `{"no_parent":true}`, 200},
		{"period needs sudo", "POST", "auth/token/create", app, `{"period":"1h"}`, 400},
		{"root child needs root parent", "POST", "auth/token/create", admin, `{"policies":["root"]}`, 400},
		{"internal policy never assignable", "POST", "auth/token/create", admin, `{"policies":["response-wrapping"]}`, 400},
		{"sys policies not granted", "GET", "sys/policies/acl?list=true", app, "", 403},
		{"create-orphan not granted", "POST", "auth/token/create-orphan", app, `{}`, 403},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := e.do(tc.method, "/v1/"+tc.path, tc.token, tc.body)
			if code != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.want)
			}
			if code == 403 && body != `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}`+"\n" {
				t.Fatalf("403 body %q", body)
			}
		})
	}
	// Handler-level errors name the reason.
	_, _, body := e.do("POST", "/v1/auth/token/create", admin, `{"policies":["root"]}`)
	if !strings.Contains(body, "root tokens may not be created without parent token being root") {
		t.Fatal(body)
	}
	_, _, body = e.do("POST", "/v1/auth/token/create", app, `{"policies":["admin"]}`)
	if !strings.Contains(body, "child policies must be subset of parent") {
		t.Fatal(body)
	}
	_, _, body = e.do("POST", "/v1/auth/token/create", admin, `{"policies":["response-wrapping"]}`)
	if !strings.Contains(body, `cannot assign policy \"response-wrapping\"`) {
		t.Fatal(body)
	}
}

// TestACLCacheFollowsPolicyChanges: decisions change as soon as a policy is
// written, edited or deleted.
func TestACLCacheFollowsPolicyChanges(t *testing.T) {
	e := newEnv(t, true)
	tok := e.tokenWith("p")
	victim := e.create(e.root, &vault.TokenCreateRequest{}).Auth.ClientToken
	lookup := func() int {
		code, _, _ := e.do("POST", "/v1/auth/token/lookup", tok, `{"token":"`+victim+`"}`)
		return code
	}
	if c := lookup(); c != 403 {
		t.Fatalf("before policy: %d", c)
	}
	e.putPolicy("p", `path "auth/token/lookup" { capabilities = ["update"] }`)
	if c := lookup(); c != 200 {
		t.Fatalf("after policy: %d", c)
	}
	e.putPolicy("p", `path "auth/token/lookup" { capabilities = ["deny"] }`)
	if c := lookup(); c != 403 {
		t.Fatalf("after edit: %d", c)
	}
	e.putPolicy("p", `path "auth/token/*" { capabilities = ["update"] }`)
	if c := lookup(); c != 200 {
		t.Fatalf("after glob: %d", c)
	}
	if err := e.client(e.root).Sys().DeletePolicy("p"); err != nil {
		t.Fatal(err)
	}
	if c := lookup(); c != 403 {
		t.Fatalf("after delete: %d", c)
	}
	// Editing default changes every default token at once.
	def := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}}).Auth.ClientToken
	if _, err := e.client(def).Auth().Token().LookupSelf(); err != nil {
		t.Fatal(err)
	}
	e.putPolicy("default", `path "auth/token/renew-self" { capabilities = ["update"] }`)
	_, err := e.client(def).Auth().Token().LookupSelf()
	wantStatus(t, err, 403, "permission denied")
}

// TestACLCacheBounded: the cache never grows past its bound.
func TestACLCacheBounded(t *testing.T) {
	e := newEnv(t, true)
	s := newServer(e.node, Options{})
	for i := 0; i < aclCacheSize+10; i++ {
		s.aclFor([]string{"p" + strings.Repeat("x", i%7), "q" + string(rune('a'+i%26)), strings.Repeat("z", i)})
	}
	s.acls.mu.RLock()
	n := len(s.acls.acls)
	s.acls.mu.RUnlock()
	if n > aclCacheSize {
		t.Fatalf("cache holds %d", n)
	}
	// Unsorted input is keyed like sorted input.
	if s.aclFor([]string{"b", "a"}) != s.aclFor([]string{"a", "b"}) {
		t.Fatal("unsorted names not cached under the sorted key")
	}
}

func BenchmarkACLAllowed(b *testing.B) {
	node := newFakeLeader()
	if _, err := InitRoot(context.Background(), node, ""); err != nil {
		b.Fatal(err)
	}
	s := newServer(node, Options{})
	tok := &fsm.Token{Policies: []string{"app", "default"}, Accessor: "a"}
	c := &call{op: "GET", path: "auth/token/lookup-self"}
	b.ReportAllocs()
	for b.Loop() {
		if !s.allowed(c, tok) {
			b.Fatal("denied")
		}
	}
}

// TestMissingDefaultIsStock: a store initialised before policies existed
// has no stored default; it is evaluated, read and listed as the stock one.
func TestMissingDefaultIsStock(t *testing.T) {
	e := newEnv(t, false)
	// An InitRoot as the core proposed it: no default policy text.
	id := "legacyroot"
	res, _, err := e.node.Propose(context.Background(), fsm.InitRoot{Token: fsm.Token{
		Hash: testHasher.Hash(id), Accessor: "acc0000000000000000000000", Policies: []string{"root"},
		Path: "auth/token/root", DisplayName: "root", Type: fsm.TokenTypeService,
	}})
	if err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	e.root = id
	if _, ok := e.node.fsm.Policy("default"); ok {
		t.Fatal("default stored")
	}
	def := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}})
	if len(def.Warnings) != 0 {
		t.Fatalf("warnings %v", def.Warnings)
	}
	if _, err := e.client(def.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatal(err)
	}
	if text, _ := e.client(e.root).Sys().GetPolicy("default"); text != acl.DefaultPolicyText {
		t.Fatal("default not readable")
	}
	if names, _ := e.client(e.root).Sys().ListPolicies(); !slices.Equal(names, []string{"default", "root"}) {
		t.Fatalf("list %v", names)
	}
}

// TestMissingPolicyWarnings: only policies that are not stored warn.
func TestMissingPolicyWarnings(t *testing.T) {
	e := newEnv(t, true)
	s := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"web", "db"}})
	if !slices.Contains(s.Warnings, `Policy "web" does not exist`) || !slices.Contains(s.Warnings, `Policy "db" does not exist`) {
		t.Fatalf("warnings %v", s.Warnings)
	}
	e.putPolicy("web", `path "a" { capabilities = ["read"] }`)
	s = e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"web", "db"}})
	if slices.Contains(s.Warnings, `Policy "web" does not exist`) || !slices.Contains(s.Warnings, `Policy "db" does not exist`) {
		t.Fatalf("warnings %v", s.Warnings)
	}
	for _, w := range s.Warnings {
		if strings.Contains(w, `"default"`) {
			t.Fatalf("default warned: %v", s.Warnings)
		}
	}
}

// TestRoleExistenceCheck: a write to a role that does not exist is a create
// for the ACL; to an existing one, an update.
func TestRoleExistenceCheck(t *testing.T) {
	e := newEnv(t, true)
	s := newServer(e.node, Options{})
	op := func(method, path string) acl.Operation {
		return s.operation(&call{op: method, path: path})
	}
	if got := op("POST", "auth/token/roles/r1"); got != acl.OpCreate {
		t.Fatalf("new role: %s", got)
	}
	if res, _, err := e.node.Propose(context.Background(), fsm.SetRole{Role: fsm.Role{Name: "r1"}}); err != nil || res.Err != nil {
		t.Fatal(err, res.Err)
	}
	for method, want := range map[string]acl.Operation{"POST": acl.OpUpdate, "PUT": acl.OpUpdate, "GET": acl.OpRead, "DELETE": acl.OpDelete, "LIST": acl.OpList} {
		if got := op(method, "auth/token/roles/r1"); got != want {
			t.Errorf("%s existing role: %s, want %s", method, got, want)
		}
	}
	if got := op("PUT", "auth/token/create"); got != acl.OpUpdate {
		t.Fatalf("create path: %s", got)
	}
	if !rootProtected("auth/token/accessors/") || !rootProtected("sys/leases/revoke-prefix/auth/token/create") ||
		!rootProtected("sys/revoke-force/x") || !rootProtected("sys/rotate") || rootProtected("sys/leases/lookup") ||
		!rootProtected("sys/leases/lookup/") || rootProtected("auth/token/create") {
		t.Fatal("root paths")
	}
}
