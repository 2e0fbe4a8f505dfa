package cluster

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// contactTransport is the raft transport, recording when each peer last
// answered an AppendEntries RPC this node sent. On the leader that is every
// heartbeat (raft sends them every HeartbeatTimeout/10 through
// AppendEntries, never through the pipeline), so the record is the
// leader's own view of whether raft still reaches a follower: what Consul's
// autopilot calls a server's last contact. hashicorp/raft keeps the same
// time per follower but does not export it. Embedding the
// *raft.NetworkTransport keeps every optional interface raft looks for
// (WithClose, WithPeers, WithPreVote).
//
// It also keeps the leader's quorum contact (doc.go, "Leader gate"): the
// send time of the latest AppendEntries such that a quorum of voters
// (this node counting as one) answered it, or a later one, in the term it
// was sent in. Readers load it with one atomic load.
//
// All times are nanoseconds on this process's monotonic clock since base
// (plus skew), so a wall-clock step never moves them.
type contactTransport struct {
	*raft.NetworkTransport
	base time.Time
	// skew is added to the clock; only tests set it, to make the contact
	// clock jump forward as a process pause does.
	skew atomic.Int64
	last sync.Map // raft.ServerID -> *peerContact
	// voters returns this node's id and the voters of raft's latest
	// configuration (ok false before raft runs).
	voters func() (self raft.ServerID, voters []raft.ServerID, ok bool)
	// quorum is the quorum contact time (0: none yet; math.MaxInt64:
	// this node is the only voter, so it is its own quorum).
	quorum atomic.Int64
	// advanced is closed and replaced each time quorum moves forward.
	advanced atomic.Pointer[chan struct{}]
}

// peerContact is one peer's record.
type peerContact struct {
	// answered is when the latest answer arrived (any answer).
	answered atomic.Int64
	// acked is the send time of the latest request the peer answered in
	// the request's term: at some instant after acked it still followed
	// that term, so it had not voted in a later one.
	acked atomic.Int64
}

func newContactTransport(t *raft.NetworkTransport) *contactTransport {
	c := &contactTransport{NetworkTransport: t, base: time.Now()}
	ch := make(chan struct{})
	c.advanced.Store(&ch)
	return c
}

// now is the contact clock.
func (t *contactTransport) now() int64 { return int64(time.Since(t.base)) + t.skew.Load() }

// AppendEntries implements raft.Transport. Any answer counts as contact
// (lastContact), a rejected one too: the peer is there and talking raft.
// Only an answer in the request's term counts for the quorum contact: a
// peer answering with a later term has moved on to another leader.
func (t *contactTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress,
	args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	// The send time, not the receipt: a process paused after sending
	// receives an old answer late, and the answer vouches only for an
	// instant between the two.
	sent := t.now()
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err != nil {
		return err
	}
	v, ok := t.last.Load(id)
	if !ok {
		v, _ = t.last.LoadOrStore(id, new(peerContact))
	}
	p := v.(*peerContact)
	p.answered.Store(t.now())
	if resp.Term == args.Term {
		for {
			old := p.acked.Load()
			if sent <= old || p.acked.CompareAndSwap(old, sent) {
				break
			}
		}
		t.updateQuorum()
	}
	return err
}

// lastContact returns when peer id last answered an AppendEntries RPC of
// this node (zero: never).
func (t *contactTransport) lastContact(id raft.ServerID) time.Time {
	v, ok := t.last.Load(id)
	if !ok {
		return time.Time{}
	}
	a := v.(*peerContact).answered.Load()
	if a == 0 {
		return time.Time{}
	}
	return t.base.Add(time.Duration(a - t.skew.Load()))
}

// updateQuorum recomputes the quorum contact from the voters of raft's
// latest configuration. It runs on every answer in term (every heartbeat)
// and when this node takes leadership. A configuration change is seen at
// the next answer (one heartbeat interval): raft changes one server at a
// time, and any quorum of the old configuration intersects any quorum of
// the new one, so the value computed from the old one stays valid.
func (t *contactTransport) updateQuorum() {
	if t.voters == nil {
		return
	}
	self, voters, ok := t.voters()
	if !ok || len(voters) == 0 {
		return
	}
	need := len(voters)/2 + 1
	var acks []int64
	for _, id := range voters {
		if id == self {
			need-- // this node agrees with itself, now
			continue
		}
		var a int64
		if v, ok := t.last.Load(id); ok {
			a = v.(*peerContact).acked.Load()
		}
		acks = append(acks, a)
	}
	q := int64(math.MaxInt64)
	if need > 0 {
		if need > len(acks) {
			q = 0 // cannot happen with self counted; no quorum at all
		} else {
			// The need-th most recent ack: need peers answered at or
			// after it.
			slices.Sort(acks)
			q = acks[len(acks)-need]
		}
	}
	if old := t.quorum.Swap(q); q > old {
		ch := make(chan struct{})
		close(*t.advanced.Swap(&ch))
	}
}

// quorumAge returns how long ago (on the contact clock) the quorum contact
// was: 0 when this node is the only voter, a very long time when no quorum
// answered yet. Lock-free: two atomic loads and the clock.
func (t *contactTransport) quorumAge() time.Duration {
	q := t.quorum.Load()
	switch q {
	case math.MaxInt64:
		return 0
	case 0:
		return math.MaxInt64
	}
	return time.Duration(max(t.now()-q, 0))
}

// awaitQuorumSince waits until a quorum answered a request sent at or after
// from (contact clock), ctx ends (false), or stop reports true (false).
func (t *contactTransport) awaitQuorumSince(ctx context.Context, from int64, stop func() bool) bool {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		ch := *t.advanced.Load()
		if t.quorum.Load() >= from {
			return true
		}
		if stop() {
			return false
		}
		select {
		case <-ch:
		case <-tick.C:
			// Re-check stop, and recompute: a leader that became the
			// only voter gets no more answers that would.
			t.updateQuorum()
		case <-ctx.Done():
			return false
		}
	}
}

// raftVoters returns this node's raft id and the voters of raft's latest
// configuration, for the quorum contact (ok false before raft runs).
func (n *Node) raftVoters() (raft.ServerID, []raft.ServerID, bool) {
	r := n.raftReady.Load()
	if r == nil {
		return "", nil, false
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return "", nil, false
	}
	var out []raft.ServerID
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			out = append(out, s.ID)
		}
	}
	return raft.ServerID(n.id), out, true
}

// leaderReadBound is how old the leader's quorum contact may be for it to
// serve local reads (doc.go, "Leader gate"): raft's own LeaderLeaseTimeout,
// after which raft steps a leader without quorum contact down, and which
// New keeps below -max-stale.
func (n *Node) leaderReadBound() time.Duration { return n.timing.LeaderLeaseTimeout }

// quorumFresh reports whether a quorum of voters answered this leader
// recently enough for its local reads to stay within the staleness bound.
// The fast path is two atomic loads; only when it fails is the quorum
// recomputed (a leader that became the only voter gets no more answers
// that would do it).
func (n *Node) quorumFresh() bool {
	if n.contact.quorumAge() <= n.leaderReadBound() {
		return true
	}
	n.contact.updateQuorum()
	return n.contact.quorumAge() <= n.leaderReadBound()
}
