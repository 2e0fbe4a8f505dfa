package httpapi

import (
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// TestStaleFollowerForwardsReads: a follower without a read lease that knows
// the leader answers reads through the leader instead of from its state.
func TestStaleFollowerForwardsReads(t *testing.T) {
	c := newCluster2(t)
	tok := c.create(c.root, &vault.TokenCreateRequest{TTL: "1h"}).Auth.ClientToken
	// The follower has not replicated the token: only the leader knows it.
	c.follower.set(func(n *fakeNode) { n.stale, n.forwards = true, 0 })
	s, err := newClient(t, c.followerSrv.URL, c.root).Auth().Token().Lookup(tok)
	if err != nil || s == nil {
		t.Fatalf("lookup through a stale follower: %v", err)
	}
	c.follower.mu.Lock()
	fw := c.follower.forwards
	c.follower.mu.Unlock()
	if fw != 1 {
		t.Fatalf("forwards = %d, want 1", fw)
	}
	// Already forwarded once: never a second hop.
	code, _, body := doRaw(t, c.followerSrv.URL, "GET", "/v1/auth/token/lookup-self", c.root, "", HopHeader, "1")
	if code != 503 {
		t.Fatalf("hop to a stale follower: %d %s", code, body)
	}
}

// TestInternalPathsReachNode: node-to-node paths go to ServeInternal before
// any token check.
func TestInternalPathsReachNode(t *testing.T) {
	e := newEnv(t, true)
	code, _, _ := e.do("POST", InternalPathPrefix+"lease", "", `{}`)
	e.node.mu.Lock()
	calls := e.node.internal
	e.node.mu.Unlock()
	if code != 404 || calls != 1 {
		t.Fatalf("internal path: status %d, calls %d", code, calls)
	}
}
