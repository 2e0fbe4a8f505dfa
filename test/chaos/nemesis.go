package chaos

import (
	"fmt"
	"math/rand"
	"sort"
	"syscall"
	"time"
)

// Nemesis names.
const (
	NemKillLeader     = "kill-leader"
	NemKillRandom     = "kill-random"
	NemKillMajority   = "kill-majority"
	NemKillAll        = "kill-all"
	NemPauseLeader    = "pause-leader"
	NemIsolateLeader  = "partition-leader"
	NemSplit          = "partition-split"
	NemBridge         = "partition-bridge"
	NemOneWayOut      = "one-way-leader-out"
	NemOneWayIn       = "one-way-leader-in"
	NemRestart        = "restart-sigterm"
	NemRollingRestart = "rolling-restart"
	NemWipe           = "wipe-rejoin"
	// nemFinalKillAll is the full-cluster kill -9 and restart after the
	// workload, before the final ledger check.
	nemFinalKillAll = "final-kill-all"
)

// AllNemeses lists every nemesis in a fixed order.
var AllNemeses = []string{
	NemKillLeader, NemKillRandom, NemKillMajority, NemKillAll, NemPauseLeader,
	NemIsolateLeader, NemSplit, NemBridge, NemOneWayOut, NemOneWayIn,
	NemRestart, NemRollingRestart, NemWipe,
}

// needsPartitions reports whether a nemesis needs nftables.
func needsPartitions(name string) bool {
	switch name {
	case NemIsolateLeader, NemSplit, NemBridge, NemOneWayOut, NemOneWayIn:
		return true
	}
	return false
}

// Event is one executed fault, as saved in schedule.json.
type Event struct {
	Seq     int    `json:"seq"`
	Nemesis string `json:"nemesis"`
	Nodes   int    `json:"nodes"`
	// Start, Healed and End are monotonic ns since the run started: the
	// fault was injected, removed, and the cluster was healthy again.
	Start  int64 `json:"start_ns"`
	Healed int64 `json:"healed_ns"`
	End    int64 `json:"end_ns"`
	// StartWall is Start on the wall clock.
	StartWall time.Time `json:"start_wall"`
	// Targets are the nodes the fault acted on (0-based); Majority are
	// those on the side that keeps (or regains) a quorum while it lasts.
	Targets  []int  `json:"targets"`
	Majority []int  `json:"majority"`
	Leader   int    `json:"leader_before"`
	Hold     string `json:"hold"`
	Detail   string `json:"detail,omitempty"`
	Error    string `json:"error,omitempty"`
	// ForwardErrors is how many forwarded requests the nodes that kept
	// running failed to forward during the event (their metrics' growth).
	ForwardErrors int `json:"forward_errors"`
	// LeaderStop is when a planned restart sent SIGTERM to the leader (zero
	// if it did not), for the leader handover time.
	LeaderStop time.Time `json:"leader_stop,omitempty"`
}

// nemesisEnv is what a nemesis acts on.
type nemesisEnv struct {
	c   *Cluster
	net Network
	rec *Recorder
	rnd *rand.Rand
}

func (e *nemesisEnv) others(xs ...int) []int {
	skip := map[int]bool{}
	for _, x := range xs {
		skip[x] = true
	}
	var out []int
	for k := range e.c.Nodes {
		if !skip[k] {
			out = append(out, k)
		}
	}
	return out
}

func (e *nemesisEnv) leader() int {
	if l := e.c.WaitLeader(5 * time.Second); l >= 0 {
		return l
	}
	return e.rnd.Intn(len(e.c.Nodes))
}

// Run injects one fault, holds it for hold and removes it. It returns the
// event with Start and Healed set; the caller waits for health.
func (e *nemesisEnv) Run(name string, hold time.Duration) Event {
	n := len(e.c.Nodes)
	ev := Event{Nemesis: name, Nodes: n, Hold: hold.String(), Leader: e.c.Leader()}
	mark := func() { ev.Start, ev.StartWall = e.rec.Now(), time.Now() }
	healed := func() { ev.Healed = e.rec.Now() }
	fail := func(err error) {
		if err != nil && ev.Error == "" {
			ev.Error = err.Error()
		}
	}
	kill := func(ks []int) {
		done := make(chan error, len(ks))
		for _, k := range ks {
			go func(k int) { done <- e.c.Signal(k, syscall.SIGKILL) }(k)
		}
		for range ks {
			fail(<-done)
		}
	}
	start := func(ks []int) {
		for _, k := range ks {
			fail(e.c.Start(k))
		}
	}
	cut := func(links []Link) {
		// The fault is in force once nft returns.
		fail(e.net.Cut(links))
		mark()
		time.Sleep(hold)
		fail(e.net.Heal())
		healed()
	}
	switch name {
	case NemKillLeader, NemKillRandom:
		k := e.rnd.Intn(n)
		if name == NemKillLeader {
			k = e.leader()
		}
		ev.Targets, ev.Majority = []int{k}, e.others(k)
		mark()
		kill(ev.Targets)
		time.Sleep(hold)
		start(ev.Targets)
		healed()
	case NemKillMajority:
		perm := e.rnd.Perm(n)
		ev.Targets = append([]int(nil), perm[:n/2+1]...)
		sort.Ints(ev.Targets)
		mark()
		kill(ev.Targets)
		time.Sleep(hold)
		start(ev.Targets)
		healed()
	case NemKillAll, nemFinalKillAll:
		ev.Targets = e.others()
		mark()
		kill(ev.Targets)
		time.Sleep(hold)
		start(ev.Targets)
		healed()
	case NemPauseLeader:
		k := e.leader()
		ev.Targets, ev.Majority = []int{k}, e.others(k)
		mark()
		fail(e.c.Signal(k, syscall.SIGSTOP))
		time.Sleep(hold)
		fail(e.c.Signal(k, syscall.SIGCONT))
		healed()
	case NemIsolateLeader:
		k := e.leader()
		ev.Targets, ev.Majority = []int{k}, e.others(k)
		cut(Between(ev.Targets, ev.Majority))
	case NemSplit:
		perm := e.rnd.Perm(n)
		minority := append([]int(nil), perm[:(n-1)/2]...)
		sort.Ints(minority)
		ev.Targets, ev.Majority = minority, e.others(minority...)
		ev.Detail = fmt.Sprintf("minority %v | majority %v", nodeNames(minority), nodeNames(ev.Majority))
		cut(Between(minority, ev.Majority))
	case NemBridge:
		// Two sides that cannot talk, and one node (the bridge) that talks
		// to both: 3 nodes a | c with b; 5 nodes a,b | c,d with e.
		perm := e.rnd.Perm(n)
		side := (n - 1) / 2
		a, b, bridge := perm[:side], perm[side:2*side], perm[2*side:]
		ev.Targets = append(append([]int(nil), a...), b...)
		ev.Majority = append(append([]int(nil), a...), bridge...)
		ev.Detail = fmt.Sprintf("%v | %v, bridge %v", nodeNames(a), nodeNames(b), nodeNames(bridge))
		cut(Between(a, b))
	case NemOneWayOut, NemOneWayIn:
		k := e.leader()
		ev.Targets, ev.Majority = []int{k}, e.others(k)
		var links []Link
		for _, o := range ev.Majority {
			if name == NemOneWayOut {
				links = append(links, Link{k, o})
			} else {
				links = append(links, Link{o, k})
			}
		}
		cut(links)
	case NemRestart:
		k := e.rnd.Intn(n)
		ev.Targets, ev.Majority = []int{k}, e.others(k)
		mark()
		if k == e.c.Leader() {
			ev.LeaderStop = time.Now()
		}
		fail(e.c.Signal(k, syscall.SIGTERM))
		start(ev.Targets)
		healed()
	case NemRollingRestart:
		ev.Targets, ev.Majority = e.others(), e.others()
		mark()
		for k := range e.c.Nodes {
			if ev.LeaderStop.IsZero() && k == e.c.Leader() {
				ev.LeaderStop = time.Now()
			}
			fail(e.c.Signal(k, syscall.SIGTERM))
			start([]int{k})
			deadline := time.Now().Add(20 * time.Second)
			for !e.c.Healthy(k) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond) // polling interval
			}
		}
		healed()
	case NemWipe:
		l := e.leader()
		k := (l + 1 + e.rnd.Intn(n-1)) % n // a follower
		ev.Targets, ev.Majority = []int{k}, e.others(k)
		mark()
		kill(ev.Targets)
		fail(e.c.Wipe(k))
		time.Sleep(hold)
		start(ev.Targets)
		healed()
	default:
		mark()
		healed()
		ev.Error = "unknown nemesis " + name
	}
	if len(ev.Majority) == 0 && name != NemKillMajority && name != NemKillAll && name != nemFinalKillAll {
		ev.Majority = e.others()
	}
	return ev
}

func nodeNames(ks []int) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = fmt.Sprintf("n%d", k+1)
	}
	return out
}
