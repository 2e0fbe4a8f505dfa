package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/fsm"
)

// batchClock is a settable clock for Options.Now.
type batchClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *batchClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *batchClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// batchEnv is a fake leader behind a server whose clock the test moves.
type batchEnv struct {
	*env
	clock *batchClock
	h     http.Handler
}

func newBatchEnv(t *testing.T, maxTTL time.Duration) *batchEnv {
	t.Helper()
	clk := &batchClock{now: time.Now().Truncate(time.Second)}
	e := &env{t: t, node: newFakeLeader(), logBuf: &syncBuffer{}}
	opts := testOptions(e.logBuf)
	opts.Now = clk.Now
	opts.MaxTTL = maxTTL
	h := New(e.node, opts)
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	root, err := InitRoot(context.Background(), e.node, "")
	if err != nil {
		t.Fatalf("InitRoot: %v", err)
	}
	e.root = root
	return &batchEnv{env: e, clock: clk, h: h}
}

// createRaw posts to a create path and decodes the envelope.
func createRaw(t *testing.T, base, path, token, body string) (int, map[string]any) {
	t.Helper()
	code, _, out := doRaw(t, base, "POST", path, token, body)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s: %d %q: %v", path, code, out, err)
	}
	return code, m
}

// batchToken creates a batch token as caller and returns its ID.
func (e *batchEnv) batchToken(caller, body string) string {
	e.t.Helper()
	return mustBatch(e.t, e.srv.URL, "/v1/auth/token/create", caller, body)
}

func mustBatch(t *testing.T, base, path, caller, body string) string {
	t.Helper()
	code, m := createRaw(t, base, path, caller, body)
	if code != 200 {
		t.Fatalf("batch create: %d %v", code, m)
	}
	auth := m["auth"].(map[string]any)
	tok := auth["client_token"].(string)
	if !strings.HasPrefix(tok, "hvb.") || auth["token_type"] != "batch" || auth["accessor"] != "" || auth["renewable"] != false {
		t.Fatalf("batch auth = %v", auth)
	}
	return tok
}

func lookupSelfStatus(t *testing.T, base, token string) (int, string) {
	t.Helper()
	code, _, body := doRaw(t, base, "GET", "/v1/auth/token/lookup-self", token, "")
	return code, body
}

func TestBatchCreateAndLookup(t *testing.T) {
	e := newBatchEnv(t, 0)
	code, m := createRaw(t, e.srv.URL, "/v1/auth/token/create", e.root,
		`{"type":"batch","policies":["default","web"],"ttl":"1h","meta":{"app":"x"},"display_name":"my app"}`)
	if code != 200 {
		t.Fatalf("create: %d %v", code, m)
	}
	auth := m["auth"].(map[string]any)
	want := map[string]any{
		"accessor": "", "token_type": "batch", "renewable": false, "orphan": false,
		"lease_duration": float64(3600), "num_uses": float64(0), "entity_id": "",
	}
	for k, v := range want {
		if auth[k] != v {
			t.Errorf("auth.%s = %v, want %v", k, auth[k], v)
		}
	}
	tok := auth["client_token"].(string)
	if !strings.HasPrefix(tok, "hvb.") || len(tok) > 255 {
		t.Fatalf("token %d chars", len(tok))
	}
	if e.node.State().Len() != 1 {
		t.Fatalf("a batch token was stored: %d tokens", e.node.State().Len())
	}
	if p, _ := e.node.State().BatchKeys(); p != 1 {
		t.Fatalf("keyring not seeded: primary %d", p)
	}

	check := func(name string, d map[string]any, id string) {
		t.Helper()
		exp, _ := time.Parse(time.RFC3339Nano, d["expire_time"].(string))
		wantExp := e.clock.Now().Add(time.Hour).UTC()
		if !exp.Equal(wantExp) || exp.Nanosecond() != 0 {
			t.Errorf("%s: expire_time %v, want %v", name, d["expire_time"], wantExp)
		}
		wantD := map[string]any{
			"id": id, "accessor": "", "type": "batch", "renewable": false, "orphan": false,
			"num_uses": json.Number("0"), "path": "auth/token/create", "display_name": "token-my-app",
			"ttl": json.Number("3600"), "creation_ttl": json.Number("3600"), "explicit_max_ttl": json.Number("0"),
			"entity_id": "", "creation_time": json.Number(jsonInt(e.clock.Now().Unix())),
		}
		for k, v := range wantD {
			if d[k] != v {
				t.Errorf("%s: %s = %v (%T), want %v", name, k, d[k], d[k], v)
			}
		}
		if pol, _ := d["policies"].([]any); len(pol) != 2 || pol[0] != "default" || pol[1] != "web" {
			t.Errorf("%s: policies %v", name, d["policies"])
		}
		if meta, _ := d["meta"].(map[string]any); meta["app"] != "x" {
			t.Errorf("%s: meta %v", name, d["meta"])
		}
		if _, ok := d["issue_time"]; !ok {
			t.Errorf("%s: no issue_time", name)
		}
	}
	self, err := e.client(tok).Auth().Token().LookupSelf()
	if err != nil {
		t.Fatalf("lookup-self: %v", err)
	}
	check("lookup-self", self.Data, tok)
	other, err := e.client(e.root).Auth().Token().Lookup(tok)
	if err != nil {
		t.Fatalf("lookup: %v", err)
	}
	check("lookup", other.Data, tok)
	code, _, _ = e.do("GET", "/v1/auth/token/lookup/"+tok, e.root, "")
	if code != 200 {
		t.Fatalf("lookup by path: %d", code)
	}
	// The TTL counts down with the clock.
	e.clock.add(100 * time.Second)
	self, err = e.client(tok).Auth().Token().LookupSelf()
	if err != nil || self.Data["ttl"] != json.Number("3500") {
		t.Fatalf("ttl after 100s: %v %v", self, err)
	}
}

func jsonInt(v int64) string { return strings.TrimSpace(mustJSON(v)) }

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestBatchCreateErrors(t *testing.T) {
	e := newBatchEnv(t, 0)
	cases := []struct {
		name, body, msg string
	}{
		{"root", `{"type":"batch"}`, "batch tokens cannot be root tokens"},
		{"root explicit", `{"type":"batch","policies":["root"]}`, "batch tokens cannot be root tokens"},
		{"explicit max", `{"type":"batch","policies":["a"],"explicit_max_ttl":"1h"}`, `batch tokens cannot have "explicit_max_ttl" set`},
		{"num uses", `{"type":"batch","policies":["a"],"num_uses":2}`, `batch tokens cannot have "num_uses" set`},
		{"period", `{"type":"batch","policies":["a"],"period":"1h"}`, `batch tokens cannot have "period" set`},
		{"custom id", `{"type":"batch","policies":["a"],"id":"custom"}`, msgBatchCustomID},
		{"bad type", `{"type":"batches","policies":["a"]}`, "invalid 'token_type' value"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, m := createRaw(t, e.srv.URL, "/v1/auth/token/create", e.root, tc.body)
			errs, _ := m["errors"].([]any)
			if code != 400 || len(errs) != 1 || errs[0] != tc.msg {
				t.Fatalf("%d %v, want 400 %q", code, m, tc.msg)
			}
		})
	}
	// Nothing was stored and no token was issued.
	if e.node.State().Len() != 1 {
		t.Fatalf("tokens stored: %d", e.node.State().Len())
	}
}

func TestBatchRenewRevokeRefused(t *testing.T) {
	e := newBatchEnv(t, 0)
	tok := e.batchToken(e.root, `{"type":"batch","policies":["default"],"ttl":"1h"}`)
	root := e.client(e.root)
	self := e.client(tok)

	_, err := self.Auth().Token().RenewSelf(0)
	wantStatus(t, err, 400, msgBatchRenew)
	_, err = root.Auth().Token().Renew(tok, 0)
	wantStatus(t, err, 400, msgBatchRenew)
	err = self.Auth().Token().RevokeSelf("")
	wantStatus(t, err, 400, msgBatchRevoke)
	err = root.Auth().Token().RevokeTree(tok)
	wantStatus(t, err, 400, msgBatchRevoke)
	err = root.Auth().Token().RevokeOrphan(tok)
	wantStatus(t, err, 400, msgBatchRevoke)
	// An hvb. string that is not a valid batch token is simply unknown.
	if err := root.Auth().Token().RevokeTree("hvb.AAAA"); err != nil {
		t.Fatalf("revoke of an invalid batch token: %v", err)
	}
	err = root.Auth().Token().RevokeOrphan("hvb.AAAA")
	wantStatus(t, err, 400, msgRevokeNotFound)
	_, err = root.Auth().Token().Renew("hvb.AAAA", 0)
	wantStatus(t, err, 400, msgTokenNotFound)
	_, err = root.Auth().Token().Lookup("hvb.AAAA")
	wantStatus(t, err, 403, msgBadToken)
	// Still valid afterwards, and the log never saw any of it.
	if code, body := lookupSelfStatus(t, e.srv.URL, tok); code != 200 {
		t.Fatalf("after refusals: %d %s", code, body)
	}
	if strings.Contains(e.logBuf.String(), tok) {
		t.Fatal("batch token in logs")
	}
	// Proposals: InitRoot, the keyring seed, nothing else.
	if n := e.node.AppliedIndex(); n > 3 {
		t.Fatalf("%d entries applied: a batch operation wrote", n)
	}
}

// TestBatchCallerCannotCreate calls the create handlers directly: under the
// interim ACL a batch token may not reach auth/token/create at all.
func TestBatchCallerCannotCreate(t *testing.T) {
	e := newBatchEnv(t, 0)
	tok := e.batchToken(e.root, `{"type":"batch","policies":["default"],"ttl":"1h"}`)
	s := newServer(e.node, testOptions(e.logBuf))
	view, ok := s.validBatch(tok, time.Now())
	if !ok {
		t.Fatal("batch token invalid")
	}
	for _, body := range []map[string]any{{}, {"type": "batch"}, {"type": "service"}} {
		d, err := newFieldData(body, tokenCreateFields)
		if err != nil {
			t.Fatal(err)
		}
		for name, h := range map[string]Handler{"create": s.create, "create-orphan": s.createOrphan} {
			r := &Request{Op: "POST", Path: "auth/token/" + name, Data: d, Token: &view, ClientToken: tok, Now: time.Now()}
			_, err := h(context.Background(), r)
			if ae := errorResponse(err); ae.Status != 400 || ae.Msg != msgBatchNoChildren {
				t.Fatalf("%s %v as batch caller: %v", name, body, err)
			}
		}
	}
	// And issueBatch itself refuses a batch parent.
	_, err := s.issueBatch(context.Background(), &Request{Token: &view, Now: time.Now()}, tokenSpec{Policies: []string{"a"}, TTL: 60})
	if ae := errorResponse(err); ae.Msg != msgBatchNoChildren {
		t.Fatalf("issueBatch with a batch parent: %v", err)
	}
}

func TestBatchTamperedTokens(t *testing.T) {
	e := newBatchEnv(t, 0)
	tok := e.batchToken(e.root, `{"type":"batch","policies":["default"],"ttl":"1h"}`)
	_, wantBody := lookupSelfStatus(t, e.srv.URL, "hvs.garbagegarbagegarbage12")
	for i := 0; i < len(tok); i++ {
		for _, flip := range []byte{0x01, 0x20} {
			b := []byte(tok)
			b[i] ^= flip
			bad := string(b)
			if bad == tok {
				continue
			}
			rec := record(e.h, "GET", "/v1/auth/token/lookup-self", "", "", "X-Vault-Token", bad)
			if rec.Code != 403 || rec.Body.String() != wantBody {
				t.Fatalf("byte %d ^%#x: %d %q, want 403 %q", i, flip, rec.Code, rec.Body.String(), wantBody)
			}
		}
	}
	// Truncated and extended tokens too.
	for _, bad := range []string{tok[:len(tok)-1], tok + "A", tok[:4], "hvb.", "hvb." + strings.Repeat("A", 10000)} {
		if code, body := lookupSelfStatus(t, e.srv.URL, bad); code != 403 || body != wantBody {
			t.Fatalf("%d-char token: %d %q", len(bad), code, body)
		}
	}
	if code, body := lookupSelfStatus(t, e.srv.URL, tok); code != 200 {
		t.Fatalf("original token after tampering: %d %s", code, body)
	}
}

func TestBatchExpiry(t *testing.T) {
	e := newBatchEnv(t, 0)
	tok := e.batchToken(e.root, `{"type":"batch","policies":["default"],"ttl":"10s"}`)
	if code, _ := lookupSelfStatus(t, e.srv.URL, tok); code != 200 {
		t.Fatalf("fresh: %d", code)
	}
	e.clock.add(9 * time.Second)
	if code, _ := lookupSelfStatus(t, e.srv.URL, tok); code != 200 {
		t.Fatalf("after 9s: %d", code)
	}
	e.clock.add(time.Second)
	if code, body := lookupSelfStatus(t, e.srv.URL, tok); code != 403 || !strings.Contains(body, "invalid token") {
		t.Fatalf("after 10s: %d %s", code, body)
	}
	_, err := e.client(e.root).Auth().Token().Lookup(tok)
	wantStatus(t, err, 403, msgBadToken)
}

func TestBatchParent(t *testing.T) {
	e := newBatchEnv(t, 0)
	root := e.client(e.root)
	// A service parent that may create tokens (root policy), expiring in 60s.
	parent := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"root"}, TTL: "60s"}).Auth.ClientToken

	child := e.batchToken(parent, `{"type":"batch","policies":["default"],"ttl":"1h"}`)
	orphan := mustBatch(t, e.srv.URL, "/v1/auth/token/create-orphan", parent, `{"type":"batch","policies":["default"],"ttl":"1h"}`)
	noParent := e.batchToken(parent, `{"type":"batch","policies":["default"],"ttl":"1h","no_parent":true}`)

	// The child's TTL is capped at the parent's remaining lifetime.
	s, err := e.client(child).Auth().Token().LookupSelf()
	if err != nil {
		t.Fatal(err)
	}
	if s.Data["ttl"] != json.Number("60") || s.Data["orphan"] != false {
		t.Fatalf("child: ttl %v orphan %v", s.Data["ttl"], s.Data["orphan"])
	}
	for _, o := range []string{orphan, noParent} {
		s, err := e.client(o).Auth().Token().LookupSelf()
		if err != nil || s.Data["orphan"] != true || s.Data["ttl"] != json.Number("3600") {
			t.Fatalf("orphan: %v %v", s, err)
		}
	}

	// Revoking the parent invalidates the child; the orphans live on.
	if err := root.Auth().Token().RevokeTree(parent); err != nil {
		t.Fatal(err)
	}
	if code, body := lookupSelfStatus(t, e.srv.URL, child); code != 403 || !strings.Contains(body, "invalid token") {
		t.Fatalf("child after parent revoke: %d %s", code, body)
	}
	_, err = root.Auth().Token().Lookup(child)
	wantStatus(t, err, 403, msgBadToken)
	for _, o := range []string{orphan, noParent} {
		if code, body := lookupSelfStatus(t, e.srv.URL, o); code != 200 {
			t.Fatalf("orphan after parent revoke: %d %s", code, body)
		}
	}

	// A parent that expires takes its batch children with it.
	p2 := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"root"}, TTL: "30s"}).Auth.ClientToken
	c2 := e.batchToken(p2, `{"type":"batch","policies":["default"]}`)
	e.clock.add(29 * time.Second)
	if code, _ := lookupSelfStatus(t, e.srv.URL, c2); code != 200 {
		t.Fatalf("child of live parent: %d", code)
	}
	e.clock.add(time.Second)
	if code, _ := lookupSelfStatus(t, e.srv.URL, c2); code != 403 {
		t.Fatalf("child of expired parent: %d", code)
	}
}

func keyStatus(t *testing.T, c *vault.Client) *vault.KeyStatus {
	t.Helper()
	ks, err := c.Sys().KeyStatus()
	if err != nil {
		t.Fatalf("key-status: %v", err)
	}
	return ks
}

func TestBatchKeyRotation(t *testing.T) {
	const maxTTL = 2 * time.Hour
	e := newBatchEnv(t, maxTTL)
	root := e.client(e.root)
	if ks := keyStatus(t, root); ks.Term != 0 {
		t.Fatalf("fresh keyring term %d", ks.Term)
	}
	a := e.batchToken(e.root, `{"type":"batch","policies":["default"],"ttl":"1h"}`)
	ks := keyStatus(t, root)
	if ks.Term != 1 || !ks.InstallTime.Equal(e.clock.Now()) {
		t.Fatalf("after seed: %+v", ks)
	}
	e.clock.add(time.Minute)
	if err := root.Sys().Rotate(); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if ks := keyStatus(t, root); ks.Term != 2 || !ks.InstallTime.Equal(e.clock.Now()) {
		t.Fatalf("after rotate: %+v", ks)
	}
	b := e.batchToken(e.root, `{"type":"batch","policies":["default"],"ttl":"1h"}`)
	for name, tok := range map[string]string{"old key": a, "new key": b} {
		if code, body := lookupSelfStatus(t, e.srv.URL, tok); code != 200 {
			t.Fatalf("%s: %d %s", name, code, body)
		}
	}
	// Only root (or sudo) may rotate.
	dflt := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}}).Auth.ClientToken
	wantStatus(t, e.client(dflt).Sys().Rotate(), 403, "permission denied")

	// A rotation prunes keys retired longer than the max TTL ago: key 1
	// (retired at the first rotate) goes, key 2 (retired now) stays.
	e.clock.add(maxTTL + time.Second)
	if err := root.Sys().Rotate(); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	s, err := root.Logical().Read("sys/key-status")
	if err != nil || s.Data["term"] != json.Number("3") || s.Data["keys"] != json.Number("2") {
		t.Fatalf("after prune: %v %v", s, err)
	}
	if _, ok := e.node.State().BatchKey(1); ok {
		t.Fatal("key 1 not pruned")
	}

	// A pruned key invalidates its tokens even before they expire.
	e2 := newBatchEnv(t, maxTTL)
	old := e2.batchToken(e2.root, `{"type":"batch","policies":["default"],"ttl":"1h"}`)
	if err := e2.client(e2.root).Sys().Rotate(); err != nil {
		t.Fatal(err)
	}
	fresh := e2.batchToken(e2.root, `{"type":"batch","policies":["default"],"ttl":"1h"}`)
	if _, _, err := e2.node.Propose(context.Background(), fsm.PruneBatchKeys{Before: e2.clock.Now().Add(time.Hour).UnixNano()}); err != nil {
		t.Fatal(err)
	}
	if code, _ := lookupSelfStatus(t, e2.srv.URL, old); code != 403 {
		t.Fatalf("token of a pruned key: %d", code)
	}
	if code, _ := lookupSelfStatus(t, e2.srv.URL, fresh); code != 200 {
		t.Fatalf("token of the primary key: %d", code)
	}
}

func TestBatchCreateOnFollowerIsLocal(t *testing.T) {
	c := newCluster2(t)
	forwards := func() int {
		c.follower.mu.Lock()
		defer c.follower.mu.Unlock()
		return c.follower.forwards
	}
	body := `{"type":"batch","policies":["default"],"ttl":"1h"}`
	// No key yet: the first batch create goes to the leader, which seeds
	// the keyring.
	first := mustBatch(t, c.followerSrv.URL, "/v1/auth/token/create", c.root, body)
	if forwards() != 1 {
		t.Fatalf("first create: %d forwards, want 1", forwards())
	}
	c.follower.replicate(0)
	applied := c.node.AppliedIndex()

	// With the key replicated, batch creates stay on the follower.
	var toks []string
	for _, path := range []string{"/v1/auth/token/create", "/v1/auth/token/create-orphan"} {
		toks = append(toks, mustBatch(t, c.followerSrv.URL, path, c.root, body))
	}
	code, _, out := doRaw(t, c.followerSrv.URL, "PUT", "/v1/auth/token/create", c.root, "type=batch&policies=default",
		"Content-Type", "application/x-www-form-urlencoded")
	if code != 200 || !strings.Contains(out, `"token_type":"batch"`) {
		t.Fatalf("form create: %d %s", code, out)
	}
	if forwards() != 1 || c.node.AppliedIndex() != applied {
		t.Fatalf("batch create on follower: forwards %d, leader index %d -> %d", forwards(), applied, c.node.AppliedIndex())
	}
	// Validated on both nodes, from either node's state.
	for _, tok := range append(toks, first) {
		for _, base := range []string{c.srv.URL, c.followerSrv.URL} {
			if code, body := lookupSelfStatus(t, base, tok); code != 200 {
				t.Fatalf("validate on %s: %d %s", base, code, body)
			}
		}
	}
	if forwards() != 1 {
		t.Fatalf("validation forwarded: %d", forwards())
	}
	// A service create (or a bad batch create) is still the leader's.
	if code, _ := createRaw(t, c.followerSrv.URL, "/v1/auth/token/create", c.root, `{"type":"service"}`); code != 200 || forwards() != 2 {
		t.Fatalf("service create: %d, forwards %d", code, forwards())
	}
	if code, _ := createRaw(t, c.followerSrv.URL, "/v1/auth/token/create", c.root, `{"type":5}`); code != 400 || forwards() != 3 {
		t.Fatalf("bad type: %d, forwards %d", code, forwards())
	}
	// A stale follower does not create batch tokens from its state: the
	// parent check could miss a revocation.
	c.follower.set(func(n *fakeNode) { n.stale = true })
	if code, _ := createRaw(t, c.followerSrv.URL, "/v1/auth/token/create", c.root, body); code != 200 || forwards() != 4 {
		t.Fatalf("stale follower: %d, forwards %d", code, forwards())
	}
	c.follower.set(func(n *fakeNode) { n.stale = false })
	if logs := c.logBuf.String(); strings.Contains(logs, "hvb.") {
		t.Fatalf("batch token in logs:\n%s", logs)
	}
}

func TestResolveTokenType(t *testing.T) {
	cases := []struct {
		req, role, want string
		bad             bool
	}{
		{"", "", "service", false},
		{"batch", "", "batch", false},
		{"service", "", "service", false},
		{"x", "", "", true},
		{"", "default-batch", "batch", false},
		{"service", "default-batch", "service", false},
		{"batch", "default-service", "batch", false},
		{"", "default", "service", false},
		{"service", "batch", "batch", false},
		{"batch", "service", "service", false},
		{"", "weird", "", true},
	}
	for _, tc := range cases {
		var role *fsm.Role
		if tc.role != "" {
			role = &fsm.Role{Name: "r", TokenType: tc.role}
		}
		got, err := resolveTokenType(tc.req, role)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("resolveTokenType(%q, %q) = %q, %v", tc.req, tc.role, got, err)
		}
	}
}

// benchServer is a fake leader with a root token behind the adapter (no
// network), for the batch vs service comparison.
func benchServer(b *testing.B) (http.Handler, *fakeNode, string) {
	b.Helper()
	node := newFakeLeader()
	h := New(node, Options{Logger: nil})
	root, err := InitRoot(context.Background(), node, "")
	if err != nil {
		b.Fatal(err)
	}
	return h, node, root
}

func benchCreate(b *testing.B, body string) {
	h, _, root := benchServer(b)
	if rec := record(h, "POST", "/v1/auth/token/create", root, body); rec.Code != 200 {
		b.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if rec := record(h, "POST", "/v1/auth/token/create", root, body); rec.Code != 200 {
			b.Fatalf("create: %d %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// BenchmarkBatchCreate: a batch create through the adapter on the leader
// (no proposal once the keyring is seeded).
func BenchmarkBatchCreate(b *testing.B) {
	benchCreate(b, `{"type":"batch","policies":["default","web"],"ttl":"1h"}`)
}

// BenchmarkServiceCreate: the same create as a service token (one
// proposal, applied by the fake node's fsm without raft).
func BenchmarkServiceCreate(b *testing.B) {
	benchCreate(b, `{"policies":["default","web"],"ttl":"1h"}`)
}

func benchValidate(b *testing.B, body string) {
	h, _, root := benchServer(b)
	rec := record(h, "POST", "/v1/auth/token/create", root, body)
	var m struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil || rec.Code != 200 {
		b.Fatalf("create: %d %v", rec.Code, err)
	}
	tok := m.Auth.ClientToken
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if rec := record(h, "GET", "/v1/auth/token/lookup-self", tok, ""); rec.Code != 200 {
			b.Fatalf("lookup-self: %d %s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "validations/s")
}

// BenchmarkBatchValidate: lookup-self with a batch token (open + parent check).
func BenchmarkBatchValidate(b *testing.B) {
	benchValidate(b, `{"type":"batch","policies":["default","web"],"ttl":"1h"}`)
}

// BenchmarkServiceValidate: lookup-self with a service token.
func BenchmarkServiceValidate(b *testing.B) {
	benchValidate(b, `{"policies":["default","web"],"ttl":"1h"}`)
}

// BenchmarkBatchOpen is the cost of validBatch alone.
func BenchmarkBatchOpen(b *testing.B) {
	h, node, root := benchServer(b)
	rec := record(h, "POST", "/v1/auth/token/create", root, `{"type":"batch","policies":["default"],"ttl":"1h"}`)
	var m struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	s := newServer(node, Options{})
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := s.validBatch(m.Auth.ClientToken, now); !ok {
			b.Fatal("invalid")
		}
	}
}
