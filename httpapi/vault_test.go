package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// wantStatus asserts err is a Vault ResponseError with this status whose
// first error contains substr.
func wantStatus(t *testing.T, err error, status int, substr string) {
	t.Helper()
	var re *vault.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want ResponseError %d, got %v", status, err)
	}
	if re.StatusCode != status {
		t.Fatalf("status = %d, want %d (%v)", re.StatusCode, status, re.Errors)
	}
	if substr != "" && (len(re.Errors) == 0 || !strings.Contains(re.Errors[0], substr)) {
		t.Fatalf("errors = %q, want one containing %q", re.Errors, substr)
	}
}

func boolPtr(b bool) *bool { return &b }

func TestCreateAndLookup(t *testing.T) {
	e := newEnv(t, true)
	s := e.create(e.root, &vault.TokenCreateRequest{
		Policies:    []string{"web", "Default"},
		TTL:         "1h",
		Metadata:    map[string]string{"user": "x"},
		DisplayName: "my app.v2",
	})
	a := s.Auth
	if !strings.HasPrefix(a.ClientToken, "hvs.") || len(a.ClientToken) != 28 {
		t.Fatalf("client_token %q", a.ClientToken)
	}
	if len(a.Accessor) != 24 || !slices.Equal(a.Policies, []string{"default", "web"}) ||
		a.LeaseDuration != 3600 || !a.Renewable || a.Orphan || a.Metadata["user"] != "x" {
		t.Fatalf("auth = %+v", a)
	}
	if !slices.Contains(s.Warnings, `Policy "web" does not exist`) {
		t.Fatalf("warnings = %q", s.Warnings)
	}

	l, err := e.client(e.root).Auth().Token().Lookup(a.ClientToken)
	if err != nil {
		t.Fatal(err)
	}
	d := l.Data
	checks := map[string]any{
		"id": a.ClientToken, "accessor": a.Accessor, "path": "auth/token/create",
		"display_name": "token-my-app-v2", "orphan": false, "type": "service", "renewable": true,
		"entity_id": "", "creation_ttl": json.Number("3600"), "num_uses": json.Number("0"),
		"explicit_max_ttl": json.Number("0"),
	}
	for k, want := range checks {
		if d[k] != want {
			t.Errorf("lookup %s = %#v, want %#v", k, d[k], want)
		}
	}
	for _, k := range []string{"expire_time", "issue_time", "creation_time", "ttl", "meta", "policies"} {
		if d[k] == nil {
			t.Errorf("lookup %s missing", k)
		}
	}
	if _, ok := d["period"]; ok {
		t.Errorf("period present without period")
	}
	if _, err := time.Parse(time.RFC3339Nano, d["expire_time"].(string)); err != nil {
		t.Errorf("expire_time: %v", err)
	}
	if ttl, _ := d["ttl"].(json.Number).Int64(); ttl < 3590 || ttl > 3600 {
		t.Errorf("ttl = %d", ttl)
	}

	// Lookup via GET /lookup/{token} and ?token=.
	for _, p := range []string{"/v1/auth/token/lookup/" + a.ClientToken, "/v1/auth/token/lookup?token=" + a.ClientToken} {
		code, _, body := e.do("GET", p, e.root, "")
		if code != 200 || !strings.Contains(body, a.Accessor) {
			t.Fatalf("GET %s: %d %s", p, code, body)
		}
	}
	// Lookup of an unknown token is 403 bad token.
	_, err = e.client(e.root).Auth().Token().Lookup("hvs.nope")
	wantStatus(t, err, 403, "bad token")
	// Missing token in lookup = caller's own.
	code, _, body := e.do("POST", "/v1/auth/token/lookup", e.root, `{}`)
	if code != 200 || !strings.Contains(body, `"path":"auth/token/root"`) {
		t.Fatalf("lookup self via lookup: %d %s", code, body)
	}
}

func TestRootTokenLookup(t *testing.T) {
	e := newEnv(t, true)
	s, err := e.client(e.root).Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	d := s.Data
	if d["id"] != e.root || d["path"] != "auth/token/root" || d["display_name"] != "root" ||
		d["orphan"] != true || d["expire_time"] != nil || d["ttl"] != json.Number("0") {
		t.Fatalf("root lookup = %v", d)
	}
	for _, k := range []string{"renewable", "issue_time"} {
		if _, ok := d[k]; ok {
			t.Errorf("root lookup has %s", k)
		}
	}
	_, err = e.client(e.root).Auth().Token().RenewSelf(0)
	wantStatus(t, err, 400, "invalid lease ID")
	// A non-expiring root child.
	c := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"root"}})
	if c.Auth.LeaseDuration != 0 || c.Auth.Renewable || !slices.Equal(c.Auth.Policies, []string{"root"}) {
		t.Fatalf("root child auth = %+v", c.Auth)
	}
}

func TestCreateErrors(t *testing.T) {
	e := newEnv(t, true)
	root := e.client(e.root)
	limited := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"root"}, NumUses: 3}).Auth.ClientToken
	dflt := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}}).Auth.ClientToken
	cases := []struct {
		name   string
		token  string
		body   map[string]any
		status int
		msg    string
	}{
		{"batch root", e.root, map[string]any{"type": "batch"}, 400, "batch tokens cannot be root tokens"},
		{"bad type", e.root, map[string]any{"type": "bogus"}, 400, "invalid 'token_type' value"},
		{"entity alias", e.root, map[string]any{"entity_alias": "x"}, 400, "'entity_alias' is only allowed in combination with token role"},
		{"negative ttl", e.root, map[string]any{"ttl": "-5s"}, 400, "ttl must be positive"},
		{"negative emax", e.root, map[string]any{"explicit_max_ttl": -5}, 400, "explicit_max_ttl must be positive"},
		{"negative period", e.root, map[string]any{"period": "-1h"}, 400, "period must be positive"},
		{"negative num_uses", e.root, map[string]any{"num_uses": -1}, 400, "number of uses cannot be negative"},
		{"num_uses not int", e.root, map[string]any{"num_uses": "abc"}, 400, `Field validation failed: error converting input for field "num_uses"`},
		{"bad duration", e.root, map[string]any{"ttl": "5 parsecs"}, 400, `Field validation failed: error converting input for field "ttl"`},
		{"id hvs prefix", e.root, map[string]any{"id": "hvs.abc"}, 400, "custom token ID cannot have the 'hvs.' prefix"},
		{"id s prefix", e.root, map[string]any{"id": "s.abc"}, 400, "custom token ID cannot have the 's.' prefix"},
		{"id dot", e.root, map[string]any{"id": "a.b"}, 400, "custom token ID cannot have a '.' in the value"},
		{"response-wrapping", e.root, map[string]any{"policies": []string{"response-wrapping"}}, 400, `cannot assign policy "response-wrapping"`},
		{"restricted use", limited, map[string]any{}, 400, "restricted use token cannot generate child tokens"},
		{"default token", dflt, map[string]any{}, 403, "permission denied"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client(tc.token).Logical().Write("auth/token/create", tc.body)
			wantStatus(t, err, tc.status, tc.msg)
		})
	}
	// The failed create consumed one of the limited token's uses.
	l, err := root.Auth().Token().Lookup(limited)
	if err != nil {
		t.Fatal(err)
	}
	if l.Data["num_uses"] != json.Number("2") {
		t.Fatalf("num_uses after restricted create = %v", l.Data["num_uses"])
	}
	// Custom ID, then a duplicate.
	s, err := root.Logical().Write("auth/token/create", map[string]any{"id": "custom-id"})
	if err != nil || s.Auth.ClientToken != "custom-id" {
		t.Fatalf("custom id: %v %v", s, err)
	}
	_, err = root.Logical().Write("auth/token/create", map[string]any{"id": "custom-id"})
	wantStatus(t, err, 400, "cannot create a token with a duplicate ID")
}

func TestCreateTTLRulesAndWarnings(t *testing.T) {
	e := newEnv(t, true)
	root := e.client(e.root)
	cases := []struct {
		body    map[string]any
		lease   int
		warning string
	}{
		{map[string]any{}, 0, ""}, // inherits root: never expires
		{map[string]any{"policies": "a"}, 768 * 3600, ""},
		{map[string]any{"ttl": "1000h"}, 768 * 3600, `TTL of "1000h" exceeded the effective max_ttl of "768h"`},
		{map[string]any{"ttl": "1h", "explicit_max_ttl": "30m"}, 1800, ""},
		{map[string]any{"period": "24h"}, 86400, ""},
		{map[string]any{"period": "2h", "explicit_max_ttl": "1h"}, 3600, `period of "2h" exceeded the effective max_ttl of "1h"`},
		{map[string]any{"ttl": 60, "bogus": 1, "other": "x"}, 60, "Endpoint ignored these unrecognized parameters: [bogus other]"},
	}
	for _, tc := range cases {
		s, err := root.Logical().Write("auth/token/create", tc.body)
		if err != nil {
			t.Fatalf("%v: %v", tc.body, err)
		}
		if s.Auth.LeaseDuration != tc.lease {
			t.Errorf("%v: lease_duration = %d, want %d", tc.body, s.Auth.LeaseDuration, tc.lease)
		}
		if tc.warning != "" && !slices.ContainsFunc(s.Warnings, func(w string) bool { return strings.Contains(w, tc.warning) }) {
			t.Errorf("%v: warnings %q lack %q", tc.body, s.Warnings, tc.warning)
		}
	}
	// Period shows in lookup.
	s, _ := root.Logical().Write("auth/token/create", map[string]any{"period": "1h"})
	l, _ := root.Auth().Token().Lookup(s.Auth.ClientToken)
	if l.Data["period"] != json.Number("3600") {
		t.Fatalf("period = %v", l.Data["period"])
	}
}

func TestOrphansAndPolicies(t *testing.T) {
	e := newEnv(t, true)
	s := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"a"}, NoDefaultPolicy: true})
	if !slices.Equal(s.Auth.Policies, []string{"a"}) || s.Auth.Orphan {
		t.Fatalf("auth = %+v", s.Auth)
	}
	o, err := e.client(e.root).Auth().Token().CreateOrphan(&vault.TokenCreateRequest{})
	if err != nil || !o.Auth.Orphan || !slices.Equal(o.Auth.Policies, []string{"root"}) {
		t.Fatalf("orphan: %+v %v", o, err)
	}
	l, _ := e.client(e.root).Auth().Token().Lookup(o.Auth.ClientToken)
	if l.Data["path"] != "auth/token/create-orphan" || l.Data["orphan"] != true {
		t.Fatalf("orphan lookup %v", l.Data)
	}
	np := e.create(e.root, &vault.TokenCreateRequest{NoParent: true, Policies: []string{"x"}})
	if !np.Auth.Orphan {
		t.Fatal("no_parent not orphan")
	}
}

func TestResolvePolicies(t *testing.T) {
	cases := []struct {
		parent, req []string
		root, noDef bool
		want        []string
		err         string
	}{
		{[]string{"default", "a", "b"}, nil, false, false, []string{"a", "b", "default"}, ""},
		{[]string{"default", "a", "b"}, []string{"A "}, false, false, []string{"a", "default"}, ""},
		{[]string{"a", "b"}, []string{"a"}, false, false, []string{"a"}, ""},
		{[]string{"default", "a"}, []string{"c"}, false, false, nil, "child policies must be subset of parent"},
		{[]string{"default", "a"}, []string{"a", "default"}, false, true, []string{"a"}, ""},
		{[]string{"root"}, []string{"x", "root"}, true, false, []string{"root"}, ""},
		{[]string{"root"}, []string{"x"}, true, false, []string{"default", "x"}, ""},
	}
	for _, tc := range cases {
		got, _, err := resolvePolicies(tc.parent, tc.req, tc.req != nil, tc.root, tc.noDef)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v/%v: err %v, want %q", tc.parent, tc.req, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%v/%v: got %v %v, want %v", tc.parent, tc.req, got, err, tc.want)
		}
	}
	if displayName("my app.v2") != "token-my-app-v2" || displayName("") != "token" || displayName("x!") != "token-x" {
		t.Error("displayName")
	}
}

func TestDefaultPolicyToken(t *testing.T) {
	e := newEnv(t, true)
	tok := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"}).Auth.ClientToken
	c := e.client(tok)
	if _, err := c.Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("GET lookup-self: %v", err)
	}
	code, _, body := e.do("POST", "/v1/auth/token/lookup-self", tok, "")
	if code != 403 || !strings.Contains(body, `1 error occurred:\n\t* permission denied`) {
		t.Fatalf("POST lookup-self: %d %s", code, body)
	}
	if _, err := c.Auth().Token().RenewSelf(60); err != nil {
		t.Fatalf("renew-self: %v", err)
	}
	for _, p := range []string{"auth/token/accessors", "auth/token/nope", "nope/x"} {
		_, err := c.Logical().List(p)
		wantStatus(t, err, 403, "permission denied")
	}
	_, err := c.Auth().Token().Lookup(e.root)
	wantStatus(t, err, 403, "permission denied")
	_, err = c.Logical().Read("sys/members")
	wantStatus(t, err, 403, "permission denied")
	if err := c.Auth().Token().RevokeSelf(""); err != nil {
		t.Fatalf("revoke-self: %v", err)
	}
	_, err = c.Auth().Token().LookupSelf()
	wantStatus(t, err, 403, "invalid token")
}

func TestAuthErrors(t *testing.T) {
	e := newEnv(t, true)
	code, _, body := e.do("GET", "/v1/auth/token/lookup-self", "", "")
	if code != 403 || body != `{"errors":["permission denied"]}`+"\n" {
		t.Fatalf("no token: %d %q", code, body)
	}
	code, _, body = e.do("GET", "/v1/auth/token/lookup-self", "garbage", "")
	if code != 403 || body != `{"errors":["2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"]}`+"\n" {
		t.Fatalf("bad token: %d %q", code, body)
	}
	// Authorization: Bearer works.
	code, _, _ = e.do("GET", "/v1/auth/token/lookup-self", "", "", "Authorization", "Bearer "+e.root)
	if code != 200 {
		t.Fatalf("bearer: %d", code)
	}
	// Expired tokens are invalid at read time.
	s := e.create(e.root, &vault.TokenCreateRequest{TTL: "1h"})
	srv2 := New(e.node, Options{Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
	rec := newRecorder(srv2, "GET", "/v1/auth/token/lookup-self", s.Auth.ClientToken, "")
	if rec.Code != 403 || !strings.Contains(rec.Body.String(), "invalid token") {
		t.Fatalf("expired: %d %s", rec.Code, rec.Body.String())
	}
}

func TestNumUses(t *testing.T) {
	e := newEnv(t, true)
	tok := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}, NumUses: 2}).Auth.ClientToken
	c := e.client(tok)
	for _, want := range []string{"1", "-1"} {
		s, err := c.Auth().Token().LookupSelf()
		if err != nil {
			t.Fatal(err)
		}
		if s.Data["num_uses"] != json.Number(want) {
			t.Fatalf("num_uses = %v, want %s", s.Data["num_uses"], want)
		}
	}
	_, err := c.Auth().Token().LookupSelf()
	wantStatus(t, err, 403, "invalid token")
	// A use is consumed even when the ACL denies the request.
	tok = e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}, NumUses: 2}).Auth.ClientToken
	_, err = e.client(tok).Logical().List("auth/token/accessors")
	wantStatus(t, err, 403, "permission denied")
	l, _ := e.client(e.root).Auth().Token().Lookup(tok)
	if l.Data["num_uses"] != json.Number("1") {
		t.Fatalf("after denied request num_uses = %v", l.Data["num_uses"])
	}
}

func TestRenew(t *testing.T) {
	e := newEnv(t, true)
	root := e.client(e.root).Auth().Token()
	s := e.create(e.root, &vault.TokenCreateRequest{TTL: "1h"})
	r, err := root.Renew(s.Auth.ClientToken, 7200)
	if err != nil || r.Auth.LeaseDuration != 7200 || r.Auth.ClientToken != s.Auth.ClientToken {
		t.Fatalf("renew: %+v %v", r, err)
	}
	l, _ := root.Lookup(s.Auth.ClientToken)
	if l.Data["last_renewal_time"] == nil || l.Data["last_renewal"] == nil || l.Data["creation_ttl"] != json.Number("3600") {
		t.Fatalf("after renew lookup = %v", l.Data)
	}
	// /renew/{token}
	code, _, body := e.do("PUT", "/v1/auth/token/renew/"+s.Auth.ClientToken, e.root, `{"increment":"30m"}`)
	if code != 200 || !strings.Contains(body, `"lease_duration":1800`) {
		t.Fatalf("renew path: %d %s", code, body)
	}
	// renew-accessor blanks client_token.
	ra, err := root.RenewAccessor(s.Auth.Accessor, 60)
	if err != nil || ra.Auth.ClientToken != "" || ra.Auth.LeaseDuration != 60 {
		t.Fatalf("renew-accessor: %+v %v", ra, err)
	}
	// renew-self as another token.
	rs, err := root.RenewTokenAsSelf(s.Auth.ClientToken, 120)
	if err != nil || rs.Auth.LeaseDuration != 120 {
		t.Fatalf("renew-self: %+v %v", rs, err)
	}
	_, err = root.Renew("hvs.unknown", 0)
	wantStatus(t, err, 400, "token not found")
	_, err = e.client(e.root).Logical().Write("auth/token/renew", map[string]any{})
	wantStatus(t, err, 400, "missing token ID")
	_, err = e.client(e.root).Logical().Write("auth/token/renew", map[string]any{"token": s.Auth.ClientToken, "increment": -5})
	wantStatus(t, err, 400, "cannot provide negative value")
	_, err = root.RenewAccessor("nope", 0)
	wantStatus(t, err, 400, "invalid accessor")
	nr := e.create(e.root, &vault.TokenCreateRequest{TTL: "1h", Renewable: boolPtr(false)})
	if nr.Auth.Renewable {
		t.Fatal("renewable false not honoured")
	}
	_, err = root.Renew(nr.Auth.ClientToken, 0)
	wantStatus(t, err, 400, "lease is not renewable")
}

func TestRevoke(t *testing.T) {
	e := newEnv(t, true)
	root := e.client(e.root).Auth().Token()
	parent := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"root"}, TTL: "1h"}).Auth
	child := e.create(parent.ClientToken, &vault.TokenCreateRequest{TTL: "1h"}).Auth
	grand := e.create(child.ClientToken, &vault.TokenCreateRequest{TTL: "1h"}).Auth

	// revoke-orphan: child goes, grandchild becomes an orphan.
	if err := root.RevokeOrphan(child.ClientToken); err != nil {
		t.Fatal(err)
	}
	l, err := root.Lookup(grand.ClientToken)
	if err != nil || l.Data["orphan"] != true {
		t.Fatalf("grandchild after revoke-orphan: %v %v", l, err)
	}
	wantStatus(t, root.RevokeOrphan(child.ClientToken), 400, "token to revoke not found")
	wantStatus(t, root.RevokeOrphan(""), 400, "missing token ID")

	// revoke cascades.
	c2 := e.create(parent.ClientToken, &vault.TokenCreateRequest{TTL: "1m"}).Auth
	if err := root.RevokeTree(parent.ClientToken); err != nil {
		t.Fatal(err)
	}
	_, err = root.Lookup(c2.ClientToken)
	wantStatus(t, err, 403, "bad token")
	// Unknown token: 204, no error.
	if err := root.RevokeTree("hvs.unknown"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, root.RevokeTree(""), 400, "missing token ID")
	code, _, body := e.do("PUT", "/v1/auth/token/revoke", e.root, `{"token":"hvs.x"}`)
	if code != 204 || body != "" {
		t.Fatalf("revoke 204: %d %q", code, body)
	}

	// revoke-accessor: unknown → 200 with warning, nil error from the client.
	if err := root.RevokeAccessor("nope"); err != nil {
		t.Fatal(err)
	}
	code, _, body = e.do("POST", "/v1/auth/token/revoke-accessor", e.root, `{"accessor":"nope"}`)
	if code != 200 || !strings.Contains(body, "No token found with this accessor") {
		t.Fatalf("revoke-accessor unknown: %d %s", code, body)
	}
	wantStatus(t, root.RevokeAccessor(""), 400, "missing accessor")
	if err := root.RevokeAccessor(grand.Accessor); err != nil {
		t.Fatal(err)
	}
	_, err = root.LookupAccessor(grand.Accessor)
	wantStatus(t, err, 400, "invalid accessor")

	// revoke-self.
	s := e.create(e.root, &vault.TokenCreateRequest{}).Auth
	if err := e.client(s.ClientToken).Auth().Token().RevokeSelf(""); err != nil {
		t.Fatal(err)
	}
	_, err = root.Lookup(s.ClientToken)
	wantStatus(t, err, 403, "bad token")
}

func TestLookupAccessorAndAccessors(t *testing.T) {
	e := newEnv(t, true)
	root := e.client(e.root)
	s := e.create(e.root, &vault.TokenCreateRequest{Metadata: map[string]string{"k": "v"}}).Auth
	l, err := root.Auth().Token().LookupAccessor(s.Accessor)
	if err != nil || l.Data["id"] != "" || l.Data["accessor"] != s.Accessor {
		t.Fatalf("lookup-accessor: %v %v", l, err)
	}
	_, err = root.Auth().Token().LookupAccessor("nope")
	wantStatus(t, err, 400, "invalid accessor")
	var re *vault.ResponseError
	errors.As(err, &re)
	if re.Errors[0] != "1 error occurred:\n\t* invalid accessor\n\n" {
		t.Fatalf("lookup-accessor error %q", re.Errors[0])
	}
	_, err = root.Auth().Token().LookupAccessor("")
	wantStatus(t, err, 400, "missing accessor")

	list, err := root.Logical().List("auth/token/accessors")
	if err != nil {
		t.Fatal(err)
	}
	keys := list.Data["keys"].([]any)
	if len(keys) != 2 || !slices.Contains(keys, any(s.Accessor)) {
		t.Fatalf("accessors = %v", keys)
	}
	code, _, body := e.do("LIST", "/v1/auth/token/accessors", e.root, "")
	if code != 200 || !strings.Contains(body, s.Accessor) {
		t.Fatalf("LIST verb: %d %s", code, body)
	}
	code, _, _ = e.do("GET", "/v1/auth/token/accessors", e.root, "")
	if code != 405 {
		t.Fatalf("GET accessors without list: %d", code)
	}
}

func TestSys(t *testing.T) {
	e := newEnv(t, false)
	c := e.client("")
	st, err := c.Sys().InitStatus()
	if err != nil || st {
		t.Fatalf("init status %v %v", st, err)
	}
	h, err := c.Sys().Health()
	if err != nil || h.Initialized {
		t.Fatalf("health %+v %v", h, err)
	}
	code, _, _ := e.do("GET", "/v1/sys/health", "", "")
	if code != 501 {
		t.Fatalf("uninit health = %d", code)
	}
	resp, err := c.Sys().Init(&vault.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil || !strings.HasPrefix(resp.RootToken, "hvs.") || resp.Keys == nil {
		t.Fatalf("init: %+v %v", resp, err)
	}
	_, err = c.Sys().Init(&vault.InitRequest{})
	wantStatus(t, err, 400, "Vault is already initialized")
	code, _, body := e.do("PUT", "/v1/sys/init", "", `{}`)
	if code != 400 || body != `{"errors":["Vault is already initialized"]}`+"\n" {
		t.Fatalf("second init %d %s", code, body)
	}

	// Health on the leader, follower, stale follower.
	code, hdr, body := e.do("GET", "/v1/sys/health", "", "")
	if code != 200 || !strings.HasPrefix(body, `{"initialized":true,"sealed":false,"standby":false`) || hdr.Get("X-Vault-Index") == "" {
		t.Fatalf("leader health %d %s", code, body)
	}
	code, _, body = e.do("HEAD", "/v1/sys/health", "", "")
	if code != 200 || body != "" {
		t.Fatalf("HEAD health %d %q", code, body)
	}
	code, _, _ = e.do("GET", "/v1/sys/health?activecode=abc", "", "")
	if code != 400 {
		t.Fatalf("bad activecode %d", code)
	}
	code, _, _ = e.do("POST", "/v1/sys/health", "", "")
	if code != 405 {
		t.Fatalf("POST health %d", code)
	}
	e.node.set(func(n *fakeNode) { n.leader = false; n.leaderURL = "http://127.0.0.1:1" })
	for q, want := range map[string]int{"": 429, "?standbyok=true": 200, "?standbycode=299": 299} {
		if code, _, _ := e.do("GET", "/v1/sys/health"+q, "", ""); code != want {
			t.Errorf("follower health%s = %d, want %d", q, code, want)
		}
	}
	e.node.set(func(n *fakeNode) { n.stale = true })
	if code, _, _ := e.do("GET", "/v1/sys/health?standbyok=true", "", ""); code != 503 {
		t.Errorf("stale health = %d", code)
	}
	e.node.set(func(n *fakeNode) { n.noLeader = true })
	ld, err := c.Sys().Leader()
	if err != nil || ld.IsSelf || ld.LeaderAddress != "" || !ld.HAEnabled {
		t.Fatalf("leader (no leader) %+v %v", ld, err)
	}
	e.node.set(func(n *fakeNode) { n.leader, n.stale, n.noLeader = true, false, false })

	ld, err = c.Sys().Leader()
	if err != nil || !ld.IsSelf || ld.LeaderAddress != "http://127.0.0.1:8200" || ld.LeaderClusterAddress != "127.0.0.1:8201" {
		t.Fatalf("leader %+v %v", ld, err)
	}
	ss, err := c.Sys().SealStatus()
	if err != nil || ss.Sealed || !ss.Initialized || ss.Type != "shamir" {
		t.Fatalf("seal-status %+v %v", ss, err)
	}

	rc := e.client(resp.RootToken)
	cfg, err := rc.Logical().Read("sys/storage/raft/configuration")
	if err != nil {
		t.Fatal(err)
	}
	servers := cfg.Data["config"].(map[string]any)["servers"].([]any)
	if s0 := servers[0].(map[string]any); s0["node_id"] != "fake" || s0["leader"] != true || s0["voter"] != true {
		t.Fatalf("raft config %v", servers)
	}
	m, err := rc.Logical().Read("sys/members")
	if err != nil || len(m.Data["members"].([]any)) != 1 {
		t.Fatalf("members %v %v", m, err)
	}
	_, err = e.client("").Logical().Read("sys/members")
	wantStatus(t, err, 403, "permission denied")
	code, _, body = e.do("GET", "/v1/sys/nope", resp.RootToken, "")
	if code != 404 || !strings.Contains(body, "unsupported path") {
		t.Fatalf("sys/nope %d %s", code, body)
	}
}

func TestEnvelopeAndHeaders(t *testing.T) {
	e := newEnv(t, true)
	code, hdr, body := e.do("POST", "/v1/auth/token/create", e.root, `{"ttl":"1h","meta":{"a":"b"}}`)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if hdr.Get("Cache-Control") != "no-store" || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", hdr)
	}
	wantOrder := []string{"request_id", "lease_id", "renewable", "lease_duration", "data", "wrap_info", "warnings", "auth", "mount_type"}
	if got := topKeys(t, body); !slices.Equal(got, wantOrder) {
		t.Fatalf("envelope keys %v", got)
	}
	var env struct {
		Auth json.RawMessage `json:"auth"`
	}
	_ = json.Unmarshal([]byte(body), &env)
	wantAuth := []string{"client_token", "accessor", "policies", "token_policies", "metadata", "lease_duration", "renewable", "entity_id", "token_type", "orphan", "mfa_requirement", "num_uses"}
	if got := topKeys(t, string(env.Auth)); !slices.Equal(got, wantAuth) {
		t.Fatalf("auth keys %v", got)
	}
	if !strings.Contains(body, `"mount_type":"token"`) || !strings.Contains(body, `"data":null`) {
		t.Fatalf("body %s", body)
	}
	// X-Vault-Index parses with the official client and the cluster key.
	id, key := e.node.State().ClusterIdent()
	ws, err := vault.ParseReplicationState(hdr.Get("X-Vault-Index"), key)
	if err != nil || ws.ClusterID != id || ws.LocalIndex != e.node.AppliedIndex() {
		t.Fatalf("index state %+v %v", ws, err)
	}
	// Errors carry the index header too.
	_, hdr, _ = e.do("GET", "/v1/auth/token/lookup-self", "bad", "")
	if hdr.Get("X-Vault-Index") == "" || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("error headers %v", hdr)
	}
	// Form-encoded bodies.
	code, _, body = e.do("POST", "/v1/auth/token/create", e.root, "ttl=5m&display_name=x", "Content-Type", "application/x-www-form-urlencoded")
	if code != 200 || !strings.Contains(body, `"lease_duration":300`) {
		t.Fatalf("form: %d %s", code, body)
	}
}

func topKeys(t *testing.T, s string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestRoutingErrors(t *testing.T) {
	e := newEnv(t, true)
	cases := []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/v1/auth/token/foo", 404, `{"errors":["1 error occurred:\n\t* unsupported path\n\n"]}`},
		{"GET", "/v1/nope/x", 404, `{"errors":["no handler for route \"nope/x\". route entry not found."]}`},
		{"DELETE", "/v1/auth/token/create", 405, `{"errors":["1 error occurred:\n\t* unsupported operation\n\n"]}`},
		{"GET", "/v1/auth/token/create", 405, `{"errors":["1 error occurred:\n\t* unsupported operation\n\n"]}`},
		{"FOO", "/v1/auth/token/create", 405, `{"errors":[]}`},
		{"POST", "/v1/auth/token/create/", 400, `{"errors":["cannot write to a path ending in '/'"]}`},
		{"GET", "/v1/auth/token/accessors?list=maybe", 400, `{"errors":[]}`},
	}
	for _, tc := range cases {
		code, hdr, body := e.do(tc.method, tc.path, e.root, "")
		if code != tc.status || body != tc.body+"\n" {
			t.Errorf("%s %s = %d %q, want %d %q", tc.method, tc.path, code, body, tc.status, tc.body)
		}
		if code == 405 && tc.method != "FOO" && hdr.Get("Allow") != "POST, PUT" {
			t.Errorf("Allow = %q", hdr.Get("Allow"))
		}
	}
}

func TestNoTokenInLogs(t *testing.T) {
	e := newEnv(t, true)
	s := e.create(e.root, &vault.TokenCreateRequest{TTL: "1h"}).Auth
	e.do("GET", "/v1/auth/token/lookup/"+s.ClientToken, e.root, "")
	e.do("POST", "/v1/auth/token/lookup", e.root, `{"token":"`+s.ClientToken+`"}`)
	_, _ = e.client(s.ClientToken).Auth().Token().LookupSelf()
	logs := e.logBuf.String()
	if !strings.Contains(logs, "accessor="+s.Accessor) {
		t.Fatalf("logs lack the accessor:\n%s", logs)
	}
	for _, tok := range []string{e.root, s.ClientToken} {
		if strings.Contains(logs, tok) {
			t.Fatalf("token ID in logs:\n%s", logs)
		}
	}
}

func newRecorder(h http.Handler, method, path, token, body string) *responseRecorder {
	return record(h, method, path, token, body)
}
