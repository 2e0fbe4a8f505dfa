package httpapi

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/httpapi/audit"
)

var auditHashRE = regexp.MustCompile(`^hmac-sha256:[0-9a-f]{64}$`)

// auditEnv is an uninitialised fake leader whose server audits to a file.
func auditEnv(t *testing.T, l *audit.Log, failOpen bool) *env {
	t.Helper()
	e := &env{t: t, node: newFakeLeader(), logBuf: &syncBuffer{}}
	opts := testOptions(e.logBuf)
	opts.Audit, opts.AuditFailOpen = l, failOpen
	e.srv = httptest.NewServer(New(e.node, opts))
	t.Cleanup(e.srv.Close)
	return e
}

func openAudit(t *testing.T) (*audit.Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

func readAudit(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad audit line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// walkKey calls f with every value stored under key, at any depth.
func walkKey(v any, key string, f func(any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if k == key {
				f(e)
			}
			walkKey(e, key, f)
		}
	case []any:
		for _, e := range x {
			walkKey(e, key, f)
		}
	}
}

// initViaHTTP initialises e through PUT sys/init so that the root token's
// creation is audited too.
func initViaHTTP(t *testing.T, e *env) {
	t.Helper()
	st, _, body := e.do("PUT", "/v1/sys/init", "", "{}")
	if st != 200 {
		t.Fatalf("sys/init: %d %s", st, body)
	}
	var r struct {
		RootToken string `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.RootToken == "" {
		t.Fatalf("sys/init body %s: %v", body, err)
	}
	e.root = r.RootToken
}

func TestAuditLogHasNoPlaintextToken(t *testing.T) {
	l, path := openAudit(t)
	e := auditEnv(t, l, false)
	initViaHTTP(t, e)
	tokens := []string{e.root}
	accessors := []string{}

	rc := e.client(e.root)
	child := e.create(e.root, &vault.TokenCreateRequest{TTL: "1h", Metadata: map[string]string{"k": "v"}})
	orphan, err := rc.Auth().Token().CreateOrphan(&vault.TokenCreateRequest{TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	custom := e.create(e.root, &vault.TokenCreateRequest{ID: "my-custom-token-id-0123456789"})
	grand := e.create(child.Auth.ClientToken, &vault.TokenCreateRequest{TTL: "30m"})
	for _, s := range []*vault.Secret{child, orphan, custom, grand} {
		tokens = append(tokens, s.Auth.ClientToken)
		accessors = append(accessors, s.Auth.Accessor)
	}
	ct, gt, ot := child.Auth.ClientToken, grand.Auth.ClientToken, orphan.Auth.ClientToken

	steps := []struct{ method, path, token, body string }{
		{"GET", "/v1/auth/token/lookup-self", ct, ""},
		{"POST", "/v1/auth/token/lookup", e.root, `{"token":"` + gt + `"}`},
		{"GET", "/v1/auth/token/lookup/" + gt, e.root, ""},
		{"GET", "/v1/auth/token/lookup?token=" + ot, e.root, ""},
		{"POST", "/v1/auth/token/lookup-accessor", e.root, `{"accessor":"` + child.Auth.Accessor + `"}`},
		{"LIST", "/v1/auth/token/accessors", e.root, ""},
		{"POST", "/v1/auth/token/renew", e.root, `{"token":"` + gt + `","increment":"1h"}`},
		{"POST", "/v1/auth/token/renew/" + ot, e.root, ""},
		{"POST", "/v1/auth/token/renew-self", ct, `{"token":"` + ct + `"}`},
		{"POST", "/v1/auth/token/renew-accessor", e.root, `{"accessor":"` + orphan.Auth.Accessor + `"}`},
		{"POST", "/v1/sys/capabilities-self", ct, `{"paths":["auth/token/create"]}`},
		{"GET", "/v1/auth/token/lookup-self", "hvs.notavalidtoken0123456789", ""}, // 403
		{"GET", "/v1/nope/" + ct, e.root, ""},                                     // 404, token in an unknown path
		{"POST", "/v1/auth/token/lookup", e.root, `{"token": broken ` + ct},       // 400, never the raw body
		{"POST", "/v1/auth/token/revoke", e.root, `{"token":"` + gt + `"}`},
		{"POST", "/v1/auth/token/revoke-accessor", e.root, `{"accessor":"` + orphan.Auth.Accessor + `"}`},
		{"POST", "/v1/auth/token/revoke-self", ct, ""},
		{"POST", "/v1/auth/token/revoke", e.root, `{"token":"` + custom.Auth.ClientToken + `"}`},
	}
	for _, s := range steps {
		st, _, body := e.do(s.method, s.path, s.token, s.body)
		if st >= 500 {
			t.Fatalf("%s %s: %d %s", s.method, s.path, st, body)
		}
	}
	st, _, body := e.do("POST", "/v1/sys/audit-hash/file", e.root, `{"input":"`+e.root+`"}`)
	if st != 200 {
		t.Fatalf("audit-hash: %d %s", st, body)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range tokens {
		forms := []string{tok,
			base64.StdEncoding.EncodeToString([]byte(tok)), base64.RawStdEncoding.EncodeToString([]byte(tok)),
			base64.URLEncoding.EncodeToString([]byte(tok)), base64.RawURLEncoding.EncodeToString([]byte(tok)),
			hex.EncodeToString([]byte(tok))}
		for _, f := range forms {
			if strings.Contains(string(raw), f) {
				t.Errorf("audit log contains a token (form %q)", f)
			}
		}
	}
	for _, a := range accessors {
		if strings.Contains(string(raw), a) {
			t.Errorf("audit log contains an accessor in clear")
		}
	}

	entries := readAudit(t, path)
	ids := map[string]int{}
	clientTokens := 0
	for _, en := range entries {
		walkKey(en, "client_token", func(v any) {
			clientTokens++
			if s, _ := v.(string); s != "" && !auditHashRE.MatchString(s) {
				t.Errorf("client_token %q is not a hash", s)
			}
		})
		for _, k := range []string{"accessor", "client_token_accessor", "token", "id", "root_token"} {
			walkKey(en, k, func(v any) {
				if s, ok := v.(string); ok && s != "" && !auditHashRE.MatchString(s) && k != "id" {
					t.Errorf("%s %q is not a hash", k, s)
				}
			})
		}
		req, _ := en["request"].(map[string]any)
		id, _ := req["id"].(string)
		switch en["type"] {
		case "request":
			ids[id]++
		case "response":
			ids[id]--
			if _, ok := en["response"].(map[string]any)["status"]; !ok {
				t.Errorf("response entry without status: %v", en)
			}
		default:
			t.Errorf("entry type %v", en["type"])
		}
	}
	if clientTokens == 0 {
		t.Fatal("no client_token in the audit log")
	}
	for id, n := range ids {
		if n != 0 || id == "" {
			t.Errorf("request %q: request/response entries unbalanced (%d)", id, n)
		}
	}
	if len(entries) < 2*(len(steps)+5) {
		t.Errorf("%d entries, want one request and one response per request", len(entries))
	}

	// sys/audit-hash gives what the log shows for the root token.
	var ah struct {
		RequestID string            `json:"request_id"`
		Data      map[string]string `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &ah); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, en := range entries {
		if a, ok := en["auth"].(map[string]any); ok && a["client_token"] == ah.Data["hash"] {
			found = true
		}
		if req := en["request"].(map[string]any); req["id"] == ah.RequestID && en["type"] == "response" {
			if req["path"] != "sys/audit-hash/file" {
				t.Errorf("audit-hash path %v", req["path"])
			}
		}
	}
	if !found {
		t.Fatalf("sys/audit-hash %q matches no client_token in the log", ah.Data["hash"])
	}
	// The hash of an issued token is also findable: the custom ID.
	h, ok := (&server{node: e.node}).auditHasher()
	if !ok || !strings.Contains(string(raw), h.Hash(custom.Auth.ClientToken)) {
		t.Error("hash of the custom token ID not found in the log")
	}
}

// flakyWriter fails every write while failing is set.
type flakyWriter struct {
	mu      sync.Mutex
	failing bool
	okLeft  int // with failing: writes that still succeed first
	lines   int
}

func (w *flakyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failing {
		if w.okLeft == 0 {
			return 0, errors.New("no space left on device")
		}
		w.okLeft--
	}
	w.lines++
	return len(p), nil
}

func (w *flakyWriter) set(failing bool, okLeft int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.failing, w.okLeft = failing, okLeft
}

func TestAuditFailClosedAndOpen(t *testing.T) {
	for _, failOpen := range []bool{false, true} {
		name := "fail_closed"
		if failOpen {
			name = "fail_open"
		}
		t.Run(name, func(t *testing.T) {
			w := &flakyWriter{}
			e := auditEnv(t, audit.New(w), failOpen)
			initViaHTTP(t, e)
			before := len(e.node.fsm.Accessors())

			w.set(true, 0) // request entry fails
			st, _, body := e.do("POST", "/v1/auth/token/create", e.root, `{"ttl":"1h"}`)
			after := len(e.node.fsm.Accessors())
			if failOpen {
				if st != 200 || after != before+1 {
					t.Fatalf("fail-open create: %d %s (tokens %d → %d)", st, body, before, after)
				}
			} else {
				if st != 500 || body != `{"errors":["internal error"]}`+"\n" || after != before {
					t.Fatalf("fail-closed create: %d %q (tokens %d → %d)", st, body, before, after)
				}
			}
			if !strings.Contains(e.logBuf.String(), "audit log write failed") {
				t.Error("audit failure not logged")
			}

			w.set(true, 1) // request entry ok, response entry fails
			st, _, body = e.do("POST", "/v1/auth/token/create", e.root, `{"ttl":"1h"}`)
			if failOpen && st != 200 {
				t.Fatalf("fail-open response: %d %s", st, body)
			}
			if !failOpen && (st != 500 || strings.Contains(body, "hvs.")) {
				t.Fatalf("fail-closed response: %d %q (the token must not be handed out unaudited)", st, body)
			}

			w.set(false, 0)
			if st, _, body := e.do("GET", "/v1/auth/token/lookup-self", e.root, ""); st != 200 {
				t.Fatalf("after recovery: %d %s", st, body)
			}
		})
	}
}

func TestAuditForwardedRequests(t *testing.T) {
	leaderLog, leaderPath := openAudit(t)
	e := auditEnv(t, leaderLog, false)
	initViaHTTP(t, e)
	f := newFakeFollower(e.node, e.srv.URL)
	f.replicate(0)
	followerLog, followerPath := openAudit(t)
	opts := testOptions(e.logBuf)
	opts.Audit = followerLog
	fs := httptest.NewServer(New(f, opts))
	t.Cleanup(fs.Close)

	st, _, body := doRaw(t, fs.URL, "POST", "/v1/auth/token/create", e.root, `{"ttl":"1h"}`)
	if st != 200 {
		t.Fatalf("create via follower: %d %s", st, body)
	}
	var fwd map[string]any
	for _, en := range readAudit(t, followerPath) {
		if en["type"] == "response" && en["request"].(map[string]any)["path"] == "auth/token/create" {
			fwd = en
		}
	}
	if fwd == nil || fwd["forwarded_to_leader"] != true || fwd["response"].(map[string]any)["status"] != float64(200) {
		t.Fatalf("follower's response entry: %v", fwd)
	}
	var led map[string]any
	for _, en := range readAudit(t, leaderPath) {
		if en["type"] == "response" && en["request"].(map[string]any)["path"] == "auth/token/create" {
			led = en
		}
	}
	if led == nil || led["forwarded_from"] != "127.0.0.1" || led["request"].(map[string]any)["remote_address"] != "127.0.0.1" {
		t.Fatalf("leader's response entry: %v", led)
	}
	ra, _ := led["response"].(map[string]any)["auth"].(map[string]any)
	if s, _ := ra["client_token"].(string); !auditHashRE.MatchString(s) {
		t.Fatalf("leader's response auth: %v", ra)
	}
	// Both nodes hash the root token identically.
	fa := fwd["auth"].(map[string]any)["client_token"]
	la := led["auth"].(map[string]any)["client_token"]
	if fa != la || !auditHashRE.MatchString(fa.(string)) {
		t.Fatalf("nodes hash the caller differently: %v vs %v", fa, la)
	}
}

func TestAuditHashEndpoint(t *testing.T) {
	e := newEnv(t, true) // no audit device: the endpoint still answers
	c := e.client(e.root)
	got, err := c.Sys().AuditHash("file", "hvs.something")
	if err != nil {
		t.Fatal(err)
	}
	_, key := e.node.fsm.ClusterIdent()
	if want := audit.NewHasher(audit.DeriveKey(key)).Hash("hvs.something"); got != want {
		t.Fatalf("audit-hash = %s, want %s", got, want)
	}
	if st, _, body := e.do("POST", "/v1/sys/audit-hash/file", e.root, `{}`); st != 400 {
		t.Fatalf("missing input: %d %s", st, body)
	}
	// A default-policy token may not hash (update on sys/audit-hash needed).
	child := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}})
	if st, _, _ := e.do("POST", "/v1/sys/audit-hash/file", child.Auth.ClientToken, `{"input":"x"}`); st != 403 {
		t.Fatalf("default token: %d, want 403", st)
	}
}

// BenchmarkLookupSelfAudit is BenchmarkLookupSelf with an audit log (to a
// discarding writer: the cost measured is building, hashing and encoding
// the two entries plus the mutex, not the disk).
func BenchmarkLookupSelfAudit(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			node := newFakeLeader()
			root, err := InitRoot(context.Background(), node, "")
			if err != nil {
				b.Fatal(err)
			}
			opts := Options{}
			if on {
				opts.Audit = audit.New(discard{})
			}
			h := New(node, opts)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("GET", "/v1/auth/token/lookup-self", nil)
					req.Header.Set("X-Vault-Token", root)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != http.StatusOK {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
