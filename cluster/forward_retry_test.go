package cluster

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestForwardWaitsOutAFailoverLongerThanTwoElectionTimeouts: a follower
// whose forward finds the leader unreachable waits for the next leader
// within LeaderWait, however long raft keeps reporting the old one. It
// used to give up after one wait of two election timeouts and a second
// failed try, so while a killed leader was not yet replaced (detection
// takes up to about three heartbeat timeouts) every forwarded write got
// "503 no leader elected" (found by test/chaos: 503s exactly 1 s after
// each leader kill on survivors, just before the new leader appeared).
func TestForwardWaitsOutAFailoverLongerThanTwoElectionTimeouts(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	fs := c.followers(leader)
	follower, next := fs[0], fs[1]
	// The leader's HTTP API goes away while raft still has it lead (as in
	// a shutdown that stops HTTP first, or a leader whose HTTP is cut off).
	if err := leader.srv.Close(); err != nil {
		t.Fatal(err)
	}
	wait := 2*FastTiming().ElectionTimeout + 300*time.Millisecond
	moved := make(chan error, 1)
	go func() {
		time.Sleep(wait)
		moved <- leader.node.Load().raft.LeadershipTransferToServer(raft.ServerID(next.id), raft.ServerAddress(next.raftAddr)).Error()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/write", strings.NewReader("x"))
	rec := httptest.NewRecorder()
	start := time.Now()
	forwarded, err := follower.node.Load().ForwardToLeader(rec, req)
	if terr := <-moved; terr != nil {
		t.Fatalf("leadership transfer: %v", terr)
	}
	if err != nil || !forwarded {
		t.Fatalf("ForwardToLeader after %s = %v, %v; want the write forwarded to the next leader (leadership moved after %s)",
			time.Since(start).Round(time.Millisecond), forwarded, err, wait)
	}
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusCreated || !strings.Contains(string(body), "id="+next.id) {
		t.Fatalf("answer %d %q, want the new leader's", rec.Code, body)
	}
}
