package cluster

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/cluster/status"
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

// TestForwardNeverResendsAWriteTheLeaderMayHaveApplied: when the
// connection to the leader breaks after the request went out (the leader
// read it, then died), the follower must not send the write again, to the
// same or a new leader: the first copy may have been committed, and a
// repeated create with a client-chosen ID then answered "duplicate ID" for
// the client's own token (found by test/chaos: a create sent 14 ms before
// a leader kill came back 400 although it had been applied). The answer is
// an honest "may have been applied" 503 instead. Reads are repeated.
func TestForwardNeverResendsAWriteTheLeaderMayHaveApplied(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	follower := c.followers(leader)[0]
	// A stand-in for the leader's HTTP API that reads each request and
	// drops the connection without an answer.
	var got atomic.Int32
	standIn(t, leader, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		got.Add(1)
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	})

	for _, tc := range []struct {
		method string
		sends  int32
	}{{http.MethodPost, 1}, {http.MethodGet, 2}} {
		got.Store(0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		req := httptest.NewRequestWithContext(ctx, tc.method, "/write", strings.NewReader("x"))
		rec := httptest.NewRecorder()
		forwarded, err := follower.node.Load().ForwardToLeader(rec, req)
		cancel()
		if tc.method == http.MethodPost && (forwarded || !isErr(err, status.ErrLeaderLost)) {
			t.Fatalf("POST: ForwardToLeader = %v, %v; want ErrLeaderLost", forwarded, err)
		}
		if n := got.Load(); n < tc.sends || tc.method == http.MethodPost && n != 1 {
			t.Fatalf("%s reached the leader %d times, want %d", tc.method, n, tc.sends)
		}
	}
}

// TestStepDownBeforeTheAPIStops: a graceful shutdown first hands
// leadership over (StepDown), so followers forward to the new leader while
// the old one's HTTP API drains and closes. Stopping the API first lost
// writes in flight: the draining server closes keep-alive connections it
// sees as idle while a follower is sending a forward on one (found by
// test/chaos T9: a probe's create failed during a rolling restart even
// after its one retry).
func TestStepDownBeforeTheAPIStops(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	fs := c.followers(leader)
	if fs[0].node.Load().StepDown(context.Background()) {
		t.Fatal("StepDown on a follower reported it led")
	}
	if !leader.node.Load().StepDown(context.Background()) {
		t.Fatal("StepDown on the leader reported it did not lead")
	}
	if h := leader.node.Load().Health(); h.IsLeader || h.LeaderID == "" || h.LeaderID == leader.id {
		t.Fatalf("after StepDown the old leader reports %+v, want it following another node", h)
	}
	// The old leader's API goes away (its shutdown goes on): every node's
	// writes still reach the new leader, the old leader's own included.
	if err := leader.srv.Close(); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []*tnode{fs[0], fs[1], leader} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/write", strings.NewReader("x"))
		rec := httptest.NewRecorder()
		forwarded, err := tn.node.Load().ForwardToLeader(rec, req)
		cancel()
		if err != nil {
			t.Fatalf("%s: ForwardToLeader after the step-down: %v", tn.id, err)
		}
		if !forwarded && !tn.node.Load().Health().IsLeader {
			t.Fatalf("%s: not forwarded and not the leader", tn.id)
		}
	}
}

// TestWritesDuringStepDownGoToTheNextLeader: a write that reaches a leader
// while it hands leadership over waits for the next leader and is
// forwarded there, instead of failing against the transfer with "node is
// not the leader" (found by test/chaos T9: dozens of such 503s per rolling
// restart once leaders stepped down before their API stopped).
func TestWritesDuringStepDownGoToTheNextLeader(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	n := leader.node.Load()
	n.steppingDown.Store(true) // as StepDown does before the transfer
	if !n.Health().SteppingDown {
		t.Fatal("Health does not report the step-down")
	}
	done := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		var err error
		for try := 0; try < 3; try++ { // raft's transfer may time out under -race
			if err = n.raft.LeadershipTransfer().Error(); err == nil {
				break
			}
		}
		n.steppingDown.Store(false)
		done <- err
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/write", strings.NewReader("x"))
	rec := httptest.NewRecorder()
	forwarded, err := n.ForwardToLeader(rec, req)
	if terr := <-done; terr != nil {
		t.Fatalf("transfer: %v", terr)
	}
	if err != nil || !forwarded {
		t.Fatalf("ForwardToLeader during the step-down = %v, %v; want it forwarded to the next leader", forwarded, err)
	}
	if body := rec.Body.String(); rec.Code != http.StatusCreated || strings.Contains(body, "id="+leader.id) {
		t.Fatalf("answer %d %q, want the next leader's", rec.Code, body)
	}
}

// TestForwardGoesOnWhenTheTargetNoLongerLeads: a follower forwards to the
// node raft still calls leader, but that node has just handed over and
// refuses the request (503 with HopRefusedHeader: it ran nothing). The
// follower must send it to the next leader, a write too, instead of
// copying the refusal to the client (found by test/chaos T9 on 5 nodes:
// consistent reads retried on another node during a rolling restart all
// got "node is not the leader"). A 503 without the header is the leader's
// own answer and is copied as it is.
func TestForwardGoesOnWhenTheTargetNoLongerLeads(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	fs := c.followers(leader)
	follower, next := fs[0], fs[1]
	var refused atomic.Int32
	var plain503 atomic.Bool
	standIn(t, leader, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		if plain503.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		refused.Add(1)
		w.Header().Set(HopRefusedHeader, "1")
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	})

	moved := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		moved <- leader.node.Load().raft.LeadershipTransferToServer(raft.ServerID(next.id), raft.ServerAddress(next.raftAddr)).Error()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/write", strings.NewReader("x"))
	rec := httptest.NewRecorder()
	forwarded, err := follower.node.Load().ForwardToLeader(rec, req)
	if terr := <-moved; terr != nil {
		t.Fatalf("leadership transfer: %v", terr)
	}
	if err != nil || !forwarded {
		t.Fatalf("ForwardToLeader = %v, %v; want the write forwarded to the next leader", forwarded, err)
	}
	if body := rec.Body.String(); rec.Code != http.StatusCreated || !strings.Contains(body, "id="+next.id) {
		t.Fatalf("answer %d %q, want the new leader's", rec.Code, body)
	}
	if refused.Load() == 0 {
		t.Fatal("the refusing node was never asked: the test proves nothing")
	}

	// The stub leads again (raft moves back to it), now answering a plain
	// 503 of its own: that answer is the client's.
	plain503.Store(true)
	if err := next.node.Load().raft.LeadershipTransferToServer(raft.ServerID(leader.id), raft.ServerAddress(leader.raftAddr)).Error(); err != nil {
		t.Fatalf("leadership transfer back: %v", err)
	}
	for follower.node.Load().Health().LeaderID != leader.id {
		if ctx.Err() != nil {
			t.Fatal("the follower never saw the leadership move back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	req = httptest.NewRequestWithContext(ctx, http.MethodPost, "/write", strings.NewReader("x"))
	rec = httptest.NewRecorder()
	if forwarded, err := follower.node.Load().ForwardToLeader(rec, req); err != nil || !forwarded || rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("plain 503: ForwardToLeader = %v, %v, code %d; want the leader's 503 copied", forwarded, err, rec.Code)
	}
}

// standIn replaces tn's HTTP API by h on the same address, while raft on
// tn goes on as before.
func standIn(t *testing.T, tn *tnode, h http.HandlerFunc) {
	t.Helper()
	if err := tn.srv.Close(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", tn.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}
