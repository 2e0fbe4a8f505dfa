package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// fakeVault answers canned responses per "METHOD /path" and records every
// request it receives.
type fakeVault struct {
	mu   sync.Mutex
	reqs []recorded
}

type recorded struct {
	method, path, token string
	body                map[string]any
}

type canned struct {
	status int
	body   string
}

func (f *fakeVault) start(t *testing.T, routes map[string]canned) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec := recorded{method: r.Method, path: r.URL.Path, token: r.Header.Get("X-Vault-Token")}
		if len(b) > 0 {
			_ = json.Unmarshal(b, &rec.body)
		}
		f.mu.Lock()
		f.reqs = append(f.reqs, rec)
		f.mu.Unlock()
		c, ok := routes[r.Method+" "+r.URL.Path]
		if !ok {
			w.WriteHeader(404)
			io.WriteString(w, `{"errors":["1 error occurred:\n\t* unsupported path\n\n"]}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(c.status)
		io.WriteString(w, c.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (f *fakeVault) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

const authBody = `{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":null,"wrap_info":null,"warnings":null,
"auth":{"client_token":"hvs.child","accessor":"acc1","policies":["default","web"],"token_policies":["default","web"],"metadata":{"k":"v"},
"lease_duration":3600,"renewable":true,"entity_id":"","token_type":"service","orphan":false,"mfa_requirement":null,"num_uses":0},"mount_type":"token"}`

const lookupBody = `{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":{"accessor":"acc1","creation_ttl":3600,
"display_name":"token-web","expire_time":"2030-01-01T00:00:00Z","explicit_max_ttl":0,"id":"hvs.child","meta":{"k":"v"},"num_uses":0,
"orphan":false,"path":"auth/token/create","policies":["default","web"],"ttl":3599,"type":"service"},
"wrap_info":null,"warnings":["a warning"],"auth":null,"mount_type":"token"}`

const membersBody = `{"data":{"members":[{"name":"n1","address":"127.0.0.1:8301","http_address":"127.0.0.1:8200","raft_address":"127.0.0.1:8201","version":"v1","status":"alive"},
{"name":"n2","address":"127.0.0.1:8311","http_address":"127.0.0.1:8210","raft_address":"127.0.0.1:8211","version":"v1","status":"failed"}]}}`

const peersBody = `{"data":{"config":{"index":7,"servers":[{"node_id":"n1","address":"127.0.0.1:8201","leader":true,"voter":true},
{"node_id":"n2","address":"127.0.0.1:8211","leader":false,"voter":true}]}}}`

var fakeRoutes = map[string]canned{
	"POST /v1/auth/token/create":             {200, authBody},
	"GET /v1/auth/token/lookup-self":         {200, lookupBody},
	"POST /v1/auth/token/lookup":             {200, lookupBody},
	"POST /v1/auth/token/lookup-accessor":    {200, lookupBody},
	"PUT /v1/auth/token/renew-self":          {200, authBody},
	"PUT /v1/auth/token/renew":               {200, authBody},
	"POST /v1/auth/token/renew-accessor":     {200, authBody},
	"PUT /v1/auth/token/revoke":              {204, ""},
	"PUT /v1/auth/token/revoke-self":         {204, ""},
	"POST /v1/auth/token/revoke-accessor":    {204, ""},
	"PUT /v1/auth/token/revoke-orphan":       {204, ""},
	"GET /v1/sys/members":                    {200, membersBody},
	"GET /v1/sys/storage/raft/configuration": {200, peersBody},
}

func TestClientCommands(t *testing.T) {
	t.Setenv("VAULT_MAX_RETRIES", "0")
	tests := []struct {
		name      string
		args      []string
		stdin     string
		routes    map[string]canned // nil = fakeRoutes
		wantCode  int
		wantReq   *recorded // nil = no request expected
		wantOut   []string  // substrings of stdout
		wantExact string    // whole stdout, when set
		wantErr   []string  // substrings of stderr
	}{
		{
			name: "create with every flag",
			args: []string{"token", "create", "-policy", "web", "-policy", "db,cache", "-ttl", "1h", "-explicit-max-ttl", "7200",
				"-period", "30m", "-orphan", "-no-default-policy", "-renewable=false", "-display-name", "web", "-use-limit", "3",
				"-metadata", "k=v", "-metadata", "team=a=b", "-id", "custom"},
			wantReq: &recorded{method: "POST", path: "/v1/auth/token/create", token: "tok", body: map[string]any{
				"policies": []any{"web", "db", "cache"}, "ttl": "3600s", "explicit_max_ttl": "7200s", "period": "1800s",
				"no_parent": true, "no_default_policy": true, "renewable": false, "display_name": "web", "num_uses": float64(3),
				"meta": map[string]any{"k": "v", "team": "a=b"}, "id": "custom", "type": "", "entity_alias": "",
			}},
			wantOut: []string{"token                hvs.child\n", "token_accessor       acc1\n", "token_duration       1h\n",
				"token_renewable      true\n", `token_policies       ["default" "web"]`, "identity_policies    []\n"},
		},
		{
			name: "create defaults send only what Vault's client always sends",
			args: []string{"token", "create"},
			wantReq: &recorded{method: "POST", path: "/v1/auth/token/create", token: "tok", body: map[string]any{
				"display_name": "", "num_uses": float64(0), "type": "", "entity_alias": "",
			}},
		},
		{
			name:      "create -field token",
			args:      []string{"token", "create", "-field", "token"},
			wantExact: "hvs.child\n",
		},
		{
			name:    "create -format=json prints the response",
			args:    []string{"token", "create", "-format=json"},
			wantOut: []string{`"client_token": "hvs.child"`, `"lease_duration": 3600`},
		},
		{
			name:    "lookup without argument is lookup-self",
			args:    []string{"token", "lookup"},
			wantReq: &recorded{method: "GET", path: "/v1/auth/token/lookup-self", token: "tok"},
			wantOut: []string{"Key                 Value\n---                 -----\naccessor            acc1\n", "creation_ttl        1h\n",
				"ttl                 59m59s\n", "explicit_max_ttl    0s\n", "policies            [default web]\n", "meta                map[k:v]\n"},
			wantErr: []string{"a warning"},
		},
		{
			name:    "lookup a token, flags after the argument",
			args:    []string{"token", "lookup", "hvs.other", "-format", "json"},
			wantReq: &recorded{method: "POST", path: "/v1/auth/token/lookup", token: "tok", body: map[string]any{"token": "hvs.other"}},
			wantOut: []string{`"display_name": "token-web"`},
		},
		{
			name:    "lookup a token from stdin",
			args:    []string{"token", "lookup", "-"},
			stdin:   "hvs.fromstdin\n",
			wantReq: &recorded{method: "POST", path: "/v1/auth/token/lookup", token: "tok", body: map[string]any{"token": "hvs.fromstdin"}},
		},
		{
			name:      "lookup -accessor -field",
			args:      []string{"token", "lookup", "-accessor", "-field=path", "acc1"},
			wantReq:   &recorded{method: "POST", path: "/v1/auth/token/lookup-accessor", token: "tok", body: map[string]any{"accessor": "acc1"}},
			wantExact: "auth/token/create\n",
		},
		{
			name:     "lookup -accessor without argument",
			args:     []string{"token", "lookup", "-accessor"},
			wantCode: 1,
			wantErr:  []string{"-accessor needs an accessor argument"},
		},
		{
			name:     "lookup unknown field",
			args:     []string{"token", "lookup", "-field", "nope"},
			wantReq:  &recorded{method: "GET", path: "/v1/auth/token/lookup-self", token: "tok"},
			wantCode: 1,
			wantErr:  []string{`field "nope" not present`},
		},
		{
			name:    "renew self with increment",
			args:    []string{"token", "renew", "-increment", "1h"},
			wantReq: &recorded{method: "PUT", path: "/v1/auth/token/renew-self", token: "tok", body: map[string]any{"increment": float64(3600)}},
			wantOut: []string{"token_duration       1h\n"},
		},
		{
			name:    "renew a token",
			args:    []string{"token", "renew", "hvs.other"},
			wantReq: &recorded{method: "PUT", path: "/v1/auth/token/renew", token: "tok", body: map[string]any{"token": "hvs.other", "increment": float64(0)}},
		},
		{
			name:    "renew by accessor",
			args:    []string{"token", "renew", "-accessor", "-increment=90", "acc1"},
			wantReq: &recorded{method: "POST", path: "/v1/auth/token/renew-accessor", token: "tok", body: map[string]any{"accessor": "acc1", "increment": float64(90)}},
		},
		{
			name:     "renew with a bad increment",
			args:     []string{"token", "renew", "-increment", "soon"},
			wantCode: 1,
			wantErr:  []string{"invalid value \"soon\" for flag -increment"},
		},
		{
			name:      "revoke a token tree",
			args:      []string{"token", "revoke", "hvs.other"},
			wantReq:   &recorded{method: "PUT", path: "/v1/auth/token/revoke", token: "tok", body: map[string]any{"token": "hvs.other"}},
			wantExact: "Success! Revoked token (if it existed)\n",
		},
		{
			name:    "revoke -self",
			args:    []string{"token", "revoke", "-self"},
			wantReq: &recorded{method: "PUT", path: "/v1/auth/token/revoke-self", token: "tok"},
		},
		{
			name:    "revoke -accessor",
			args:    []string{"token", "revoke", "-accessor", "acc1"},
			wantReq: &recorded{method: "POST", path: "/v1/auth/token/revoke-accessor", token: "tok", body: map[string]any{"accessor": "acc1"}},
		},
		{
			name:      "revoke -mode orphan, json prints nothing",
			args:      []string{"token", "revoke", "-mode", "orphan", "-format=json", "hvs.other"},
			wantReq:   &recorded{method: "PUT", path: "/v1/auth/token/revoke-orphan", token: "tok", body: map[string]any{"token": "hvs.other"}},
			wantExact: noOutput,
		},
		{"revoke needs a target", []string{"token", "revoke"}, "", nil, 1, nil, nil, "", []string{"a token (or -accessor ACCESSOR, or -self) is required"}},
		{"revoke bad mode", []string{"token", "revoke", "-mode", "path", "x"}, "", nil, 1, nil, nil, "", []string{`-mode must be orphan (got "path")`}},
		{"revoke -self with argument", []string{"token", "revoke", "-self", "x"}, "", nil, 1, nil, nil, "", []string{"-self takes no argument"}},
		{"revoke -accessor -mode orphan", []string{"token", "revoke", "-accessor", "-mode=orphan", "x"}, "", nil, 1, nil, nil, "", []string{"cannot be combined"}},
		{"too many arguments", []string{"token", "lookup", "a", "b"}, "", nil, 1, nil, nil, "", []string{"too many arguments"}},
		{"unknown flag", []string{"token", "create", "-bogus"}, "", nil, 1, nil, nil, "", []string{"flag provided but not defined: -bogus"}},
		{"bad format", []string{"token", "lookup", "-format", "yaml"}, "", nil, 1, nil, nil, "", []string{`-format must be table or json (got "yaml")`}},
		{"bad metadata", []string{"token", "create", "-metadata", "novalue"}, "", nil, 1, nil, nil, "", []string{`expected key=value, got "novalue"`}},
		{"negative use limit", []string{"token", "create", "-use-limit", "-1"}, "", nil, 1, nil, nil, "", []string{"-use-limit must be >= 0"}},
		{
			name:     "server error exits 2 with the server's message",
			args:     []string{"token", "lookup"},
			routes:   map[string]canned{"GET /v1/auth/token/lookup-self": {403, `{"errors":["permission denied"]}`}},
			wantCode: 2,
			wantErr:  []string{"tokend token lookup: look up token:", "Code: 403", "permission denied"},
		},
		{
			name:    "operator members",
			args:    []string{"operator", "members"},
			wantReq: &recorded{method: "GET", path: "/v1/sys/members", token: "tok"},
			wantExact: "Node    Address           HTTP Address      Raft Address      Status    Version\n" +
				"----    -------           ------------      ------------      ------    -------\n" +
				"n1      127.0.0.1:8301    127.0.0.1:8200    127.0.0.1:8201    alive     v1\n" +
				"n2      127.0.0.1:8311    127.0.0.1:8210    127.0.0.1:8211    failed    v1\n",
		},
		{
			name:    "operator members with a bare list",
			args:    []string{"operator", "members"},
			routes:  map[string]canned{"GET /v1/sys/members": {200, `[{"name":"n9","status":"alive"}]`}},
			wantOut: []string{"n9  "},
		},
		{
			name:    "operator raft list-peers",
			args:    []string{"operator", "raft", "list-peers"},
			wantReq: &recorded{method: "GET", path: "/v1/sys/storage/raft/configuration", token: "tok"},
			wantExact: "Node    Address           State       Voter\n" +
				"----    -------           -----       -----\n" +
				"n1      127.0.0.1:8201    leader      true\n" +
				"n2      127.0.0.1:8211    follower    true\n",
		},
		{
			name:    "operator raft list-peers -format=json",
			args:    []string{"operator", "raft", "list-peers", "-format=json"},
			wantOut: []string{`"node_id": "n1"`},
		},
		{
			name:      "operator raft remove-peer",
			args:      []string{"operator", "raft", "remove-peer", "-server-id", "n4"},
			routes:    map[string]canned{"PUT /v1/sys/storage/raft/remove-peer": {204, ""}},
			wantReq:   &recorded{method: "PUT", path: "/v1/sys/storage/raft/remove-peer", token: "tok", body: map[string]any{"server_id": "n4"}},
			wantExact: "Peer removed successfully!\n",
		},
		{
			name:     "operator raft remove-peer of an unknown server",
			args:     []string{"operator", "raft", "remove-peer", "n9"},
			routes:   map[string]canned{"PUT /v1/sys/storage/raft/remove-peer": {400, `{"errors":["server n9 is not in the raft configuration"]}`}},
			wantCode: 2,
			wantErr:  []string{"remove raft peer n9:", "not in the raft configuration"},
		},
		{
			name:     "operator raft remove-peer without an id",
			args:     []string{"operator", "raft", "remove-peer"},
			wantCode: 1,
			wantErr:  []string{"expected -server-id ID"},
		},
		{
			name:     "operator error",
			args:     []string{"operator", "members"},
			routes:   map[string]canned{},
			wantCode: 2,
			wantErr:  []string{"list members:", "Code: 404"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fv fakeVault
			routes := tt.routes
			if routes == nil {
				routes = fakeRoutes
			}
			srv := fv.start(t, routes)
			getenv := mapEnv("TOKEND_ADDR", srv.URL, "TOKEND_TOKEN", "tok", "VAULT_TOKEN", "other")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, getenv, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			reqs := fv.requests()
			if tt.wantCode == 1 && tt.wantReq == nil && len(reqs) > 0 {
				t.Errorf("a usage error sent a request: %+v", reqs)
			}
			if tt.wantReq != nil {
				if len(reqs) != 1 {
					t.Fatalf("requests: %+v", reqs)
				}
				if !reflect.DeepEqual(reqs[0], *tt.wantReq) {
					t.Errorf("request\n got  %+v\n want %+v", reqs[0], *tt.wantReq)
				}
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			if want := strings.ReplaceAll(tt.wantExact, noOutput, ""); tt.wantExact != "" && stdout.String() != want {
				t.Errorf("stdout\n got  %q\n want %q", stdout.String(), want)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
		})
	}
}

func TestClientAddressAndToken(t *testing.T) {
	t.Setenv("VAULT_MAX_RETRIES", "0")
	var fv fakeVault
	srv := fv.start(t, fakeRoutes)
	dead := "http://127.0.0.1:1" // nothing listens on port 1
	tests := []struct {
		name      string
		args      []string
		env       []string
		wantToken string
	}{
		{"TOKEND_ADDR and TOKEND_TOKEN win", nil, []string{"TOKEND_ADDR", srv.URL, "VAULT_ADDR", dead, "TOKEND_TOKEN", "a", "VAULT_TOKEN", "b"}, "a"},
		{"VAULT_ADDR and VAULT_TOKEN are the fallback", nil, []string{"VAULT_ADDR", srv.URL, "VAULT_TOKEN", "b"}, "b"},
		{"-address beats the environment", []string{"-address", srv.URL}, []string{"TOKEND_ADDR", dead, "TOKEND_TOKEN", "c"}, "c"},
		{"no token sends none", []string{"-address", srv.URL}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(fv.requests())
			var stdout, stderr bytes.Buffer
			args := append([]string{"token", "lookup"}, tt.args...)
			if code := run(context.Background(), args, mapEnv(tt.env...), strings.NewReader(""), &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			reqs := fv.requests()
			if len(reqs) != before+1 || reqs[before].token != tt.wantToken {
				t.Fatalf("requests %+v, want token %q", reqs[before:], tt.wantToken)
			}
		})
	}
}

// noOutput as wantExact means stdout must be empty.
const noOutput = "<no output>"

func mapEnv(kv ...string) func(string) string {
	m := make(map[string]string)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}
