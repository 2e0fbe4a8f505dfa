package test

import (
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/test/inproc"
)

// TestLaggingFollowerInstallsSnapshot: a follower that was down while the
// leader wrote more than TrailingLogs + SnapshotThreshold entries catches up
// through InstallSnapshot, and says so — tokend_snapshot_installs_total and
// the "installed a snapshot from the leader" log line, which a restore of
// the node's own snapshot at start does not produce — and ends with the
// leader's digest at the leader's index (RELIABILITY T5's proof, at the
// lowest level).
func TestLaggingFollowerInstallsSnapshot(t *testing.T) {
	timing := cluster.FastTiming()
	timing.SnapshotThreshold, timing.TrailingLogs, timing.SnapshotInterval = 32, 16, 200*time.Millisecond
	c := inproc.NewWith(t, 3, inproc.Options{Timing: timing})
	f := c.Followers()[0]
	missing := c.Cluster(f).AppliedIndex() + 1 // the first entry the follower will miss
	c.Stop(f)
	creates := 0
	for i := 0; creates < 150 && i < 600; i++ {
		leader := c.WaitForLeader()
		_, err := c.Client(leader).Auth().Token().Create(&vaultapi.TokenCreateRequest{TTL: "1h"})
		if retryable(err) {
			time.Sleep(50 * time.Millisecond) // client retry interval
			continue
		}
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		creates++
	}
	if creates < 150 {
		t.Fatalf("only %d creates succeeded", creates)
	}
	leader := c.WaitForLeader()
	index := c.Cluster(leader).AppliedIndex()
	// The leader must have compacted the entries the follower misses: raft
	// keeps TrailingLogs entries before its last snapshot. (The last
	// snapshot itself may lag the last index by up to SnapshotThreshold,
	// and with no more writes no later one comes.)
	c.WaitFor(20*time.Second, "a leader snapshot past the follower's log", func() bool {
		return scrapeNode(t, c, leader).gauge(t, "tokend_raft_last_snapshot_index") >= float64(missing+timing.TrailingLogs)
	})
	c.Restart(f)
	c.WaitForIndex(index)
	c.WaitFor(10*time.Second, "the follower at the leader's digest", func() bool {
		l, fo := c.Cluster(leader), c.Cluster(f)
		return l != nil && fo != nil && l.State().Digest() == fo.State().Digest()
	})
	if n, _ := scrapeNode(t, c, f).sum("tokend_snapshot_installs_total", map[string]string{"result": "ok"}); n < 1 {
		t.Errorf("follower counted %v snapshot installs, want at least 1", n)
	}
	if n, _ := scrapeNode(t, c, leader).sum("tokend_snapshot_installs_total", nil); n != 0 {
		t.Errorf("leader counted %v snapshot installs, want 0", n)
	}
	if !strings.Contains(c.LogOutput(), "installed a snapshot from the leader") {
		t.Error(`no "installed a snapshot from the leader" log line`)
	}
}
