package cluster

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

func removePeerCmd(id, instance string) fsm.RemovePeer {
	return fsm.RemovePeer{ServerID: id, InstanceID: instance}
}

// hasVoter reports whether the leader's configuration holds id (the
// removed node does not know the leader, so waitLeader does not apply).
func (c *tcluster) hasVoter(id string) bool {
	c.t.Helper()
	var l *Node
	waitFor(c.t, 10*time.Second, "a leader", func() bool {
		for _, tn := range c.running() {
			if n := tn.node.Load(); n != nil && n.Health().IsLeader {
				l = n
				return true
			}
		}
		return false
	})
	servers, err := l.RaftServers()
	if err != nil {
		return false
	}
	for _, s := range servers {
		if s.NodeID == id {
			return true
		}
	}
	return false
}

// TestRemovePeer_tombstoneKeepsAliveNodeOut: a removed node that is still
// alive in gossip, and one restarted on its data dir, is never re-added by
// reconcile and serves nothing; wiped, it joins again as a new instance.
func TestRemovePeer_tombstoneKeepsAliveNodeOut(t *testing.T) {
	c := newCluster(t, 3)
	tn := c.add()
	c.waitVoters(4)
	removed := tn.node.Load()
	oldInstance := removed.InstanceID()
	leader := c.waitLeader().node.Load()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := leader.RemovePeer(ctx, "nope"); !isErr(err, status.ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}
	if err := leader.RemovePeer(ctx, tn.id); err != nil {
		t.Fatalf("remove: %v", err)
	}
	// Idempotent: a retry of an indeterminate call succeeds.
	if err := leader.RemovePeer(ctx, tn.id); err != nil {
		t.Fatalf("repeated remove: %v", err)
	}
	waitFor(t, 5*time.Second, "the removed node notices", removed.Removed)
	if h := removed.Health(); !h.Stale || h.KnownLeader {
		t.Fatalf("removed node's health: %+v", h)
	}
	// Several reconcile passes (ReconcileInterval is 100 ms in tests) with
	// the node alive in gossip: it stays out.
	for i := 0; i < 10; i++ {
		leader.nudgeReconcile()
		time.Sleep(100 * time.Millisecond)
		if c.hasVoter(tn.id) {
			t.Fatal("reconcile re-added the removed, still alive node")
		}
	}
	// Restarted on its data dir: same instance, still out.
	c.stop(tn)
	c.start(tn)
	if got := tn.node.Load().InstanceID(); got != oldInstance {
		t.Fatalf("instance id changed across a restart: %s -> %s", oldInstance, got)
	}
	time.Sleep(time.Second)
	if c.hasVoter(tn.id) {
		t.Fatal("reconcile re-added the removed node after a restart on its data dir")
	}
	// Wiped: a new instance, re-admitted after the cluster check.
	c.stop(tn)
	if err := os.RemoveAll(tn.dir); err != nil {
		t.Fatal(err)
	}
	tn.raftAddr = "127.0.0.1:0"
	c.start(tn)
	if tn.node.Load().InstanceID() == oldInstance {
		t.Fatal("a wiped data dir kept its instance id")
	}
	c.waitVoters(4)
	waitFor(t, 10*time.Second, "the re-joined node serves", func() bool {
		h := tn.node.Load().Health()
		return !h.Stale && !tn.node.Load().Removed()
	})
}

// TestRemovePeer_finishedByNextLeader: a tombstone that committed without
// its configuration change (the leader died in between) is completed by
// reconcile on the next leader.
func TestRemovePeer_finishedByNextLeader(t *testing.T) {
	c := newCluster(t, 3)
	tn := c.add()
	c.waitVoters(4)
	victim := tn.node.Load()
	leader := c.waitLeader().node.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Only the tombstone, as if the leader crashed before RemoveServer.
	if _, _, err := leader.Propose(ctx, removePeerCmd(tn.id, victim.InstanceID())); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "reconcile removes the tombstoned server", func() bool {
		return !c.hasVoter(tn.id)
	})
	waitFor(t, 5*time.Second, "the removed node notices", victim.Removed)
}
