package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/fsm"
)

// call sends a raw request as token and decodes the JSON body (nil when
// empty).
func (e *env) call(method, path, token, body string) (int, map[string]any) {
	e.t.Helper()
	code, _, raw := e.do(method, path, token, body)
	var out map[string]any
	if strings.TrimSpace(raw) != "" {
		if err := json.Unmarshal([]byte(raw), &out); err != nil {
			e.t.Fatalf("%s %s: decode %q: %v", method, path, raw, err)
		}
	}
	return code, out
}

// firstError is errors[0] of a decoded error body.
func firstError(body map[string]any) string {
	errs, _ := body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	s, _ := errs[0].(string)
	return s
}

// warningsOf is the warnings of a decoded envelope.
func warningsOf(body map[string]any) []string {
	ws, _ := body["warnings"].([]any)
	out := make([]string, 0, len(ws))
	for _, w := range ws {
		out = append(out, w.(string))
	}
	return out
}

// writeRole PUTs a role and fails unless the status is want.
func (e *env) writeRole(name, body string, want int) map[string]any {
	e.t.Helper()
	code, out := e.call("PUT", "/v1/auth/token/roles/"+name, e.root, body)
	if code != want {
		e.t.Fatalf("write role %s %s: %d %v, want %d", name, body, code, out, want)
	}
	return out
}

// roleData reads a role's data (nil when 404).
func (e *env) roleData(name string) map[string]any {
	e.t.Helper()
	code, out := e.call("GET", "/v1/auth/token/roles/"+name, e.root, "")
	if code == 404 {
		return nil
	}
	if code != 200 {
		e.t.Fatalf("read role %s: %d %v", name, code, out)
	}
	d, _ := out["data"].(map[string]any)
	return d
}

// createRole creates a token from a role as caller; it fails unless the
// status is want and returns the decoded body.
func (e *env) createRole(caller, role, body string, want int) map[string]any {
	e.t.Helper()
	code, out := e.call("POST", "/v1/auth/token/create/"+role, caller, body)
	if code != want {
		e.t.Fatalf("create/%s %s: %d %v, want %d", role, body, code, out, want)
	}
	return out
}

func authOf(body map[string]any) map[string]any {
	a, _ := body["auth"].(map[string]any)
	return a
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := []string{}
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func TestRoleCRUD(t *testing.T) {
	e := newEnv(t, true)
	c := e.client(e.root)
	// None yet: LIST and GET are 404 {"errors":[]}; the client says nil.
	for _, req := range [][2]string{{"LIST", "/v1/auth/token/roles"}, {"GET", "/v1/auth/token/roles?list=true"}, {"GET", "/v1/auth/token/roles/nope"}} {
		code, _, body := e.do(req[0], req[1], e.root, "")
		if code != 404 || strings.TrimSpace(body) != `{"errors":[]}` {
			t.Fatalf("%s %s: %d %s", req[0], req[1], code, body)
		}
	}
	if s, err := c.Logical().List("auth/token/roles"); s != nil || err != nil {
		t.Fatalf("List = %v, %v", s, err)
	}
	if s, err := c.Logical().Read("auth/token/roles/nope"); s != nil || err != nil {
		t.Fatalf("Read = %v, %v", s, err)
	}

	// A new role with no fields: Vault's defaults.
	code, _, body := e.do("PUT", "/v1/auth/token/roles/r1", e.root, `{}`)
	if code != 204 || body != "" {
		t.Fatalf("write: %d %q", code, body)
	}
	want := map[string]any{
		"name": "r1", "allowed_policies": []any{}, "disallowed_policies": []any{},
		"allowed_policies_glob": []any{}, "disallowed_policies_glob": []any{}, "allowed_entity_aliases": nil,
		"orphan": false, "renewable": true, "path_suffix": "", "period": 0.0, "token_period": 0.0,
		"explicit_max_ttl": 0.0, "token_explicit_max_ttl": 0.0, "token_type": "default-service",
		"token_no_default_policy": false,
	}
	if got := e.roleData("r1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("read:\n got %v\nwant %v", got, want)
	}
	e.writeRole("r0", `{}`, 204)
	s, err := c.Logical().List("auth/token/roles")
	if err != nil || !reflect.DeepEqual(strs(s.Data["keys"]), []string{"r0", "r1"}) {
		t.Fatalf("List = %v, %v", s, err)
	}
	// Delete: 204, also when missing.
	for _, name := range []string{"r1", "r1", "never"} {
		if code, _, _ := e.do("DELETE", "/v1/auth/token/roles/"+name, e.root, ""); code != 204 {
			t.Fatalf("delete %s: %d", name, code)
		}
	}
	if e.roleData("r1") != nil {
		t.Fatal("r1 still there")
	}
	// Invalid role names are unsupported paths.
	for _, name := range []string{"-a", "a-", "a%20b", ".x"} {
		code, out := e.call("PUT", "/v1/auth/token/roles/"+name, e.root, `{}`)
		if code != 404 || !strings.Contains(firstError(out), "unsupported path") {
			t.Fatalf("name %q: %d %v", name, code, out)
		}
	}
	// Names of one and two characters and with dots/dashes are fine.
	for _, name := range []string{"a", "ab", "a.b-c_d"} {
		e.writeRole(name, `{}`, 204)
	}
}

func TestRoleFieldsRoundTrip(t *testing.T) {
	e := newEnv(t, true)
	cases := []struct {
		name string
		body string
		want map[string]any
	}{
		{"allowed_list", `{"allowed_policies":["B"," a ","b",""]}`, map[string]any{"allowed_policies": []any{"a", "b"}}},
		{"allowed_comma", `{"allowed_policies":"web, db,web"}`, map[string]any{"allowed_policies": []any{"db", "web"}}},
		{"allowed_root_collapses", `{"allowed_policies":"a,root"}`, map[string]any{"allowed_policies": []any{"root"}}},
		{"disallowed", `{"disallowed_policies":"X,y,x"}`, map[string]any{"disallowed_policies": []any{"x", "y"}}},
		{"allowed_glob", `{"allowed_policies_glob":["dev-*","Ops*"]}`, map[string]any{"allowed_policies_glob": []any{"dev-*", "ops*"}}},
		{"disallowed_glob", `{"disallowed_policies_glob":"*admin*"}`, map[string]any{"disallowed_policies_glob": []any{"*admin*"}}},
		{"aliases_stable_order", `{"allowed_entity_aliases":"Zed,alpha,zed"}`, map[string]any{"allowed_entity_aliases": []any{"zed", "alpha"}}},
		{"orphan", `{"orphan":true}`, map[string]any{"orphan": true}},
		{"renewable_string", `{"renewable":"false"}`, map[string]any{"renewable": false}},
		{"path_suffix", `{"path_suffix":"v1.x-2"}`, map[string]any{"path_suffix": "v1.x-2"}},
		{"token_period", `{"token_period":"1h"}`, map[string]any{"token_period": 3600.0, "period": 0.0}},
		{"period_deprecated", `{"period":120}`, map[string]any{"token_period": 120.0, "period": 120.0}},
		{"token_explicit_max_ttl", `{"token_explicit_max_ttl":"2h"}`, map[string]any{"token_explicit_max_ttl": 7200.0, "explicit_max_ttl": 0.0}},
		{"explicit_max_ttl_deprecated", `{"explicit_max_ttl":"30m"}`, map[string]any{"token_explicit_max_ttl": 1800.0, "explicit_max_ttl": 1800.0}},
		{"token_bound_cidrs", `{"token_bound_cidrs":"10.0.0.0/8, 192.168.1.7,fd00::/8"}`, map[string]any{"token_bound_cidrs": []any{"10.0.0.0/8", "192.168.1.7", "fd00::/8"}}},
		{"bound_cidrs_deprecated", `{"bound_cidrs":["127.0.0.1/32"]}`, map[string]any{"token_bound_cidrs": []any{"127.0.0.1"}, "bound_cidrs": []any{"127.0.0.1"}}},
		{"token_type_service", `{"token_type":"service"}`, map[string]any{"token_type": "service"}},
		{"token_type_default_batch", `{"token_type":"default-batch"}`, map[string]any{"token_type": "default-batch"}},
		{"token_type_default", `{"token_type":"default"}`, map[string]any{"token_type": "default-service"}},
		{"token_type_empty", `{"token_type":""}`, map[string]any{"token_type": "default-service"}},
		{"token_type_batch", `{"token_type":"batch","orphan":true,"renewable":false}`, map[string]any{"token_type": "batch"}},
		{"token_no_default_policy", `{"token_no_default_policy":true}`, map[string]any{"token_no_default_policy": true}},
		{"token_num_uses", `{"token_num_uses":"3"}`, map[string]any{"token_num_uses": 3.0}},
		{"form_encoded_is_json_too", `{"allowed_policies":"a","orphan":"1"}`, map[string]any{"allowed_policies": []any{"a"}, "orphan": true}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("r%d", i)
			e.writeRole(name, tc.body, 204)
			got := e.roleData(name)
			for k, v := range tc.want {
				if !reflect.DeepEqual(got[k], v) {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			for _, k := range []string{"token_bound_cidrs", "bound_cidrs", "token_num_uses"} {
				if _, ok := tc.want[k]; !ok {
					if _, present := got[k]; present {
						t.Errorf("%s present: %v", k, got[k])
					}
				}
			}
		})
	}
	// Through the official client: every field at once round-trips.
	c := e.client(e.root)
	if _, err := c.Logical().Write("auth/token/roles/all", map[string]any{
		"allowed_policies": []string{"a", "b"}, "disallowed_policies": "c", "allowed_policies_glob": "g-*",
		"disallowed_policies_glob": []string{"*x"}, "orphan": true, "renewable": false, "path_suffix": "v1x",
		"allowed_entity_aliases": "svc-*", "token_period": "10m", "token_explicit_max_ttl": 7200,
		"token_type": "service", "token_bound_cidrs": []string{"127.0.0.1/32"}, "token_no_default_policy": true,
		"token_num_uses": 9,
	}); err != nil {
		t.Fatal(err)
	}
	s, err := c.Logical().Read("auth/token/roles/all")
	if err != nil || s == nil {
		t.Fatalf("read: %v", err)
	}
	got, _ := json.Marshal(s.Data)
	const want = `{"allowed_entity_aliases":["svc-*"],"allowed_policies":["a","b"],"allowed_policies_glob":["g-*"],` +
		`"disallowed_policies":["c"],"disallowed_policies_glob":["*x"],"explicit_max_ttl":0,"name":"all","orphan":true,` +
		`"path_suffix":"v1x","period":0,"renewable":false,"token_bound_cidrs":["127.0.0.1"],"token_explicit_max_ttl":7200,` +
		`"token_no_default_policy":true,"token_num_uses":9,"token_period":600,"token_type":"service"}`
	if string(got) != want {
		t.Fatalf("read:\n got %s\nwant %s", got, want)
	}
}

func TestRoleUpdateKeepsUnsuppliedFields(t *testing.T) {
	e := newEnv(t, true)
	e.writeRole("r", `{"allowed_policies":"a","orphan":true,"renewable":false,"path_suffix":"abc","token_period":60,
		"token_bound_cidrs":"10.0.0.0/8","token_num_uses":2,"token_type":"service","allowed_entity_aliases":"x"}`, 204)
	before := e.roleData("r")
	e.writeRole("r", `{"disallowed_policies":"z"}`, 204)
	after := e.roleData("r")
	before["disallowed_policies"] = []any{"z"}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("update changed other fields:\nbefore %v\n after %v", before, after)
	}
	// token_* replaces the deprecated value it supersedes.
	e.writeRole("p", `{"period":100,"explicit_max_ttl":200,"bound_cidrs":"10.0.0.1"}`, 204)
	e.writeRole("p", `{"token_period":50}`, 204)
	d := e.roleData("p")
	if d["period"] != 0.0 || d["token_period"] != 50.0 || d["explicit_max_ttl"] != 200.0 || d["token_explicit_max_ttl"] != 200.0 {
		t.Fatalf("after token_period: %v", d)
	}
}

func TestRoleWarnings(t *testing.T) {
	e := newEnv(t, true)
	out := e.writeRole("w", `{"token_period":60,"period":30,"token_bound_cidrs":"10.0.0.1","bound_cidrs":"10.0.0.2",
		"token_explicit_max_ttl":"800h","explicit_max_ttl":5}`, 200)
	want := []string{
		"Both 'token_period' and deprecated 'period' value supplied, ignoring the deprecated value",
		"Both 'token_bound_cidrs' and deprecated 'bound_cidrs' value supplied, ignoring the deprecated value",
		"Both 'token_explicit_max_ttl' and deprecated 'explicit_max_ttl' value supplied, ignoring the deprecated value",
		"Given explicit max TTL of 2880000 is greater than system/mount allowed value of 2764800 seconds; until this is fixed attempting to create tokens against this role will result in an error",
	}
	if got := warningsOf(out); !reflect.DeepEqual(got, want) {
		t.Fatalf("warnings:\n got %q\nwant %q", got, want)
	}
	if out["data"] != nil || out["auth"] != nil {
		t.Fatalf("body %v", out)
	}
	d := e.roleData("w")
	if d["token_period"] != 60.0 || d["period"] != 0.0 || !reflect.DeepEqual(d["token_bound_cidrs"], []any{"10.0.0.1"}) || d["bound_cidrs"] != nil {
		t.Fatalf("stored %v", d)
	}
}

func TestRoleValidation(t *testing.T) {
	e := newEnv(t, true)
	e.writeRole("existing", `{"allowed_policies":"a","token_type":"default-batch"}`, 204)
	cases := []struct {
		role, body, msg string
	}{
		{"x", `{"path_suffix":"v1"}`, `given role path suffix contains invalid characters; must match \w[\w-.]+\w`},
		{"x", `{"path_suffix":"a/b/c"}`, "given role path suffix contains invalid characters"},
		{"x", `{"path_suffix":"ab c"}`, "given role path suffix contains invalid characters"},
		{"x", `{"path_suffix":"a..b"}`, "error registering path suffix: path cannot contain parent references"},
		{"x", `{"token_type":null}`, "Invalid 'token_type' value: null"},
		{"x", `{"token_type":"bogus"}`, `invalid 'token_type' value "bogus"`},
		{"x", `{"token_type":"batch"}`, "'token_type' cannot be 'batch' when role is set to generate non-orphan tokens"},
		{"x", `{"token_type":"batch","orphan":true,"token_period":60}`, "'token_type' cannot be 'batch' when role is set to generate periodic tokens"},
		{"x", `{"token_type":"batch","orphan":true}`, "'token_type' cannot be 'batch' when role is set to generate renewable tokens"},
		{"x", `{"token_type":"batch","orphan":true,"renewable":false,"token_explicit_max_ttl":60}`, "'token_type' cannot be 'batch' when role is set to generate tokens with an explicit max TTL"},
		{"x", `{"token_type":"batch","orphan":true,"renewable":false,"token_num_uses":2}`, "error parsing role fields: 'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with limited use count"},
		{"existing", `{"token_period":60}`, "error parsing role fields: 'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens"},
		{"x", `{"token_num_uses":-1}`, "error parsing role fields: 'token_num_uses' cannot be negative"},
		{"x", `{"token_period":-5}`, "cannot provide negative value"},
		{"x", `{"token_explicit_max_ttl":"-1h"}`, "cannot provide negative value"},
		{"x", `{"token_bound_cidrs":"10.0.0.0/33"}`, `error parsing role fields: error parsing address "10.0.0.0/33"`},
		{"x", `{"token_bound_cidrs":["bogus"]}`, `error parsing role fields: error parsing address "bogus": Unable to convert "bogus" to an IPv4 or IPv6 address, or a UNIX Socket`},
		{"x", `{"bound_cidrs":"1.2.3"}`, `error parsing bound_cidrs: error parsing address "1.2.3"`},
		{"x", `{"token_num_uses":"abc"}`, `Field validation failed: error converting input for field "token_num_uses"`},
		{"x", `{"orphan":"maybe"}`, `Field validation failed: error converting input for field "orphan"`},
	}
	existing := e.roleData("existing")
	for _, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			code, out := e.call("PUT", "/v1/auth/token/roles/"+tc.role, e.root, tc.body)
			if code != 400 || !strings.Contains(firstError(out), tc.msg) {
				t.Fatalf("%d %q, want 400 containing %q", code, firstError(out), tc.msg)
			}
			// Nothing changed.
			if tc.role == "x" && e.roleData("x") != nil {
				t.Fatal("role x was stored")
			}
			if got := e.roleData("existing"); !reflect.DeepEqual(got, existing) {
				t.Fatalf("existing changed: %v", got)
			}
		})
	}
	// default-batch with a period supplied with the type is Vault-legal.
	e.writeRole("db", `{"token_type":"default-batch","token_period":60}`, 204)
}

func TestGlobMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "anything", true}, {"", "", true}, {"", "a", false}, {"abc", "abc", true}, {"abc", "abcd", false},
		{"dev-*", "dev-web", true}, {"dev-*", "prod-web", false}, {"*-web", "dev-web", true}, {"*-web", "dev-db", false},
		{"*adm*", "sysadmin", true}, {"a*c*e", "abcde", true}, {"a*c*e", "abde", false}, {"a*e", "ae", true},
	}
	for _, tc := range cases {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pattern, tc.s, got)
		}
	}
}

func TestCreateWithRolePolicies(t *testing.T) {
	e := newEnv(t, true)
	// A non-root caller (policies p1, default) allowed to use the roles:
	// roles let it mint policies its own token lacks.
	if code, out := e.call("PUT", "/v1/sys/policies/acl/creator", e.root, `{"policy":"path \"auth/token/create/*\" { capabilities = [\"update\"] }"}`); code != 204 {
		t.Fatalf("policy: %d %v", code, out)
	}
	caller := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"creator", "p1"}}).Auth.ClientToken
	roles := map[string]string{
		"allowed":       `{"allowed_policies":"a,b"}`,
		"allowed_glob":  `{"allowed_policies":"a","allowed_policies_glob":"dev-*"}`,
		"disallowed":    `{"disallowed_policies":"bad"}`,
		"dis_glob":      `{"disallowed_policies_glob":"*admin*"}`,
		"dis_default":   `{"allowed_policies":"a","disallowed_policies":"default"}`,
		"dis_def_glob":  `{"allowed_policies":"a","disallowed_policies_glob":"def*"}`,
		"no_default":    `{"allowed_policies":"a","token_no_default_policy":true}`,
		"allowed_root":  `{"allowed_policies":"root"}`,
		"nolists":       `{}`,
		"nolists_nodef": `{"token_no_default_policy":true}`,
	}
	for name, body := range roles {
		e.writeRole(name, body, 204)
	}
	cases := []struct {
		role, body string
		want       []string // nil: want an error containing msg
		msg        string
	}{
		{"allowed", `{}`, []string{"a", "b", "default"}, ""},
		{"allowed", `{"policies":["A"]}`, []string{"a", "default"}, ""},
		{"allowed", `{"policies":["a","default"]}`, []string{"a", "default"}, ""},
		{"allowed", `{"policies":["c"]}`, nil, `token policies (["c" "default"]) must be subset of the role's allowed policies (["a" "b" "default"]) or glob policies ([])`},
		{"allowed", `{"no_default_policy":true}`, []string{"a", "b"}, ""},
		{"allowed_glob", `{}`, []string{"a", "default"}, ""},
		{"allowed_glob", `{"policies":"dev-web"}`, []string{"default", "dev-web"}, ""},
		{"allowed_glob", `{"policies":["prod"]}`, nil, `or glob policies (["dev-*"])`},
		{"disallowed", `{}`, []string{"creator", "default", "p1"}, ""},
		{"disallowed", `{"policies":["x","y"]}`, []string{"default", "x", "y"}, ""},
		{"disallowed", `{"policies":["bad"]}`, nil, `token policy "bad" is disallowed by this role`},
		{"dis_glob", `{"policies":["sysadmins"]}`, nil, `token policy "sysadmins" is disallowed by this role`},
		{"dis_glob", `{"policies":["ops"]}`, []string{"default", "ops"}, ""},
		{"dis_default", `{}`, []string{"a"}, ""},
		{"dis_default", `{"policies":["default"]}`, nil, `must be subset of the role's allowed policies`},
		{"dis_def_glob", `{}`, []string{"a"}, ""},
		{"no_default", `{}`, []string{"a"}, ""},
		// As in Vault: default is not allowed when the role does not add it.
		{"no_default", `{"policies":["a","default"]}`, nil, `must be subset of the role's allowed policies (["a"])`},
		{"allowed_root", `{}`, nil, "root tokens may not be created without parent token being root"},
		// Without lists, the parent-subset rule applies (caller is not sudo).
		{"nolists", `{}`, []string{"creator", "default", "p1"}, ""},
		{"nolists", `{"policies":["p1"]}`, []string{"default", "p1"}, ""},
		{"nolists", `{"policies":["other"]}`, nil, "child policies must be subset of parent"},
		{"nolists_nodef", `{"policies":["p1"]}`, []string{"p1"}, ""},
		{"nolists", `{"policies":["response-wrapping"]}`, nil, `cannot assign policy "response-wrapping"`},
	}
	for _, tc := range cases {
		t.Run(tc.role+tc.body, func(t *testing.T) {
			code, out := e.call("POST", "/v1/auth/token/create/"+tc.role, caller, tc.body)
			if tc.want == nil {
				if code != 400 || !strings.Contains(firstError(out), tc.msg) {
					t.Fatalf("%d %q, want 400 containing %q", code, firstError(out), tc.msg)
				}
				return
			}
			if code != 200 {
				t.Fatalf("%d %v", code, out)
			}
			a := authOf(out)
			if got := strs(a["policies"]); !slices.Equal(got, tc.want) {
				t.Fatalf("policies %v, want %v", got, tc.want)
			}
		})
	}
	// The root caller with a role that allows root gets a root token.
	out := e.createRole(e.root, "allowed_root", `{"ttl":"1h"}`, 200)
	if got := strs(authOf(out)["policies"]); !slices.Equal(got, []string{"root"}) {
		t.Fatalf("root via role: %v", got)
	}
}

func TestCreateWithRoleApplies(t *testing.T) {
	e := newEnv(t, true)
	c := e.client(e.root)
	// Unknown role.
	code, out := e.call("POST", "/v1/auth/token/create/nope", e.root, `{}`)
	if code != 400 || firstError(out) != "unknown role nope" {
		t.Fatalf("unknown role: %d %v", code, out)
	}
	// Appendix A's r1.
	e.writeRole("r1", `{"allowed_policies":"a,b","token_period":"1h","token_explicit_max_ttl":"3h","path_suffix":"v1x"}`, 204)
	s, err := c.Auth().Token().CreateWithRole(&vault.TokenCreateRequest{}, "r1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Auth.Policies, []string{"a", "b", "default"}) || s.Auth.LeaseDuration != 3600 || !s.Auth.Renewable || s.Auth.Orphan {
		t.Fatalf("auth %+v", s.Auth)
	}
	l, err := c.Auth().Token().Lookup(s.Auth.ClientToken)
	if err != nil {
		t.Fatal(err)
	}
	if l.Data["path"] != "auth/token/create/r1/v1x" || l.Data["role"] != "r1" || l.Data["explicit_max_ttl"] != json.Number("0") {
		t.Fatalf("lookup %v", l.Data)
	}
	if _, ok := l.Data["period"]; ok {
		t.Fatalf("role period shown in lookup: %v", l.Data)
	}
	// A role period makes a periodic token without sudo; request values
	// are combined (lesser wins, with warnings) and the request's own show.
	s, err = c.Auth().Token().CreateWithRole(&vault.TokenCreateRequest{Period: "2h", ExplicitMaxTTL: "2h"}, "r1")
	if err != nil {
		t.Fatal(err)
	}
	wantW := []string{
		"Explicit max TTL specified both during creation call and in role; using the lesser value of 7200 seconds",
		"Period specified both during creation call and in role; using the lesser value of 3600 seconds",
	}
	for _, w := range wantW {
		if !slices.Contains(s.Warnings, w) {
			t.Fatalf("warnings %q lack %q", s.Warnings, w)
		}
	}
	l, _ = c.Auth().Token().Lookup(s.Auth.ClientToken)
	if l.Data["period"] != json.Number("7200") || l.Data["explicit_max_ttl"] != json.Number("7200") || s.Auth.LeaseDuration != 3600 {
		t.Fatalf("lookup %v auth %+v", l.Data, s.Auth)
	}

	// orphan, renewable AND, num_uses merge, no_parent ignored.
	e.writeRole("o", `{"orphan":true,"renewable":false,"token_num_uses":3}`, 204)
	for _, tc := range []struct {
		body     string
		numUses  float64
		orphan   bool
		renew    bool
		children int
	}{
		{`{}`, 3, true, false, 0},
		{`{"num_uses":5}`, 3, true, false, 0},
		{`{"num_uses":2,"renewable":true}`, 2, true, false, 0},
	} {
		a := authOf(e.createRole(e.root, "o", tc.body, 200))
		if a["num_uses"] != tc.numUses || a["orphan"] != tc.orphan || a["renewable"] != tc.renew {
			t.Fatalf("%s: auth %v", tc.body, a)
		}
	}
	e.writeRole("child", `{"renewable":true}`, 204)
	a := authOf(e.createRole(e.root, "child", `{"no_parent":true,"renewable":false}`, 200))
	if a["orphan"] != false || a["renewable"] != false {
		t.Fatalf("child role: %v", a)
	}
	// Type resolution: service forced (whatever the request says); with a
	// default-* role an invalid request type is refused.
	e.writeRole("svc", `{"token_type":"service"}`, 204)
	for _, body := range []string{`{"type":"batch"}`, `{"type":"x"}`} {
		if a := authOf(e.createRole(e.root, "svc", body, 200)); a["token_type"] != "service" {
			t.Fatalf("svc role %s: %v", body, a)
		}
	}
	e.writeRole("dflt", `{}`, 204)
	if _, out := e.call("POST", "/v1/auth/token/create/dflt", e.root, `{"type":"x"}`); firstError(out) != "invalid 'token_type' value" {
		t.Fatalf("bad type: %v", out)
	}
	// Batch roles mint batch tokens (batchtoken.go).
	e.writeRole("b", `{"token_type":"batch","orphan":true,"renewable":false,"allowed_policies":"a"}`, 204)
	a = authOf(e.createRole(e.root, "b", `{"ttl":"5m"}`, 200))
	if a["token_type"] != "batch" || !strings.HasPrefix(a["client_token"].(string), "hvb.") || a["accessor"] != "" {
		t.Fatalf("batch role: %v", a)
	}
	code, out = e.call("POST", "/v1/auth/token/create/b", e.root, `{"num_uses":2}`)
	if code != 400 || firstError(out) != `batch tokens cannot have "num_uses" set` {
		t.Fatalf("batch num_uses: %d %v", code, out)
	}

	// entity_alias: only with a role, only an allowed one.
	e.writeRole("ent", `{"allowed_entity_aliases":"svc-*,Exact"}`, 204)
	code, out = e.call("POST", "/v1/auth/token/create", e.root, `{"entity_alias":"x"}`)
	if code != 400 || firstError(out) != "'entity_alias' is only allowed in combination with token role" {
		t.Fatalf("alias without role: %d %v", code, out)
	}
	code, out = e.call("POST", "/v1/auth/token/create/ent", e.root, `{"entity_alias":"other"}`)
	if code != 400 || firstError(out) != "invalid 'entity_alias' value" {
		t.Fatalf("bad alias: %d %v", code, out)
	}
	e1 := authOf(e.createRole(e.root, "ent", `{"entity_alias":"SVC-web"}`, 200))["entity_id"].(string)
	e2 := authOf(e.createRole(e.root, "ent", `{"entity_alias":"svc-web"}`, 200))["entity_id"].(string)
	e3 := authOf(e.createRole(e.root, "ent", `{"entity_alias":"exact"}`, 200))["entity_id"].(string)
	if len(e1) != 36 || e1 != e2 || e1 == e3 {
		t.Fatalf("entity ids %q %q %q", e1, e2, e3)
	}
	// A child inherits the parent's entity; an orphan does not.
	parent := authOf(e.createRole(e.root, "ent", `{"entity_alias":"exact","policies":["root"],"ttl":"1h"}`, 200))
	pt := parent["client_token"].(string)
	if a := authOf(e.createRole(pt, "dflt", `{"ttl":"1m"}`, 200)); a["entity_id"] != e3 {
		t.Fatalf("child entity %v, want %s", a["entity_id"], e3)
	}
	if got := e.create(pt, &vault.TokenCreateRequest{TTL: "1m"}).Auth.EntityID; got != e3 {
		t.Fatalf("plain child entity %q", got)
	}
	l, _ = c.Auth().Token().Lookup(pt)
	if l.Data["entity_id"] != e3 {
		t.Fatalf("lookup entity_id %v", l.Data["entity_id"])
	}
	if got := authOf(e.createRole(pt, "o", `{"ttl":"1m"}`, 200))["entity_id"]; got != "" {
		t.Fatalf("orphan entity %v", got)
	}
}

func TestRenewRoleToken(t *testing.T) {
	e := newEnv(t, true)
	c := e.client(e.root)
	e.writeRole("p", `{"token_period":"1h"}`, 204)
	s, err := c.Auth().Token().CreateWithRole(&vault.TokenCreateRequest{}, "p")
	if err != nil {
		t.Fatal(err)
	}
	tok := s.Auth.ClientToken
	// Role edits take effect at the next renewal.
	e.writeRole("p", `{"token_period":"10m"}`, 204)
	r, err := c.Auth().Token().Renew(tok, 7200)
	if err != nil || r.Auth.LeaseDuration != 600 {
		t.Fatalf("renew: %v %+v", err, r)
	}
	e.writeRole("p", `{"token_explicit_max_ttl":"5m"}`, 204)
	r, err = c.Auth().Token().Renew(tok, 0)
	if err != nil || r.Auth.LeaseDuration > 300 || r.Auth.LeaseDuration < 295 {
		t.Fatalf("renew capped: %v %+v", err, r)
	}
	// Role deleted: 500, the token keeps working.
	if code, _, _ := e.do("DELETE", "/v1/auth/token/roles/p", e.root, ""); code != 204 {
		t.Fatal("delete")
	}
	code, out := e.call("PUT", "/v1/auth/token/renew", e.root, `{"token":"`+tok+`"}`)
	if code != 500 || firstError(out) != `original token role "p" could not be found, not renewing` {
		t.Fatalf("renew without role: %d %v", code, out)
	}
	if _, err := newClient(t, e.srv.URL, tok).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("token of a deleted role: %v", err)
	}
	// A role deleted while a create was in flight issues nothing.
	r2, _, err := e.node.Propose(context.Background(), fsm.CreateToken{Token: fsm.Token{Hash: testHasher.Hash("x"), Accessor: "acc-x", Role: "gone"}, Now: time.Now().UnixNano()})
	if err != nil || r2.Err == nil {
		t.Fatalf("create with a missing role: %v %v", err, r2.Err)
	}
}

// fromAddr sends a request to h as if from remote (host:port).
func fromAddr(h http.Handler, remote, method, path, token, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = remote
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestBoundCIDRs(t *testing.T) {
	e := newEnv(t, true)
	h := New(e.node, testOptions(e.logBuf))
	e.writeRole("net", `{"token_bound_cidrs":"10.0.0.0/8,192.168.7.7","token_num_uses":0}`, 204)
	a := authOf(e.createRole(e.root, "net", `{"ttl":"1h","policies":["root"]}`, 200))
	tok := a["client_token"].(string)

	l := e.client(e.root)
	info, err := l.Auth().Token().Lookup(tok)
	if err != nil || !reflect.DeepEqual(info.Data["bound_cidrs"], []any{"10.0.0.0/8", "192.168.7.7"}) {
		t.Fatalf("lookup bound_cidrs: %v %v", err, info)
	}
	for _, tc := range []struct {
		remote string
		want   int
		hdr    []string
	}{
		{"10.1.2.3:5000", 200, nil},
		{"192.168.7.7:1", 200, nil},
		{"[::ffff:10.9.9.9]:1", 200, nil},
		{"192.168.7.8:1", 403, nil},
		{"127.0.0.1:1", 403, nil},
		// X-Forwarded-For is never believed.
		{"127.0.0.1:1", 403, []string{"X-Forwarded-For", "10.0.0.1"}},
		// Nor is a hop marker with an unverifiable client address.
		{"127.0.0.1:1", 403, []string{HopHeader, "x", headerClientAddr, "10.0.0.1 " + fmt.Sprint(time.Now().Unix()) + " forged"}},
	} {
		rec := fromAddr(h, tc.remote, "GET", "/v1/auth/token/lookup-self", tok, "", tc.hdr...)
		if rec.Code != tc.want {
			t.Fatalf("%s %v: %d %s", tc.remote, tc.hdr, rec.Code, rec.Body)
		}
		if tc.want == 403 && strings.TrimSpace(rec.Body.String()) != `{"errors":["permission denied"]}` {
			t.Fatalf("403 body %s", rec.Body)
		}
	}
	// A child created without a role inherits the CIDRs; an orphan does not.
	rec := fromAddr(h, "10.0.0.5:1", "POST", "/v1/auth/token/create", tok, `{"ttl":"1h"}`)
	var env struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &env) != nil {
		t.Fatalf("child: %d %s", rec.Code, rec.Body)
	}
	if rec := fromAddr(h, "127.0.0.1:1", "GET", "/v1/auth/token/lookup-self", env.Auth.ClientToken, ""); rec.Code != 403 {
		t.Fatalf("child from outside: %d", rec.Code)
	}
	rec = fromAddr(h, "10.0.0.5:1", "POST", "/v1/auth/token/create-orphan", tok, `{"ttl":"1h"}`)
	if rec.Code != 200 || json.Unmarshal(rec.Body.Bytes(), &env) != nil {
		t.Fatalf("orphan: %d %s", rec.Code, rec.Body)
	}
	if rec := fromAddr(h, "127.0.0.1:1", "GET", "/v1/auth/token/lookup-self", env.Auth.ClientToken, ""); rec.Code != 200 {
		t.Fatalf("orphan from outside: %d", rec.Code)
	}
	// A denied request does not consume a use.
	e.writeRole("lim", `{"token_bound_cidrs":"10.0.0.0/8","token_num_uses":2}`, 204)
	lim := authOf(e.createRole(e.root, "lim", `{"ttl":"1h"}`, 200))["client_token"].(string)
	for i := 0; i < 3; i++ {
		if rec := fromAddr(h, "127.0.0.1:1", "GET", "/v1/auth/token/lookup-self", lim, ""); rec.Code != 403 {
			t.Fatalf("limited from outside: %d", rec.Code)
		}
	}
	if tk, _ := e.node.State().Valid(testHasher.Hash(lim), time.Now().UnixNano()); tk.NumUses != 2 {
		t.Fatalf("num_uses = %d", tk.NumUses)
	}
	// A non-expiring root token ignores its CIDRs.
	rootHash := testHasher.Hash("hvs.boundroot")
	res, _, err := e.node.Propose(context.Background(), fsm.CreateToken{Token: fsm.Token{
		Hash: rootHash, Accessor: "boundrootaccessor", Policies: []string{"root"}, Path: "auth/token/create",
		BoundCIDRs: []string{"10.0.0.0/8"}, Type: fsm.TokenTypeService, CreationTime: time.Now().UnixNano(),
	}, Now: time.Now().UnixNano()})
	if err != nil || res.Err != nil {
		t.Fatalf("create bound root: %v %v", err, res.Err)
	}
	if rec := fromAddr(h, "127.0.0.1:1", "GET", "/v1/auth/token/lookup-self", "hvs.boundroot", ""); rec.Code != 200 {
		t.Fatalf("non-expiring root from outside: %d", rec.Code)
	}
}

// TestBoundCIDRsThroughForwarding: a write sent to a follower is checked
// on the leader against the original client address, which the follower
// stamps; the leader does not believe an unstamped hop marker.
func TestBoundCIDRsThroughForwarding(t *testing.T) {
	c := newCluster2(t)
	c.writeRole("net", `{"token_bound_cidrs":"10.0.0.0/8"}`, 204)
	tok := authOf(c.createRole(c.root, "net", `{"policies":["root"],"ttl":"1h"}`, 200))["client_token"].(string)
	c.follower.replicate(0)
	fh := New(c.follower, testOptions(c.logBuf))
	// From inside the CIDR through the follower: forwarded, allowed (the
	// leader sees the follower's 127.0.0.1 but checks the stamp).
	rec := fromAddr(fh, "10.2.3.4:999", "POST", "/v1/auth/token/create", tok, `{"ttl":"1h"}`)
	if rec.Code != 200 {
		t.Fatalf("inside via follower: %d %s", rec.Code, rec.Body)
	}
	// From outside through the follower: refused.
	rec = fromAddr(fh, "172.16.0.1:999", "POST", "/v1/auth/token/create", tok, `{"ttl":"1h"}`)
	if rec.Code != 403 {
		t.Fatalf("outside via follower: %d %s", rec.Code, rec.Body)
	}
	// A client claiming its own stamp through the follower is re-stamped.
	rec = fromAddr(fh, "172.16.0.1:999", "POST", "/v1/auth/token/create", tok, `{"ttl":"1h"}`, headerClientAddr, "10.0.0.1 1 x")
	if rec.Code != 403 {
		t.Fatalf("forged stamp via follower: %d %s", rec.Code, rec.Body)
	}
	// A stamp for another token does not verify.
	s := newServer(c.follower, testOptions(c.logBuf))
	req := httptest.NewRequest("POST", "/v1/auth/token/create", nil)
	req.RemoteAddr = "10.0.0.1:1"
	req.Header.Set("X-Vault-Token", c.root)
	s.stampClientAddr(&call{r: req})
	stamp := req.Header.Get(headerClientAddr)
	if stamp == "" {
		t.Fatal("no stamp")
	}
	rec = fromAddr(New(c.node, testOptions(c.logBuf)), "127.0.0.1:1", "GET", "/v1/auth/token/lookup-self", tok, "", HopHeader, "f", headerClientAddr, stamp)
	if rec.Code != 403 {
		t.Fatalf("stamp of another token: %d", rec.Code)
	}
}

func TestRevokePrefix(t *testing.T) {
	e := newEnv(t, true)
	e.writeRole("r", `{"path_suffix":"v1x"}`, 204)
	e.writeRole("r2", `{}`, 204)
	e.writeRole("rx", `{}`, 204)
	var r, r2, rx []string
	for i := 0; i < 5; i++ {
		r = append(r, authOf(e.createRole(e.root, "r", `{}`, 200))["client_token"].(string))
		r2 = append(r2, authOf(e.createRole(e.root, "r2", `{}`, 200))["client_token"].(string))
		rx = append(rx, authOf(e.createRole(e.root, "rx", `{}`, 200))["client_token"].(string))
	}
	// A child of an r token (created via plain create) goes with it.
	child := e.create(r[0], &vault.TokenCreateRequest{}).Auth.ClientToken
	valid := func(tok string) bool {
		_, ok := e.node.State().Valid(testHasher.Hash(tok), time.Now().UnixNano())
		return ok
	}
	// Non-root: 403, nothing revoked.
	user := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}}).Auth.ClientToken
	if code, _, _ := e.do("PUT", "/v1/sys/leases/revoke-prefix/auth/token/create/r", user, ""); code != 403 {
		t.Fatalf("non-root: %d", code)
	}
	// Outside auth/token: 204, nothing.
	for _, p := range []string{"secret/foo", "a", "auth/token/create-or"} {
		if code, _, body := e.do("PUT", "/v1/sys/leases/revoke-prefix/"+p, e.root, ""); code != 204 || body != "" {
			t.Fatalf("%s: %d %q", p, code, body)
		}
	}
	// The official client; a trailing-slash-free prefix is segment-wise.
	if err := e.client(e.root).Sys().RevokePrefix("auth/token/create/r"); err != nil {
		t.Fatal(err)
	}
	for _, tok := range append(r, child) {
		if valid(tok) {
			t.Fatal("r token still valid")
		}
	}
	for _, tok := range append(r2, rx...) {
		if !valid(tok) {
			t.Fatal("other role's token revoked")
		}
	}
	// sync=false: 202, done anyway; legacy path.
	if code, _, body := e.do("PUT", "/v1/sys/revoke-prefix/auth/token/create/r2/", e.root, `{"sync":false}`); code != 202 || body != "" {
		t.Fatalf("async: %d %q", code, body)
	}
	for _, tok := range r2 {
		if valid(tok) {
			t.Fatal("r2 token still valid")
		}
	}
	// revoke-force (both paths): always 204.
	if code, _, _ := e.do("PUT", "/v1/sys/leases/revoke-force/auth/token/create/rx", e.root, `{"sync":false}`); code != 204 {
		t.Fatalf("force: %d", code)
	}
	if code, _, _ := e.do("POST", "/v1/sys/revoke-force/auth/token/create/rx", e.root, ``); code != 204 {
		t.Fatalf("legacy force: %d", code)
	}
	for _, tok := range rx {
		if valid(tok) {
			t.Fatal("rx token still valid")
		}
	}
	if !valid(e.root) || !valid(user) {
		t.Fatal("unrelated tokens revoked")
	}
	if got, ok := tokenLeasePrefix("auth/"); !ok || got != "auth/token" {
		t.Fatalf("auth/ → %q", got)
	}
}

func TestTidy(t *testing.T) {
	e := newEnv(t, true)
	parent := e.create(e.root, &vault.TokenCreateRequest{TTL: "1h"}).Auth
	child := e.create(parent.ClientToken, &vault.TokenCreateRequest{TTL: "1h"}).Auth
	ch := testHasher.Hash(child.ClientToken)
	for _, kind := range []string{fsm.CorruptAccessorMissing, fsm.CorruptChildrenMissing, fsm.CorruptPathExtra} {
		if err := fsm.CorruptIndexForTest(e.node.fsm, kind, ch); err != nil {
			t.Fatal(err)
		}
	}
	if e.node.fsm.Check().Total() != 3 {
		t.Fatalf("check before: %+v", e.node.fsm.Check())
	}
	// Non-root callers may not tidy.
	user := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}}).Auth.ClientToken
	if code, _ := e.call("PUT", "/v1/auth/token/tidy", user, ""); code != 403 {
		t.Fatalf("non-root tidy: %d", code)
	}
	s, err := e.client(e.root).Logical().Write("auth/token/tidy", nil)
	if err != nil || s == nil {
		t.Fatalf("tidy: %v", err)
	}
	if !slices.Equal(s.Warnings, []string{msgTidyStarted}) {
		t.Fatalf("warnings %q", s.Warnings)
	}
	d := s.Data
	if d["accessors_missing"] != json.Number("1") || d["children_missing"] != json.Number("1") ||
		d["path_extra"] != json.Number("1") || d["repairs_total"] != json.Number("3") || d["tokens"] != json.Number("4") {
		t.Fatalf("data %v", d)
	}
	if got := e.node.fsm.Check(); got.Total() != 0 {
		t.Fatalf("check after: %+v", got)
	}
	if !strings.Contains(e.logBuf.String(), "tidy finished") || !strings.Contains(e.logBuf.String(), "accessors_missing=1") {
		t.Fatalf("no tidy log line:\n%s", e.logBuf.String())
	}
	// The raw status and envelope.
	code, _, body := e.do("POST", "/v1/auth/token/tidy", e.root, "")
	if code != 202 || !strings.Contains(body, `"mount_type":""`) || !strings.Contains(body, `"repairs_total":0`) {
		t.Fatalf("second tidy: %d %s", code, body)
	}
	// While one runs: 200 with Vault's warning.
	srv := newServer(e.node, testOptions(e.logBuf))
	srv.tidyRunning.Store(true)
	rec := record(srv, "POST", "/v1/auth/token/tidy", e.root, "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), msgTidyRunning) {
		t.Fatalf("concurrent tidy: %d %s", rec.Code, rec.Body)
	}
	// Revoking the parent after tidy still takes the child (index repaired).
	if err := e.client(e.root).Auth().Token().RevokeTree(parent.ClientToken); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.node.State().Token(ch); ok {
		t.Fatal("child survived its parent after tidy")
	}
}
