package cluster

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Leader clock (RELIABILITY.md T8). Expiry is an absolute time the leader
// stamps into the state; a follower that checked it against its own wall
// clock would accept tokens up to its lag behind the leader past their
// expiry (until the reaper deletes them), and reject them early by as much
// as it runs ahead. So every lease grant also carries the leader's wall
// clock (header leaderTimeHeader, HMAC-signed under the index key like the
// grant), and a follower that holds a lease from that leader reads the
// leader's time as its own wall clock plus the offset it measured.
//
// One sample, offset_i = leaderWall_i - localWall_at_receipt_i, equals the
// true offset minus the grant's one-way delay (>= 0). The estimate is the
// largest of the last offsetSamples samples of the current leader and
// term: never ahead of the leader's clock, behind it by the smallest
// recent delay (microseconds on loopback). A follower therefore accepts a
// token at most that delay past the leader-stamped expiry, whatever its
// own clock says, and never rejects one early. Without a sample (an older
// leader that sends no header, a new term before its first grant, this
// node leading) the local clock is used.
//
// The header is separate from the grant's JSON body, so a follower of an
// older version (which decodes the body strictly) still accepts grants.

// leaderTimeHeader carries "<unix ns> <hex mac>" on a lease grant.
const leaderTimeHeader = "X-Tokend-Leader-Time"

// offsetSamples is how many recent grants the offset estimate spans (a
// grant goes out every max-stale/4: 16 cover about 4 s at the default).
const offsetSamples = 16

// leaderClock is a follower's estimate of the leader's wall clock.
type leaderClock struct {
	mu      sync.Mutex
	leader  string
	term    uint64
	samples [offsetSamples]int64
	n, next int
	// est is the published estimate, read without mu (nil: none yet).
	est atomic.Pointer[clockEstimate]
}

// clockEstimate is one published offset and the leader term it belongs to.
type clockEstimate struct {
	leader string
	term   uint64
	offset time.Duration
}

func leaderTimeMAC(key []byte, g *leaseGrant, wall string) string {
	return signFields(key, "tokend-leader-time-v1", g.LeaderID, g.To,
		strconv.FormatUint(g.Term, 10), strconv.FormatUint(g.Seq, 10), wall)
}

// setLeaderTime stamps the leader's wall clock on an outgoing grant.
func (n *Node) setLeaderTime(req *http.Request, g *leaseGrant, key []byte) {
	wall := strconv.FormatInt(n.now().UnixNano(), 10)
	req.Header.Set(leaderTimeHeader, wall+" "+leaderTimeMAC(key, g, wall))
}

// recordLeaderTime takes a sample from a verified grant that gave this
// follower a lease.
func (n *Node) recordLeaderTime(r *http.Request, g *leaseGrant, key []byte) {
	wall, mac, ok := strings.Cut(r.Header.Get(leaderTimeHeader), " ")
	if !ok || !macEqual(mac, leaderTimeMAC(key, g, wall)) {
		return
	}
	lw, err := strconv.ParseInt(wall, 10, 64)
	if err != nil {
		return
	}
	sample := lw - n.now().UnixNano()
	lc := &n.leaderClock
	lc.mu.Lock()
	defer lc.mu.Unlock()
	if lc.leader != g.LeaderID || lc.term != g.Term {
		lc.leader, lc.term, lc.n, lc.next = g.LeaderID, g.Term, 0, 0
	}
	lc.samples[lc.next] = sample
	lc.next = (lc.next + 1) % offsetSamples
	lc.n = min(lc.n+1, offsetSamples)
	best := lc.samples[0]
	for _, s := range lc.samples[1:lc.n] {
		best = max(best, s)
	}
	lc.est.Store(&clockEstimate{leader: g.LeaderID, term: g.Term, offset: time.Duration(best)})
}

// LeaderClockOffset returns how far the leader's wall clock is ahead of
// this node's (negative: behind), as measured from lease grants of the
// leader this node currently follows; ok is false on the leader itself and
// while there is no estimate for the current leader and term. httpapi adds
// it to its clock, so expiry is decided by the leader's time on every node.
func (n *Node) LeaderClockOffset() (time.Duration, bool) {
	est := n.leaderClock.est.Load()
	if est == nil || n.raft.State() == raft.Leader {
		return 0, false
	}
	if _, leader := n.raft.LeaderWithID(); string(leader) != est.leader || n.raft.CurrentTerm() != est.term {
		return 0, false
	}
	return est.offset, true
}
