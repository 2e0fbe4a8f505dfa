package cluster

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// fakeFollower is a raft transport on loopback that answers every
// AppendEntries with its current term, after its current delay.
type fakeFollower struct {
	trans *raft.NetworkTransport
	term  atomic.Uint64
	delay atomic.Int64
}

func newFakeFollower(t *testing.T) *fakeFollower {
	t.Helper()
	tr, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFollower{trans: tr}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case rpc := <-tr.Consumer():
				time.Sleep(time.Duration(f.delay.Load()))
				rpc.Respond(&raft.AppendEntriesResponse{Term: f.term.Load(), Success: true}, nil)
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		_ = tr.Close()
		tr.CloseStreams()
	})
	return f
}

// TestContactTransport_quorumContact: the leader's quorum contact counts
// only answers in the request's term, needs a quorum of voters (the leader
// counting itself), dates an answer by when its request was sent (an answer
// that arrives late after a pause vouches for nothing after the send), and
// ages with the contact clock.
func TestContactTransport_quorumContact(t *testing.T) {
	lt, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 5*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lt.Close(); lt.CloseStreams() }) // after the followers' (LIFO)
	ct := newContactTransport(lt)
	f1, f2 := newFakeFollower(t), newFakeFollower(t)
	voters := []raft.ServerID{"L", "F1", "F2"}
	ct.voters = func() (raft.ServerID, []raft.ServerID, bool) { return "L", voters, true }
	appendEntries := func(id raft.ServerID, f *fakeFollower, term uint64) error {
		var resp raft.AppendEntriesResponse
		return ct.AppendEntries(id, f.trans.LocalAddr(), &raft.AppendEntriesRequest{Term: term}, &resp)
	}
	send := func(id raft.ServerID, f *fakeFollower, term uint64) {
		t.Helper()
		if err := appendEntries(id, f, term); err != nil {
			t.Fatal(err)
		}
	}
	const bound = 100 * time.Millisecond

	if age := ct.quorumAge(); age < time.Hour {
		t.Fatalf("quorum age %s before any answer, want none", age)
	}
	// A follower in a later term answers: contact, but no quorum.
	f2.term.Store(8)
	send("F2", f2, 7)
	if ct.lastContact("F2").IsZero() {
		t.Fatal("an answer from a later term is still contact")
	}
	if age := ct.quorumAge(); age < time.Hour {
		t.Fatalf("quorum age %s from an answer of a later term", age)
	}
	// One follower in term is a quorum of three with the leader.
	f1.term.Store(7)
	send("F1", f1, 7)
	if age := ct.quorumAge(); age > bound {
		t.Fatalf("quorum age %s after an answer in term, want < %s", age, bound)
	}
	// Five voters need two followers: F2 is still in a later term.
	voters = []raft.ServerID{"L", "F1", "F2", "F3", "F4"}
	ct.updateQuorum()
	if age := ct.quorumAge(); age < time.Hour {
		t.Fatalf("quorum age %s with one of four followers", age)
	}
	voters = []raft.ServerID{"L", "F1", "F2"}
	ct.updateQuorum()

	// A pause: the contact clock jumps; the quorum contact ages with it.
	ct.skew.Add(int64(2 * time.Second))
	if age := ct.quorumAge(); age < 2*time.Second {
		t.Fatalf("quorum age %s after a 2s jump", age)
	}
	if last := time.Since(ct.lastContact("F1")); last < 2*time.Second {
		t.Fatalf("last contact %s ago after a 2s jump", last)
	}
	// An answer that takes 300ms counts from its send time.
	f1.delay.Store(int64(300 * time.Millisecond))
	send("F1", f1, 7)
	if age := ct.quorumAge(); age < 300*time.Millisecond || age > 2*time.Second {
		t.Fatalf("quorum age %s after an answer that took 300ms, want its send time", age)
	}
	f1.delay.Store(0)

	// awaitQuorumSince returns once a quorum answered a request sent
	// after from, and gives up when stop says so.
	from := ct.now()
	sent := make(chan error, 1)
	go func() { sent <- appendEntries("F1", f1, 7) }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if !ct.awaitQuorumSince(ctx, from, func() bool { return false }) {
		t.Fatal("awaitQuorumSince did not see the answer")
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if ct.awaitQuorumSince(ctx, ct.now()+1, func() bool { return true }) {
		t.Fatal("awaitQuorumSince ignored stop")
	}

	// The only voter is its own quorum, however long nobody answered.
	voters = []raft.ServerID{"L"}
	ct.updateQuorum()
	if age := ct.quorumAge(); age != 0 {
		t.Fatalf("single voter: quorum age %s, want 0", age)
	}
	if !ct.awaitQuorumSince(ctx, ct.now(), func() bool { return false }) {
		t.Fatal("single voter: awaitQuorumSince waited")
	}
}

// TestLeaderGate_refusesLocalReadsWithoutQuorumContact reproduces the
// pause-leader bug of test/chaos at the cluster level: a leader whose
// quorum of voters has not answered for longer than the leader read bound
// (its contact clock jumps 2s, as across a SIGSTOP, and its links are cut
// so no answer arrives) still believes it leads; it must report itself
// stale (no local reads) and fail VerifyLeader. Once contact resumes, a
// leader serves local reads again.
func TestLeaderGate_refusesLocalReadsWithoutQuorumContact(t *testing.T) {
	lf := &linkFaults{}
	c := newClusterWith(t, 3, nil, nil, func(c *tcluster) { c.wrap = lf.wrap })
	t.Cleanup(lf.heal) // before c.close: the nodes shut down over healthy links
	leader := c.waitLeader()
	n := leader.node.Load()
	waitFor(t, 5*time.Second, "a leader ready for local reads", func() bool {
		h := n.Health()
		return h.IsLeader && !h.Stale
	})

	lf.isolate(leader)
	n.contact.skew.Add(int64(2 * time.Second))
	if h := n.Health(); h.IsLeader && !h.Stale {
		t.Fatalf("leader without quorum contact for %s serves local reads (Stale=false)", n.contact.quorumAge())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := n.VerifyLeader(ctx)
	cancel()
	if err == nil {
		t.Fatal("VerifyLeader succeeded on a leader no quorum answers")
	}

	lf.heal()
	waitFor(t, 10*time.Second, "a leader serving local reads after contact resumed", func() bool {
		for _, tn := range c.running() {
			m := tn.node.Load()
			if h := m.Health(); h.IsLeader && !h.Stale {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				return m.VerifyLeader(ctx) == nil && !m.Health().Stale
			}
		}
		return false
	})
	cmd, _ := newToken(t, time.Hour)
	if res, _ := c.proposeAny(cmd); res.Err != nil {
		t.Fatalf("write after contact resumed: %v", res.Err)
	}
}
