package cluster

import (
	"slices"
	"time"
)

// reconnectLoop re-joins members that gossip declared dead (failed, not
// left), one per round, every two probe intervals, as Serf's reconnect
// does. memberlist never probes a dead member again and runs push/pull only
// with alive ones, so when two sides declared each other dead (a one-way
// cut loses one side's packets, then the other's refutation) their views
// stay split after the network heals until some unrelated broadcast
// reaches across — about a minute in test/chaos (one-way-leader-in,
// partition-leader), long after the leader had removed from raft (after
// FailedGrace) a voter that raft still reached. A Join is a push/pull with
// that address: both sides see each other alive again within seconds. A
// member that really crashed refuses the connection at once; one behind a
// partition costs one TCP timeout per round.
func (n *Node) reconnectLoop() {
	defer n.wg.Done()
	tick := time.NewTicker(2 * n.timing.GossipProbeInterval)
	defer tick.Stop()
	var round int
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-tick.C:
		}
		addrs := n.deadMemberAddrs()
		if len(addrs) == 0 {
			continue
		}
		addr := addrs[round%len(addrs)]
		round++
		if joined, err := n.ml.Join([]string{addr}); err != nil {
			n.logger.Debug("reconnect to failed member did not answer", "addr", addr, "error", err)
		} else if joined > 0 {
			n.logger.Info("reconnected to a member gossip had declared failed", "addr", addr)
		}
	}
}

// deadMemberAddrs returns the gossip addresses of members whose last known
// status is dead (failed), sorted by name so rounds are deterministic.
func (n *Node) deadMemberAddrs() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var names []string
	for name, rec := range n.members {
		if name != n.id && rec.status == "dead" && rec.addr != "" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := make([]string, len(names))
	for i, name := range names {
		out[i] = n.members[name].addr
	}
	return out
}
