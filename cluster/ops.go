package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

// propose replicates a command (Propose, in metrics.go, is it with
// telemetry). It returns the command's result and log
// index once the entry is committed by a quorum and applied on this node,
// the leader. It never reports success for an entry that was not
// committed: status.ErrNotLeader on a follower or when leadership is lost,
// status.ErrTimeout when ctx or the apply timeout ends first (the entry may
// still commit later), status.ErrShuttingDown when the node stops.
//
// A revocation (RevokeTree, RevokeOrphan, RevokeAccessor, and the UseToken
// that consumes a token's last use) returns only after the revocation fence
// (doc.go, "Read leases"): every other node has either applied the entry or
// lost every read lease it could have used to serve the token. If ctx ends
// or leadership is lost first, Propose returns the result with an error
// wrapping status.ErrTimeout: the entry is committed, its visibility
// everywhere is not yet confirmed.
func (n *Node) propose(ctx context.Context, c fsm.Command) (fsm.Result, uint64, error) {
	if n.shuttingDown.Load() {
		return fsm.Result{}, 0, status.ErrShuttingDown
	}
	if n.raft.State() != raft.Leader {
		return fsm.Result{}, 0, status.ErrNotLeader
	}
	if ctx.Err() != nil {
		return fsm.Result{}, 0, status.ErrTimeout
	}
	data, err := fsm.Encode(c)
	if err != nil {
		return fsm.Result{}, 0, fmt.Errorf("encode %v: %w", c.CommandType(), err)
	}
	timeout := n.timing.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < timeout {
			timeout = d
		}
	}
	if timeout <= 0 {
		return fsm.Result{}, 0, status.ErrTimeout
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if fsm.Batchable(c.CommandType()) {
		// Token creates and renewals share entries (groupcommit.go).
		res, index, err := n.group.propose(wctx, data)
		if err != nil {
			return fsm.Result{}, 0, n.mapRaftErr(err)
		}
		return res, index, nil
	}
	// The raft timeout only bounds enqueueing; wctx bounds the whole wait.
	fut := n.raft.Apply(data, timeout)
	if err := waitFuture(wctx, fut); err != nil {
		return fsm.Result{}, 0, n.mapRaftErr(err)
	}
	res, ok := fut.Response().(fsm.Result)
	if !ok {
		return fsm.Result{}, 0, fmt.Errorf("unexpected apply response %T", fut.Response())
	}
	if needsFence(c, res) {
		// A revocation is acknowledged only once no follower can still
		// validate the revoked token from its local state (doc.go, "Read
		// leases").
		if err := n.fence(ctx, fut.Index()); err != nil {
			return res, fut.Index(), err
		}
	}
	return res, fut.Index(), nil
}

// mapRaftErr turns raft and context errors into status errors.
func (n *Node) mapRaftErr(err error) error {
	switch {
	case errors.Is(err, raft.ErrRaftShutdown) || n.shuttingDown.Load():
		return status.ErrShuttingDown
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrAbortedByRestore):
		return status.ErrNotLeader
	case errors.Is(err, raft.ErrEnqueueTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		return status.ErrTimeout
	default:
		return err
	}
}

// State returns the node's local, read-only view of the state machine.
func (n *Node) State() fsm.Reader { return n.fsm }

// AppliedIndex returns the index of the last log entry the state machine
// has applied on this node. Unlike raft.AppliedIndex it never runs ahead of
// what State() shows.
func (n *Node) AppliedIndex() uint64 { return n.adapter.appliedIndex() }

// AwaitIndex waits until AppliedIndex() >= index or ctx ends
// (status.ErrTimeout).
func (n *Node) AwaitIndex(ctx context.Context, index uint64) error {
	if err := n.adapter.await(ctx, index); err != nil {
		return status.ErrTimeout
	}
	return nil
}

// VerifyLeader confirms with a quorum that this node still leads and that
// it has applied everything committed before it took office (the barrier
// after election). On a follower it returns status.ErrNotLeader.
func (n *Node) VerifyLeader(ctx context.Context) error {
	if n.shuttingDown.Load() {
		return status.ErrShuttingDown
	}
	if n.raft.State() != raft.Leader {
		return status.ErrNotLeader
	}
	ctx, cancel := context.WithTimeout(ctx, n.timing.ApplyTimeout)
	defer cancel()
	from := n.contact.now()
	if err := waitFuture(ctx, n.raft.VerifyLeader()); err != nil {
		return n.mapRaftErr(err)
	}
	// raft counts a heartbeat answer that arrives after the verification
	// started even when the heartbeat was sent before it: after a pause
	// of this process that answer is from before the pause, and other
	// nodes may have elected a new leader since. Require answers to
	// requests sent after from (raft's verification sends a heartbeat to
	// every follower at once, so this costs about one round trip).
	if !n.contact.awaitQuorumSince(ctx, from, func() bool {
		return n.raft.State() != raft.Leader || n.shuttingDown.Load()
	}) {
		if n.raft.State() != raft.Leader {
			return status.ErrNotLeader
		}
		return status.ErrTimeout
	}
	// A fresh leader is not ready until its barrier has applied.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		n.mu.Lock()
		ready := n.ready
		n.mu.Unlock()
		if ready {
			return nil
		}
		if n.raft.State() != raft.Leader {
			return status.ErrNotLeader
		}
		select {
		case <-ctx.Done():
			return status.ErrTimeout
		case <-tick.C:
		}
	}
}

// leaderInfo returns the raft leader's id and address and, when gossip
// knows a member with that id and raft address, its HTTP address.
func (n *Node) leaderInfo() (id, raftAddr, httpAddr string) {
	addr, sid := n.raft.LeaderWithID()
	id, raftAddr = string(sid), string(addr)
	if id == "" {
		return "", "", ""
	}
	if id == n.id {
		return id, raftAddr, n.cfg.HTTPAddr
	}
	if m := n.addrs.Load(); m != nil {
		if a, ok := (*m)[id]; ok && a.raft == raftAddr {
			httpAddr = a.http
		}
	}
	return id, raftAddr, httpAddr
}

// Health reports leadership and staleness.
func (n *Node) Health() status.Health {
	id, raftAddr, httpAddr := n.leaderInfo()
	h := status.Health{
		NodeID:         n.id,
		IsLeader:       n.raft.State() == raft.Leader,
		SteppingDown:   n.steppingDown.Load(),
		KnownLeader:    id != "",
		LeaderID:       id,
		LeaderHTTPAddr: httpAddr,
		LeaderRaftAddr: raftAddr,
		AppliedIndex:   n.adapter.appliedIndex(),
	}
	if h.IsLeader {
		n.mu.Lock()
		h.ActiveTime = n.activeTime
		h.ReadyForConsistentReads = n.ready
		n.mu.Unlock()
		// Until its barrier applies, a new leader may not have applied
		// entries committed in earlier terms (after a full-cluster restart
		// nothing is applied before the first commit of the new term): its
		// state can be arbitrarily old (found by test/chaos, kill-all).
		// A leader whose quorum contact is older than the bound may have
		// been deposed meanwhile (a process pause: found by test/chaos,
		// pause-leader); it serves no local read until a quorum answers
		// again (doc.go, "Leader gate").
		h.Stale = !h.ReadyForConsistentReads || !n.quorumFresh()
		return h
	}
	if last := n.raft.LastContact(); !last.IsZero() {
		h.LastContact = time.Since(last)
	}
	// A follower serves local reads only under a read lease from the leader
	// it currently follows, in the current term (lease.go).
	h.LeaseRemaining = n.leaseRemaining(id, n.raft.CurrentTerm())
	h.Stale = !h.KnownLeader || h.LeaseRemaining <= 0
	if n.removed.Load() {
		// Removed for good (removepeer.go): serve nothing, forward nothing.
		h.Stale, h.KnownLeader, h.LeaderID, h.LeaderHTTPAddr, h.LeaderRaftAddr = true, false, "", "", ""
	}
	return h
}

// RaftServers returns the current raft configuration.
func (n *Node) RaftServers() ([]status.RaftServer, error) {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, n.mapRaftErr(err)
	}
	_, leaderID := n.raft.LeaderWithID()
	var out []status.RaftServer
	for _, s := range f.Configuration().Servers {
		out = append(out, status.RaftServer{
			NodeID:  string(s.ID),
			Address: string(s.Address),
			Leader:  s.ID == leaderID,
			Voter:   s.Suffrage == raft.Voter,
		})
	}
	return out, nil
}

// WaitForLeader waits until a leader is known or ctx ends.
func (n *Node) WaitForLeader(ctx context.Context) error {
	_, err := n.waitLeader(ctx, false)
	return err
}

// waitLeader polls until raft knows a leader (and, with needHTTP, gossip
// has published that leader's HTTP address, or this node leads); it
// returns the leader id.
func (n *Node) waitLeader(ctx context.Context, needHTTP bool) (string, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.shuttingDown.Load() {
			return "", status.ErrShuttingDown
		}
		if id, _, httpAddr := n.leaderInfo(); id != "" && (!needHTTP || httpAddr != "" || id == n.id) {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", status.ErrNoLeader
		case <-n.shutdownCh:
			return "", status.ErrShuttingDown
		case <-tick.C:
		}
	}
}
