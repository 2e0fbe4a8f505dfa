package httpapi

import "time"

// LeaderClock is the optional part of Node that lets a follower read the
// leader's wall clock (cluster.Node implements it from its lease grants).
// Token expiry is an absolute time stamped by the leader; judging it by
// the leader's clock on every node keeps a follower with a skewed clock
// from accepting tokens past their expiry (clock behind) or rejecting them
// early (clock ahead). ok is false on the leader and while there is no
// estimate; the local clock is used then.
type LeaderClock interface {
	LeaderClockOffset() (offset time.Duration, ok bool)
}

// leaderTime wraps now so that it reads the leader's clock when node
// offers an estimate.
func leaderTime(node Node, now func() time.Time) func() time.Time {
	lc, ok := node.(LeaderClock)
	if !ok {
		return now
	}
	return func() time.Time {
		t := now()
		if off, ok := lc.LeaderClockOffset(); ok {
			t = t.Add(off)
		}
		return t
	}
}
