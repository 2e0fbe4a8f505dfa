package cluster

import (
	"testing"
	"time"
)

// TestLeaderStaleUntilBarrier: a leader reports Health().Stale until its
// post-election barrier has applied, so the HTTP layer serves nothing from a
// state that may miss entries committed by earlier leaders. Found by
// test/chaos: after a full-cluster kill -9 and restart the new leader had
// applied nothing of the old log yet and answered forwarded lookups with 403
// for tokens acknowledged a minute earlier.
func TestLeaderStaleUntilBarrier(t *testing.T) {
	c := newCluster(t, 1)
	n := c.waitLeader().node.Load()
	waitFor(t, 10*time.Second, "leader ready", func() bool { return n.Health().ReadyForConsistentReads })
	if h := n.Health(); !h.IsLeader || h.Stale {
		t.Fatalf("ready leader: %+v", h)
	}
	// As between taking office and the barrier applying.
	n.mu.Lock()
	n.ready = false
	n.mu.Unlock()
	if h := n.Health(); !h.IsLeader || !h.Stale || h.ReadyForConsistentReads {
		t.Fatalf("leader before its barrier must be stale: %+v", h)
	}
	n.mu.Lock()
	n.ready = true
	n.mu.Unlock()
}

// TestUnreadyLeaderGrantsNoLeases: read-lease grants carry the leader's
// applied index, which before its post-election barrier may miss entries
// committed in earlier terms; so a leader grants nothing until the barrier
// has applied and followers' leases lapse (they forward reads instead).
// Found by test/chaos: after a full-cluster restart followers leased by the
// fresh leader answered 403 for tokens acknowledged 25 s earlier.
func TestUnreadyLeaderGrantsNoLeases(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	n := leader.node.Load()
	waitFor(t, 10*time.Second, "leader ready", func() bool { return n.Health().ReadyForConsistentReads })
	leased := func(want bool) func() bool {
		return func() bool {
			for _, f := range c.followers(leader) {
				if f.node.Load().Health().Stale == want {
					return false
				}
			}
			return true
		}
	}
	waitFor(t, 10*time.Second, "followers leased", leased(true))
	n.mu.Lock()
	n.ready = false
	n.mu.Unlock()
	// Leases run at most -max-stale (1 s) past the last grant.
	waitFor(t, 5*time.Second, "followers' leases lapse while the leader is not ready", leased(false))
	n.mu.Lock()
	n.ready = true
	n.mu.Unlock()
	n.grantor.Load().kickAll()
	waitFor(t, 5*time.Second, "followers leased again", leased(true))
}
