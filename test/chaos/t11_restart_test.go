//go:build chaos

package chaos

import (
	"syscall"
	"testing"
	"time"
)

// TestChaosT11FollowerRestart is RELIABILITY.md T11 (the raft PR #494
// anchor): a follower is killed with -9, stays down for 30 s (10 s in make
// chaos-short) while the leader's heartbeats to it fail and back off, and
// is restarted on its data dir. Pass: the restart causes no election — no
// "gained leadership" line and no term change on any node from the kill
// until 5 s after the node served again (pre-vote and the bounded
// backoff), except an election the logs show was not the restarted node's
// doing (electionCause: the leader lost contact with the live follower),
// which is logged loudly — plus C1-C5. Figures: rejoin time (restart → the node answers
// sys/health as a standby with a read lease) and catch-up time (restart →
// it applied the leader's index at the restart).
func TestChaosT11FollowerRestart(t *testing.T) {
	down := 10 * time.Second
	if scFull() {
		down = 30 * time.Second
	}
	s := startScRun(t, "t11-follower-restart", *flagRate, false, nil)
	if s == nil {
		return
	}
	time.Sleep(2 * time.Second) // let the workload build some tokens
	c := s.c
	leader := c.WaitLeader(10 * time.Second)
	if leader < 0 {
		t.Fatal("no leader")
	}
	f := s.follower(leader, 0)
	terms := make([]float64, 3)
	for k := range 3 {
		terms[k] = s.mustMetric(k, "tokend_raft_term", "")
	}
	killWall := time.Now()
	if err := c.Signal(f, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(down)
	target := s.mustMetric(leader, "tokend_raft_applied_index", "")
	startWall := time.Now()
	if err := c.Start(f); err != nil {
		t.Fatal(err)
	}
	var rejoin, catchUp time.Duration
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline) && (rejoin == 0 || catchUp == 0); {
		if rejoin == 0 && c.Healthy(f) {
			rejoin = time.Since(startWall)
		}
		if catchUp == 0 {
			if v, err := c.metric(f, "tokend_raft_applied_index", ""); err == nil && v >= target {
				catchUp = time.Since(startWall)
			}
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	if rejoin == 0 || catchUp == 0 {
		t.Errorf("%s did not rejoin within 60 s of its restart (healthy after %s, caught up after %s)", c.Nodes[f].ID, rejoin, catchUp)
	}
	time.Sleep(5 * time.Second) // an election the restart caused would come within this
	endWall := time.Now()
	termsAfter := make([]float64, 3)
	for k := range 3 {
		termsAfter[k] = s.mustMetric(k, "tokend_raft_term", "")
	}
	s.finish()

	// Every election is a failure unless the logs show the leader before
	// it stepped down for losing contact with the other, live follower
	// (electionCause): that is no doing of the restarted node, and is
	// logged loudly as a figure of its own.
	elections := linesBetween(s.gainedLeadership(), killWall, endWall)
	leadership := s.leadershipLines()
	others := 0
	for _, l := range elections {
		byOthers, why := electionCause(leadership, l, c.Nodes[f].ID)
		if byOthers {
			others++
			t.Logf("!!! T11: %s gained leadership in term %s %s after %s was killed, not through it: %s",
				l.Node, l.Field("term"), l.At.Sub(killWall).Round(time.Millisecond), c.Nodes[f].ID, why)
			continue
		}
		t.Errorf("T11: %s gained leadership in term %s at %s, %s after %s was killed (%s)",
			l.Node, l.Field("term"), l.At.Format(time.RFC3339Nano), l.At.Sub(killWall).Round(time.Millisecond), c.Nodes[f].ID, why)
	}
	if others == 0 {
		for k := range 3 {
			if termsAfter[k] != terms[0] {
				t.Errorf("T11: %s is in term %v after the restart, the cluster was in term %v before (terms before %v)",
					c.Nodes[k].ID, termsAfter[k], terms[0], terms)
			}
		}
	}
	t.Logf("T11 figures: %s down %s; elections %d (%d of them after the leader lost contact with the live follower); rejoin (restart → healthy standby) %s; catch-up (restart → leader's index) %s; terms before %v after %v",
		c.Nodes[f].ID, down, len(elections), others, rejoin.Round(time.Millisecond), catchUp.Round(time.Millisecond), terms, termsAfter)
}
