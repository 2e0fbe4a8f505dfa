package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/cluster/status"
)

// peerNode is a fakeNode that can remove peers (PeerRemover).
type peerNode struct {
	*fakeNode
	mu      sync.Mutex
	calls   []string
	removed map[string]bool
	known   map[string]bool
}

func (n *peerNode) RemovePeer(_ context.Context, id string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.calls = append(n.calls, id)
	if !n.known[id] && !n.removed[id] {
		return status.ErrUnknownPeer
	}
	delete(n.known, id)
	n.removed[id] = true
	return nil
}

func TestRaftRemovePeer(t *testing.T) {
	pn := &peerNode{fakeNode: newFakeLeader(), removed: map[string]bool{}, known: map[string]bool{"n4": true}}
	e := &env{t: t, node: pn.fakeNode, logBuf: &syncBuffer{}}
	e.srv = httptest.NewServer(New(pn, testOptions(e.logBuf)))
	t.Cleanup(e.srv.Close)
	root, err := InitRoot(context.Background(), pn, "")
	if err != nil {
		t.Fatal(err)
	}
	e.root = root
	user := e.create(root, &vault.TokenCreateRequest{Policies: []string{"default"}}).Auth.ClientToken

	const path = "/v1/sys/storage/raft/remove-peer"
	for _, tt := range []struct {
		name, token, body string
		want              int
		msg               string
	}{
		{"not root", user, `{"server_id":"n4"}`, http.StatusForbidden, "permission denied"},
		{"no id", root, `{}`, http.StatusBadRequest, "missing server_id"},
		{"blank id", root, `{"server_id":"  "}`, http.StatusBadRequest, "missing server_id"},
		{"unknown", root, `{"server_id":"n9"}`, http.StatusBadRequest, "server n9 is not in the raft configuration"},
		{"remove", root, `{"server_id":"n4"}`, http.StatusNoContent, ""},
		{"retry is idempotent", root, `{"server_id":"n4"}`, http.StatusNoContent, ""},
	} {
		code, _, body := e.do("POST", path, tt.token, tt.body)
		if code != tt.want || !strings.Contains(body, tt.msg) {
			t.Errorf("%s: %d %s, want %d containing %q", tt.name, code, body, tt.want, tt.msg)
		}
	}
	if got := strings.Join(pn.calls, ","); got != "n9,n4,n4" {
		t.Errorf("RemovePeer calls %q, want n9,n4,n4 (denied and malformed requests change nothing)", got)
	}
	// A node without PeerRemover refuses clearly.
	plain := newEnv(t, true)
	if code, _, body := plain.do("POST", path, plain.root, `{"server_id":"n4"}`); code != http.StatusBadRequest ||
		!strings.Contains(body, "cannot remove raft peers") {
		t.Errorf("node without PeerRemover: %d %s", code, body)
	}
}
