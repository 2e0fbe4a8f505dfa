package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

type responseRecorder = httptest.ResponseRecorder

func record(h http.Handler, method, path, token, body string, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// cluster2 is a fake leader and a fake follower, each behind its own server.
type cluster2 struct {
	*env
	follower    *fakeNode
	followerSrv *httptest.Server
}

func newCluster2(t *testing.T) *cluster2 {
	e := newEnv(t, true)
	f := newFakeFollower(e.node, e.srv.URL)
	f.replicate(0)
	fs := httptest.NewServer(New(f, testOptions(e.logBuf)))
	t.Cleanup(fs.Close)
	return &cluster2{env: e, follower: f, followerSrv: fs}
}

func TestWritesForwardedFromFollower(t *testing.T) {
	c := newCluster2(t)
	fc := newClient(t, c.followerSrv.URL, c.root)
	s, err := fc.Auth().Token().Create(&vault.TokenCreateRequest{TTL: "1h"})
	if err != nil {
		t.Fatalf("create via follower: %v", err)
	}
	if _, ok := c.node.State().TokenByAccessor(s.Auth.Accessor); !ok {
		t.Fatal("token not on the leader")
	}
	// A request that was already forwarded never hops again.
	code, hdr, body := doRaw(t, c.followerSrv.URL, "POST", "/v1/auth/token/create", c.root, `{}`, HopHeader, "1")
	// The refusal says so in a header: the forwarding node then sends the
	// request to the next leader (it was not run here).
	if code != 503 || hdr.Get("Retry-After") != "1" || hdr.Get(HopRefusedHeader) != "1" || !strings.Contains(body, "not the leader") {
		t.Fatalf("hop: %d %v %s", code, hdr, body)
	}
	// No leader: 503 with Retry-After.
	c.follower.set(func(n *fakeNode) { n.noLeader = true })
	_, err = fc.Auth().Token().Create(&vault.TokenCreateRequest{})
	wantStatus(t, err, 503, "no leader")
	// Stale follower refuses local reads.
	_, err = fc.Auth().Token().LookupSelf()
	wantStatus(t, err, 503, "node is stale")
	c.follower.set(func(n *fakeNode) { n.noLeader = false })

	// X-Vault-Forward: active-node forwards a read; ?consistent too.
	c.follower.set(func(n *fakeNode) { n.forwards = 0 })
	code, _, _ = doRaw(t, c.followerSrv.URL, "GET", "/v1/auth/token/lookup-self", c.root, "", "X-Vault-Forward", "active-node")
	code2, _, _ := doRaw(t, c.followerSrv.URL, "GET", "/v1/auth/token/lookup-self?consistent", c.root, "")
	c.follower.mu.Lock()
	fw := c.follower.forwards
	c.follower.mu.Unlock()
	if code != 200 || code2 != 200 || fw != 2 {
		t.Fatalf("forwarded reads: %d %d forwards=%d", code, code2, fw)
	}
	// A limited-use token is a write: forwarded.
	lim := c.create(c.root, &vault.TokenCreateRequest{Policies: []string{"default"}, NumUses: 5}).Auth.ClientToken
	c.follower.replicate(0)
	s2, err := newClient(t, c.followerSrv.URL, lim).Auth().Token().LookupSelf()
	if err != nil || s2.Data["num_uses"].(interface{ String() string }).String() != "4" {
		t.Fatalf("limited lookup-self via follower: %v %v", s2, err)
	}
}

func TestReadYourWrites(t *testing.T) {
	c := newCluster2(t)
	var state string
	lc := c.client(c.root).WithResponseCallbacks(vault.RecordState(&state))
	s, err := lc.Auth().Token().Create(&vault.TokenCreateRequest{TTL: "1h"})
	if err != nil || state == "" {
		t.Fatalf("create: %v state=%q", err, state)
	}
	tok := s.Auth.ClientToken

	// The follower has not applied the create: 412 after the wait.
	fc := newClient(t, c.followerSrv.URL, c.root)
	_, err = fc.WithRequestCallbacks(vault.RequireState(state)).Auth().Token().Lookup(tok)
	wantStatus(t, err, 412, "required index state not present")

	// With forward-active-node the leader answers.
	l, err := fc.WithRequestCallbacks(vault.RequireState(state), vault.ForwardInconsistent()).Auth().Token().Lookup(tok)
	if err != nil || l.Data["id"] != tok {
		t.Fatalf("forwarded lookup: %v %v", l, err)
	}

	// Replication arriving during the wait satisfies the read locally.
	c.follower.set(func(n *fakeNode) {
		n.awaitHook = func(uint64) { go n.replicate(0) }
	})
	c.follower.set(func(n *fakeNode) { n.forwards = 0 })
	l, err = fc.WithRequestCallbacks(vault.RequireState(state)).Auth().Token().Lookup(tok)
	if err != nil || l.Data["id"] != tok {
		t.Fatalf("lookup after replication: %v %v", l, err)
	}
	c.follower.mu.Lock()
	fw := c.follower.forwards
	c.follower.mu.Unlock()
	if fw != 0 {
		t.Fatal("read was forwarded instead of served locally")
	}

	// States of another cluster are ignored; a bad HMAC is a 400.
	other := encodeIndexState("other-cluster", []byte("k"), 1<<40)
	code, _, _ := doRaw(t, c.followerSrv.URL, "GET", "/v1/auth/token/lookup-self", c.root, "", "X-Vault-Index", other)
	if code != 200 {
		t.Fatalf("foreign state: %d", code)
	}
	id, _ := c.node.State().ClusterIdent()
	forged := encodeIndexState(id, []byte("wrong key"), 1)
	code, _, body := doRaw(t, c.followerSrv.URL, "GET", "/v1/auth/token/lookup-self", c.root, "", "X-Vault-Index", forged)
	if code != 400 || !strings.Contains(body, "X-Vault-Index") {
		t.Fatalf("forged state: %d %s", code, body)
	}
	// Several states: the highest of this cluster counts.
	_, key := c.node.State().ClusterIdent()
	need, err := requiredIndex([]string{encodeIndexState(id, key, 3), encodeIndexState(id, key, 9) + "," + other}, id, key)
	if err != nil || need != 9 {
		t.Fatalf("requiredIndex = %d %v", need, err)
	}
}

func TestConsistentReadOnLeader(t *testing.T) {
	e := newEnv(t, true)
	if code, _, _ := e.do("GET", "/v1/auth/token/lookup-self?consistent=true", e.root, ""); code != 200 {
		t.Fatalf("consistent read %d", code)
	}
	e.node.set(func(n *fakeNode) { n.verifyErr = errLost })
	code, hdr, _ := e.do("GET", "/v1/auth/token/lookup-self", e.root, "", "X-Tokend-Consistent", "true")
	if code != 503 || hdr.Get("Retry-After") != "1" {
		t.Fatalf("consistent read on a deposed leader %d", code)
	}
}

var errLost = errString("leadership lost")

type errString string

func (e errString) Error() string { return string(e) }
