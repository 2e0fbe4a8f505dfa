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
