package cluster

import (
	"strings"
	"testing"
	"time"
)

// TestGossipFailedVoterKeptWhileRaftReachesIt: a voter that gossip
// declares failed while raft still replicates to it (one-way loss of
// gossip's UDP packets; here its memberlist is shut down without a leave)
// stays a voter past FailedGrace; once raft loses it too it is removed.
func TestGossipFailedVoterKeptWhileRaftReachesIt(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	ln := leader.node.Load()
	f := c.followers(leader)[0]
	if err := f.node.Load().ml.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "gossip declares the follower failed", func() bool {
		st, _ := ln.memberStatus(f.id)
		return st == "dead"
	})
	failed := time.Now()

	// Well past the grace period (counted from the failure gossip
	// reported, so at most this long after it) the voter is still there,
	// and writes still reach all three.
	deadline := failed.Add(FastTiming().FailedGrace + 2*time.Second)
	for time.Now().Before(deadline) {
		if l := c.waitLeader(); l != leader {
			t.Fatalf("leadership moved to %s: the check needs one leader's view", l.id)
		}
		if v := c.voters(); v != 3 {
			t.Fatalf("voter removed %s after gossip declared it failed although raft reached it: %d voters",
				time.Since(failed), v)
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, idx := c.proposeAny(newTokenCmd(t))
	waitFor(t, 5*time.Second, "the gossip-failed follower applies a new write", func() bool {
		return f.node.Load().adapter.appliedIndex() >= idx
	})

	// Now raft loses it as well: it goes.
	c.crash(f)
	c.waitVoters(2)
	out := c.sink.output()
	if n := strings.Count(out, "not removing server gossip reports failed: raft still reaches it"); n != 1 {
		t.Errorf("keep message logged %d times, want once", n)
	}
}
