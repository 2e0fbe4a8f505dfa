package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/fsm"
)

// reapBatch is the most tokens one ReapExpired command revokes, so a burst of
// expiries never produces one huge log entry.
const reapBatch = 1000

// leaderMonitor starts the leader-only loops when this node gains leadership
// and stops them (cancelling their ctx and waiting) when it loses it.
func (n *Node) leaderMonitor() {
	defer n.wg.Done()
	var sess *leaderSession
	stop := func() {
		n.grantor.Store(nil)
		if sess != nil {
			sess.cancel()
			sess.wg.Wait()
			sess = nil
		}
		n.mu.Lock()
		n.ready = false
		n.activeTime = time.Time{}
		n.mu.Unlock()
	}
	defer stop()
	for {
		select {
		case <-n.shutdownCh:
			return
		case isLeader := <-n.raft.LeaderCh():
			// Leases granted by earlier leaders are bounded from here.
			since := time.Now()
			// Two trues in a row mean leadership was lost and regained in
			// between: restart the session either way.
			stop()
			if !isLeader {
				n.logger.Info("lost leadership", "node_id", n.id)
				continue
			}
			n.logger.Info("gained leadership", "node_id", n.id, "term", n.raft.CurrentTerm())
			sess = n.startLeaderSession(since)
		}
	}
}

// leaderSession is one term's leader-only loops.
type leaderSession struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (n *Node) startLeaderSession(since time.Time) *leaderSession {
	ctx, cancel := context.WithCancel(context.Background())
	s := &leaderSession{cancel: cancel}
	g := newGrantor(ctx, n, n.raft.CurrentTerm(), since)
	n.grantor.Store(g)
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		n.leaderLoop(ctx)
	}()
	go func() {
		defer s.wg.Done()
		g.leaseLoop()
	}()
	return s
}

// leaderLoop runs for one leadership term: barrier, cluster ident, then the
// reconcile and reaper loops until ctx is cancelled.
func (n *Node) leaderLoop(ctx context.Context) {
	if !n.establishLeadership(ctx) {
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); n.reconcileLoop(ctx) }()
	go func() { defer wg.Done(); n.reaperLoop(ctx) }()
	wg.Wait()
}

// establishLeadership applies a barrier so every entry committed by earlier
// leaders is applied here before consistent reads are served (hashicorp/raft
// has no ReadIndex; this is Consul's recipe), then records the cluster
// identity if the state has none.
func (n *Node) establishLeadership(ctx context.Context) bool {
	for {
		bctx, cancel := context.WithTimeout(ctx, n.timing.ApplyTimeout)
		err := waitFuture(bctx, n.raft.Barrier(n.timing.ApplyTimeout))
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil || errors.Is(err, raft.ErrRaftShutdown) ||
			errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			return false
		}
		n.logger.Warn("leader barrier failed, retrying", "error", err)
	}
	n.mu.Lock()
	n.ready = true
	n.activeTime = time.Now()
	n.mu.Unlock()
	n.logger.Info("leader ready for consistent reads", "node_id", n.id, "index", n.adapter.appliedIndex())
	// Grants wait for the barrier (grantor.send): send the first ones now.
	if g := n.grantor.Load(); g != nil {
		g.kickAll()
	}

	if id, _ := n.fsm.ClusterIdent(); id == "" {
		cmd, err := newClusterIdent()
		if err != nil {
			n.logger.Error("generate cluster identity failed", "error", err)
		} else if _, _, err := n.Propose(ctx, cmd); err != nil {
			// The next leader (or term) retries.
			n.logger.Warn("set cluster identity failed", "error", err)
		}
	}
	return true
}

// newClusterIdent generates a random UUID-shaped cluster id and a 32-byte
// index key.
func newClusterIdent() (fsm.SetClusterIdent, error) {
	b := make([]byte, 16)
	key := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return fsm.SetClusterIdent{}, err
	}
	if _, err := rand.Read(key); err != nil {
		return fsm.SetClusterIdent{}, err
	}
	b[6] = (b[6] & 0x0f) | 0x40 // version 4
	b[8] = (b[8] & 0x3f) | 0x80 // RFC 4122 variant
	h := hex.EncodeToString(b)
	id := fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
	return fsm.SetClusterIdent{ClusterID: id, IndexKey: key}, nil
}

// nudgeReconcile asks the reconcile loop for a pass without blocking.
func (n *Node) nudgeReconcile() {
	select {
	case n.reconcileCh <- struct{}{}:
	default:
	}
}

// reconcileLoop keeps raft membership in line with gossip: on every gossip
// event and every ReconcileInterval.
func (n *Node) reconcileLoop(ctx context.Context) {
	tick := time.NewTicker(n.timing.ReconcileInterval)
	defer tick.Stop()
	// Owned by this goroutine.
	rs := &reconcileState{
		missingSince: make(map[raft.ServerID]time.Time),
		quorumWarned: make(map[raft.ServerID]bool),
		probeFailed:  make(map[raft.ServerID]time.Time),
		raftReached:  make(map[raft.ServerID]bool),
	}
	for {
		// One membership change per pass; repeat while passes change
		// something so a burst of joins converges without waiting a tick.
		for i := 0; i < 16 && ctx.Err() == nil && n.reconcile(ctx, rs); i++ {
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.reconcileCh:
		}
	}
}

// reconcileState is what the reconcile loop remembers between passes.
type reconcileState struct {
	// missingSince records when a raft server was first known absent from
	// gossip without having left gracefully.
	missingSince map[raft.ServerID]time.Time
	// quorumWarned limits the "would lose quorum" warning to once per
	// server and absence.
	quorumWarned map[raft.ServerID]bool
	// probeFailed records when a member last failed the cluster TLS probe
	// (probePeer); it is probed again at most once a second.
	probeFailed map[raft.ServerID]time.Time
	// raftReached limits the "raft still reaches it" message of
	// keptByRaft to once per server and absence.
	raftReached map[raft.ServerID]bool
	// tombstoneWarned limits the "removed, not adding" warning to once per
	// member and instance (removepeer.go).
	tombstoneWarned map[string]bool
}

// reconcile makes one pass: alive members that are not voters are added,
// members that left gracefully are removed, and failed members are removed
// once FailedGrace has passed, only if raft no longer reaches them either
// (keptByRaft) and only if the remaining voters keep quorum.
// The leader never removes itself.
// It reports whether it changed the configuration.
func (n *Node) reconcile(ctx context.Context, rs *reconcileState) bool {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return false
	}
	servers := f.Configuration().Servers
	index := f.Index()
	live := n.liveMembers()

	inRaft := make(map[raft.ServerID]raft.Server, len(servers))
	for _, s := range servers {
		inRaft[s.ID] = s
	}
	timeout := n.timing.ApplyTimeout
	if n.removeTombstoned(ctx, servers, index) {
		return true
	}

	// Add alive members that are missing, or whose raft address changed.
	for id, m := range live {
		if m.status != "alive" || id == n.id || n.skipTombstoned(rs, id, m.meta.InstanceID) {
			continue
		}
		sid := raft.ServerID(id)
		s, ok := inRaft[sid]
		if ok && s.Address == raft.ServerAddress(m.meta.RaftAddr) && s.Suffrage == raft.Voter {
			continue
		}
		if last, failed := rs.probeFailed[sid]; failed && time.Since(last) < time.Second {
			continue
		}
		if err := n.probePeer(ctx, id, m.meta.RaftAddr); err != nil {
			// Gossip admitted it (it holds the gossip key) but it cannot
			// prove it is id with a cluster certificate: never a voter.
			if _, warned := rs.probeFailed[sid]; !warned {
				n.logger.Warn("not adding raft voter: cluster TLS check failed", "peer", id,
					"raft_addr", m.meta.RaftAddr, "error", err)
			}
			rs.probeFailed[sid] = time.Now()
			continue
		}
		delete(rs.probeFailed, sid)
		n.logger.Info("adding raft voter", "peer", id, "raft_addr", m.meta.RaftAddr)
		if err := waitFuture(ctx, n.raft.AddVoter(sid, raft.ServerAddress(m.meta.RaftAddr), index, timeout)); err != nil {
			n.logger.Warn("add raft voter failed", "peer", id, "error", err)
			return false // the configuration changed or we lost leadership: next pass
		}
		return true // one change per pass: the next pass sees the new configuration
	}

	// Remove servers that left or failed.
	voters, aliveVoters := 0, 0
	for _, s := range servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if _, ok := live[string(s.ID)]; ok || string(s.ID) == n.id {
			aliveVoters++
		}
	}
	now := time.Now()
	for _, s := range servers {
		id := string(s.ID)
		if id == n.id {
			continue
		}
		if _, ok := live[id]; ok {
			delete(rs.missingSince, s.ID)
			delete(rs.quorumWarned, s.ID)
			delete(rs.raftReached, s.ID)
			continue
		}
		st, since := n.memberStatus(id)
		left := st == "left"
		if !left {
			first, ok := rs.missingSince[s.ID]
			if !ok {
				// Count the grace from the failure gossip reported, when
				// known, so a leader change does not restart it.
				first = now
				if st == "dead" && !since.IsZero() {
					first = since
				}
				rs.missingSince[s.ID] = first
				n.logger.Warn("raft server missing from gossip", "peer", id)
			}
			if now.Sub(first) < n.timing.FailedGrace || n.keptByRaft(rs, s.ID) {
				continue
			}
			if !keepsQuorum(voters, aliveVoters, s.Suffrage == raft.Voter) {
				if !rs.quorumWarned[s.ID] {
					rs.quorumWarned[s.ID] = true
					n.logger.Warn("not removing failed server: quorum would be lost",
						"peer", id, "voters", voters, "alive", aliveVoters)
				}
				continue
			}
		}
		n.logger.Info("removing raft server", "peer", id, "left", left)
		if err := waitFuture(ctx, n.raft.RemoveServer(s.ID, index, timeout)); err != nil {
			n.logger.Warn("remove raft server failed", "peer", id, "error", err)
			return false
		}
		delete(rs.missingSince, s.ID)
		delete(rs.quorumWarned, s.ID)
		delete(rs.raftReached, s.ID)
		return true
	}
	for id := range rs.missingSince {
		if _, ok := inRaft[id]; !ok {
			delete(rs.missingSince, id)
			delete(rs.quorumWarned, id)
			delete(rs.raftReached, id)
		}
	}
	return false
}

// raftContactWindow is how recently a server must have answered this
// leader's AppendEntries (heartbeats run every HeartbeatTimeout/10) for
// keptByRaft to count it as reachable: a few missed heartbeats on a loaded
// machine do not make a healthy voter removable.
func (n *Node) raftContactWindow() time.Duration { return 4 * n.timing.HeartbeatTimeout }

// keptByRaft reports whether a server that gossip calls failed (not left)
// must stay because raft still reaches it: its last answer to this
// leader's AppendEntries is within raftContactWindow. Gossip alone is not
// enough to remove a voter: with one-way loss of gossip's UDP packets a
// healthy voter is declared dead while raft's TCP traffic flows (found by
// test/chaos, one-way faults). Like Consul's autopilot, the leader's own
// last contact decides; a server is removed only when both gossip and
// raft have lost it. Logged once per absence.
func (n *Node) keptByRaft(rs *reconcileState, id raft.ServerID) bool {
	last := n.contact.lastContact(id)
	if last.IsZero() || time.Since(last) > n.raftContactWindow() {
		if rs.raftReached[id] {
			delete(rs.raftReached, id)
			n.logger.Warn("raft lost contact with server gossip reports failed", "peer", string(id))
		}
		return false
	}
	if !rs.raftReached[id] {
		rs.raftReached[id] = true
		n.logger.Warn("not removing server gossip reports failed: raft still reaches it",
			"peer", string(id), "last_contact", time.Since(last))
	}
	return true
}

// keepsQuorum reports whether removing one failed server (a voter or not)
// from a configuration with voters voters, of which aliveVoters are alive
// in gossip, leaves enough alive voters for a quorum of the new
// configuration.
func keepsQuorum(voters, aliveVoters int, isVoter bool) bool {
	remaining := voters
	if isVoter {
		remaining--
	}
	return remaining > 0 && aliveVoters >= remaining/2+1
}

// reaperLoop revokes expired tokens through raft, in batches, every
// ReapInterval.
func (n *Node) reaperLoop(ctx context.Context) {
	tick := time.NewTicker(n.timing.ReapInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n.reapExpired(ctx)
	}
}

func (n *Node) reapExpired(ctx context.Context) {
	for ctx.Err() == nil {
		now := n.now().UnixNano()
		next := n.fsm.NextExpiry()
		if next == 0 || next > now {
			return
		}
		res, _, err := n.Propose(ctx, fsm.ReapExpired{Now: now, Limit: reapBatch})
		if err != nil {
			n.logger.Warn("reap expired tokens failed", "error", err)
			return
		}
		if res.Err != nil {
			n.logger.Error("reap expired tokens rejected", "error", res.Err)
			return
		}
		if res.Revoked == 0 {
			// Nothing reapable although NextExpiry says otherwise: stop
			// rather than spin; the next tick retries.
			return
		}
		n.logger.Debug("reaped expired tokens", "count", res.Revoked)
	}
}
