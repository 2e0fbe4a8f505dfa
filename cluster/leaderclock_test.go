package cluster

import (
	"testing"
	"time"
)

// TestLeaderClockOffset: a follower whose wall clock runs 30 s behind
// measures the leader's clock from its lease grants; the leader reports
// no offset. (RELIABILITY.md T8: httpapi judges expiry by this clock.)
func TestLeaderClockOffset(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	if _, ok := leader.node.Load().LeaderClockOffset(); ok {
		t.Fatal("the leader reports an offset to itself")
	}
	tn := c.followers(leader)[0]
	c.stop(tn)
	cfg := c.config(tn)
	const skew = 30 * time.Second
	cfg.Clock = func() time.Time { return time.Now().Add(-skew) }
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.SetForwardHandler(testHandler(tn))
	tn.node.Store(n)
	var off time.Duration
	waitFor(t, 15*time.Second, "an offset measured from lease grants", func() bool {
		var ok bool
		off, ok = n.LeaderClockOffset()
		return ok
	})
	// The estimate is never ahead of the leader's clock and behind it by
	// one grant's delay at most (generous: a loaded machine).
	if off > skew || off < skew-500*time.Millisecond {
		t.Fatalf("offset %s, want within 500 ms below %s", off, skew)
	}
	// An unskewed follower measures about zero.
	for _, o := range c.followers(c.waitLeader()) {
		if o == tn {
			continue
		}
		var d time.Duration
		waitFor(t, 10*time.Second, "the unskewed follower's offset", func() bool {
			var ok bool
			d, ok = o.node.Load().LeaderClockOffset()
			return ok
		})
		if d > time.Millisecond || d < -500*time.Millisecond {
			t.Fatalf("unskewed follower offset %s", d)
		}
	}
}
