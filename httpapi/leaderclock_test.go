package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// clockNode is a fakeNode whose leader clock runs offset ahead of the
// local one.
type clockNode struct {
	*fakeNode
	offset atomic.Int64
	ok     atomic.Bool
}

func (n *clockNode) LeaderClockOffset() (time.Duration, bool) {
	return time.Duration(n.offset.Load()), n.ok.Load()
}

// TestExpiryByLeaderClock: with a leader-clock estimate, token expiry is
// judged by the leader's time, not the serving node's (RELIABILITY.md T8).
func TestExpiryByLeaderClock(t *testing.T) {
	cn := &clockNode{fakeNode: newFakeLeader()}
	e := &env{t: t, node: cn.fakeNode, logBuf: &syncBuffer{}}
	e.srv = httptest.NewServer(New(cn, testOptions(e.logBuf)))
	t.Cleanup(e.srv.Close)
	root, err := InitRoot(context.Background(), cn, "")
	if err != nil {
		t.Fatal(err)
	}
	tok := e.create(root, &vault.TokenCreateRequest{TTL: "1h", Policies: []string{"default"}}).Auth.ClientToken
	lookup := func() int {
		code, _, _ := e.do("GET", "/v1/auth/token/lookup-self", tok, "")
		return code
	}
	if c := lookup(); c != http.StatusOK {
		t.Fatalf("fresh token: %d", c)
	}
	// The leader's clock is 2 h ahead of this node's: the token expired.
	cn.offset.Store(int64(2 * time.Hour))
	cn.ok.Store(true)
	if c := lookup(); c != http.StatusForbidden {
		t.Fatalf("token past its expiry by the leader's clock: %d, want 403", c)
	}
	// No estimate (e.g. this node leads): the local clock decides again.
	cn.ok.Store(false)
	if c := lookup(); c != http.StatusOK {
		t.Fatalf("without an estimate: %d, want 200", c)
	}
	// A node without LeaderClock keeps its clock.
	base := time.Unix(100, 0)
	if got := leaderTime(newFakeLeader(), func() time.Time { return base })(); !got.Equal(base) {
		t.Fatalf("leaderTime without LeaderClock: %s", got)
	}
}
