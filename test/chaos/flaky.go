package chaos

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tokend/tokend/cluster/raftconf"
)

// The flaky-links scenario (RELIABILITY.md T7): a baseline, then delay
// 75±50 ms on every link of the leader (etcd's robustness values), then 50%
// packet loss on one directed link (leader → a follower), then a one-way cut
// of that link, then a recovery phase; the workload runs throughout. Pass:
// C1–C5 as every chaos run checks them, the heap of every node at the end at
// most 1.5× its heap after the baseline (and the same for goroutines), and
// proof that every fault acted on real traffic. Elections above 2 per
// fault phase are a warning, not a failure.

// CheckLeak names the leak check of the flaky-links scenario; CheckInjected
// a fault that did not act on any traffic.
const (
	CheckLeak     = "leak"
	CheckInjected = "fault-injected"
)

// Flaky-links fault parameters.
const (
	flakyDelayMean   = 75 * time.Millisecond
	flakyDelayJitter = 50 * time.Millisecond
	flakyLossPct     = 50
	// flakyMaxElections is the elections per fault phase above which the
	// scenario warns.
	flakyMaxElections = 2
	// flakyLeakFactor bounds heap and goroutines after / before.
	flakyLeakFactor = 1.5
)

// FlakyConfig is one flaky-links run.
type FlakyConfig struct {
	Bin      string
	Dir      string
	Nodes    int
	Duration time.Duration
	Seed     int64
	MaxStale time.Duration
	Workload WorkloadConfig
	Logf     func(string, ...any)
}

// FlakyPhase is one phase of the scenario and what it measured.
type FlakyPhase struct {
	Name   string `json:"name"`
	Detail string `json:"detail"`
	// Start and End are monotonic ns of the run (End: the next phase's
	// start, so the recovery after a heal counts to its fault).
	Start, End  int64     `json:"-"`
	StartWall   time.Time `json:"start_wall"`
	EndWall     time.Time `json:"end_wall"`
	Ops         int       `json:"ops"`
	Acked       int       `json:"acked"`
	AckedPerSec float64   `json:"acked_per_sec"`
	// DropPct is the fall of acknowledged operations per second against
	// the baseline, in percent.
	DropPct   float64       `json:"throughput_drop_pct"`
	WriteP50  time.Duration `json:"write_p50"`
	WriteP99  time.Duration `json:"write_p99"`
	ReadP50   time.Duration `json:"read_p50"`
	ReadP99   time.Duration `json:"read_p99"`
	Elections int           `json:"elections"`
	// LinkBytes is what the faulted links' proxies carried in the phase;
	// LossDropped the packets the loss rules dropped; UDPDropped the
	// gossip datagrams the proxies dropped (a cut).
	LinkBytes   uint64 `json:"link_bytes"`
	LossDropped uint64 `json:"loss_dropped"`
	UDPDropped  uint64 `json:"udp_dropped"`
}

// NodeRuntime is one node's heap (after a forced GC), goroutine count and
// state size.
type NodeRuntime struct {
	Heap       uint64 `json:"heap_bytes"`
	Goroutines int    `json:"goroutines"`
	// KeepAlive counts the goroutines of HTTP keep-alive connections (the
	// client side's read and write loops, and server connections waiting
	// for their next request). They belong to pools bounded by
	// MaxIdleConnsPerHost and a 30 s idle timeout: a slow phase fills them
	// (every forward that waits opens one more connection) and they drain
	// by themselves, so they are not a leak.
	KeepAlive int `json:"keepalive_goroutines"`
	// Tokens is the node's tokend_fsm_tokens gauge: the state grows with
	// the workload, by design.
	Tokens int `json:"tokens"`
}

// Leak allowances of the comparison: heap the state and the keep-alive
// pools may legitimately add. 1 KiB per token is RELIABILITY's heap per
// token bound (measured 772 B); a keep-alive connection holds two 4 KiB
// bufio buffers per side plus the connection, about 12 KiB.
const (
	heapPerToken     = 1 << 10
	heapPerKeepAlive = 12 << 10
	// heapPerRaftConn: hashicorp/raft's network transport gives every
	// connection a 256 KiB buffer each way. Faults make it open new ones
	// (up to raftconf.MaxPool pooled plus a pipeline per peer, and the
	// peers' connections to it), which stay pooled: bounded, not a leak.
	heapPerRaftConn = 512 << 10
)

// raftConnAllowance is the heap the raft connections of a node with peers
// peers may hold: pooled and pipeline connections out, the same in.
func raftConnAllowance(peers int) uint64 {
	return uint64(peers) * 2 * uint64(raftconf.MaxPool+1) * heapPerRaftConn
}

// FlakyResult is what a flaky-links run found.
type FlakyResult struct {
	Phases     []FlakyPhase
	Violations []Violation
	Warnings   []string
	Before     []NodeRuntime
	After      []NodeRuntime
	Ops        int
	Elections  int
	Table      string
}

// RunFlaky runs the flaky-links scenario on a fresh cluster.
func RunFlaky(cfg FlakyConfig) (*FlakyResult, error) {
	logf := cfg.Logf
	res := &FlakyResult{}
	c, err := NewCluster(cfg.Bin, cfg.Dir, cfg.Nodes, true, cfg.MaxStale)
	if err != nil {
		return nil, err
	}
	mesh, err := newLinkMesh(c, cfg.Seed)
	if err != nil {
		return nil, err
	}
	defer mesh.Close()
	defer c.StopAll()
	if err := c.Init(60 * time.Second); err != nil {
		return nil, err
	}
	if err := mesh.VerifyCarries(c.WaitLeader(5*time.Second), 15*time.Second); err != nil {
		return nil, fmt.Errorf("FAULT NOT INJECTABLE: slow links: %w", err)
	}
	logf("flaky: every node-to-node link runs through its proxies (%d directed links)", len(mesh.proxies))

	start := time.Now()
	rec, err := NewRecorder(filepath.Join(cfg.Dir, "history.jsonl"), start)
	if err != nil {
		return nil, err
	}
	wcfg := cfg.Workload
	wcfg.Seed = cfg.Seed
	w := NewWorkload(wcfg, c, rec)
	// The workload stops for the heap and goroutine measurements, so
	// requests in flight (a slow phase leaves many) do not count.
	var wg sync.WaitGroup
	cancel := func() {}
	startLoad := func() {
		var ctx context.Context
		ctx, cancel = context.WithCancel(context.Background())
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.Run(ctx)
		}()
	}
	stop := func() {
		cancel()
		wg.Wait()
	}
	startLoad()
	defer stop()

	const warm, gap = 2 * time.Second, 2 * time.Second
	phaseLen := max((cfg.Duration-warm-3*gap)/5, 3*time.Second)
	time.Sleep(warm)
	var phases []FlakyPhase
	end := func() {
		if n := len(phases); n > 0 && phases[n-1].End == 0 {
			phases[n-1].End, phases[n-1].EndWall = rec.Now(), time.Now()
		}
	}
	begin := func(name, detail string) {
		end()
		now := rec.Now()
		phases = append(phases, FlakyPhase{Name: name, Detail: detail, Start: now, StartWall: time.Now()})
		logf("flaky: phase %s %s", name, detail)
	}
	violate := func(checker, detail string) {
		res.Violations = append(res.Violations, Violation{Checker: checker, At: rec.Now(), Detail: detail})
	}
	heal := func(name string) {
		mesh.Heal()
		if err := c.WaitHealthy(20 * time.Second); err != nil {
			violate(CheckHealthy, fmt.Sprintf("after %s: %v", name, err))
		}
		time.Sleep(gap)
	}

	begin("baseline", "no fault")
	time.Sleep(phaseLen)
	end()
	stop()
	res.Before = measureRuntime(c, w)
	dumpGoroutines(c, cfg.Dir, "before")
	startLoad()

	leader := c.WaitLeader(5 * time.Second)
	if leader < 0 {
		return nil, fmt.Errorf("no leader before the delay phase")
	}
	begin("delay", fmt.Sprintf("%s±%s on every link of n%d (leader)", flakyDelayMean, flakyDelayJitter, leader+1))
	var before, after uint64
	for o := range c.Nodes {
		if o != leader {
			before += mesh.Bytes(Link{leader, o}).total() + mesh.Bytes(Link{o, leader}).total()
		}
	}
	mesh.DelayNode(leader, flakyDelayMean, flakyDelayJitter)
	time.Sleep(phaseLen)
	for o := range c.Nodes {
		if o != leader {
			after += mesh.Bytes(Link{leader, o}).total() + mesh.Bytes(Link{o, leader}).total()
		}
	}
	phases[len(phases)-1].LinkBytes = after - before
	if after == before {
		violate(CheckInjected, "delay phase: the delayed links carried no bytes")
	}
	heal("delay")

	leader = c.WaitLeader(5 * time.Second)
	if leader < 0 {
		return nil, fmt.Errorf("no leader before the loss phase")
	}
	link := Link{leader, (leader + 1) % len(c.Nodes)}
	begin("loss", fmt.Sprintf("%d%% packet loss n%d->n%d", flakyLossPct, link.From+1, link.To+1))
	b0 := mesh.Bytes(link)
	if err := mesh.Loss(link, flakyLossPct); err != nil {
		violate(CheckInjected, "loss phase: "+err.Error())
	}
	time.Sleep(phaseLen)
	phases[len(phases)-1].LossDropped = mesh.LossDropped()
	phases[len(phases)-1].LinkBytes = mesh.Bytes(link).sub(b0).total()
	if phases[len(phases)-1].LossDropped == 0 {
		violate(CheckInjected, fmt.Sprintf("loss phase: the loss rules on n%d->n%d dropped no packet", link.From+1, link.To+1))
	}
	heal("loss")

	leader = c.WaitLeader(5 * time.Second)
	if leader < 0 {
		return nil, fmt.Errorf("no leader before the cut phase")
	}
	link = Link{leader, (leader + 1) % len(c.Nodes)}
	begin("one-way-cut", fmt.Sprintf("n%d->n%d blackholed, n%d->n%d up", link.From+1, link.To+1, link.To+1, link.From+1))
	b0 = mesh.Bytes(link)
	mesh.CutOneWay(link)
	time.Sleep(phaseLen)
	d := mesh.Bytes(link).sub(b0)
	phases[len(phases)-1].UDPDropped = d.UDPDropped
	if d.UDPDropped == 0 {
		violate(CheckInjected, fmt.Sprintf("cut phase: no gossip datagram n%d->n%d was dropped", link.From+1, link.To+1))
	}
	heal("one-way-cut")

	begin("recovery", "no fault")
	time.Sleep(phaseLen)
	end()
	stop()
	res.After = measureRuntime(c, w)
	dumpGoroutines(c, cfg.Dir, "after")

	ops := rec.Ops()
	if err := rec.Close(); err != nil {
		return nil, err
	}
	res.Ops = len(ops)
	if by, err := mesh.Bypassed(); err != nil {
		violate(CheckInjected, err.Error())
	} else {
		for k, v := range by {
			if v > 0 {
				violate(CheckInjected, fmt.Sprintf("n%d sent %d packets around the proxies", k+1, v))
			}
		}
	}
	res.Violations = append(res.Violations, finalChecks(c, ops, logf)...)
	c.StopAll()

	res.Violations = append(res.Violations, CheckLinearizable(ops, cfg.Dir, 60*time.Second)...)
	res.Violations = append(res.Violations, CheckServerErrors(ops)...)
	res.Violations = append(res.Violations, CheckRetryAfter(ops)...)
	res.Violations = append(res.Violations, CheckFalseFailures(ops)...)
	vis, _ := CheckVisibility(ops, cfg.MaxStale)
	res.Violations = append(res.Violations, vis...)
	logs := map[string]string{}
	for _, p := range c.Nodes {
		logs[p.ID] = p.LogPath
	}
	terms, err := LeaderTerms(logs)
	if err != nil {
		return nil, err
	}
	res.Violations = append(res.Violations, CheckLeaders(terms)...)
	res.Violations = append(res.Violations, CheckLogs(logs)...)
	for _, cr := range c.Crashes() {
		res.Violations = append(res.Violations, Violation{Checker: CheckCrash, At: -1, Detail: cr})
	}
	elections, err := LeadershipTimes(logs)
	if err != nil {
		return nil, err
	}
	summarisePhases(phases, ops, elections)
	for _, ph := range phases {
		res.Elections += ph.Elections
		if ph.Name != "baseline" && ph.Name != "recovery" && ph.Elections > flakyMaxElections {
			res.Warnings = append(res.Warnings, fmt.Sprintf("WARNING: %d elections in phase %s (at most %d expected)",
				ph.Elections, ph.Name, flakyMaxElections))
		}
	}
	res.Violations = append(res.Violations, checkLeak(c, res.Before, res.After)...)
	for _, v := range res.Violations {
		if v.Checker == CheckLeak {
			res.Warnings = append(res.Warnings, "goroutine dumps after the recovery phase: "+
				filepath.Join(cfg.Dir, "goroutines-after-n*.txt"))
			break
		}
	}
	res.Phases = phases
	res.Table = flakyReport(res, cfg)
	if err := saveJSON(filepath.Join(cfg.Dir, "flaky.json"), map[string]any{"seed": cfg.Seed, "phases": phases,
		"before": res.Before, "after": res.After, "violations": res.Violations, "warnings": res.Warnings}); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "report.txt"), []byte(res.Table), 0o600); err != nil {
		return nil, err
	}
	return res, nil
}

// summarisePhases fills in each phase's operation counts, latencies,
// throughput drop against the first (baseline) phase and elections.
func summarisePhases(phases []FlakyPhase, ops []*Op, elections []time.Time) {
	for i := range phases {
		ph := &phases[i]
		var writes, reads []time.Duration
		for _, op := range ops {
			if op.Invoke < ph.Start || op.Invoke >= ph.End {
				continue
			}
			ph.Ops++
			if op.Outcome != Ok {
				continue
			}
			ph.Acked++
			lat := time.Duration(op.Complete - op.Invoke)
			if op.Kind == OpValidate || op.Kind == OpValidateConsistent {
				reads = append(reads, lat)
			} else {
				writes = append(writes, lat)
			}
		}
		if secs := time.Duration(ph.End - ph.Start).Seconds(); secs > 0 {
			ph.AckedPerSec = float64(ph.Acked) / secs
		}
		ph.WriteP50, ph.WriteP99 = percentile(writes, 50), percentile(writes, 99)
		ph.ReadP50, ph.ReadP99 = percentile(reads, 50), percentile(reads, 99)
		for _, e := range elections {
			if !e.Before(ph.StartWall) && e.Before(ph.EndWall) {
				ph.Elections++
			}
		}
	}
	if len(phases) > 0 && phases[0].AckedPerSec > 0 {
		for i := range phases {
			phases[i].DropPct = 100 * (1 - phases[i].AckedPerSec/phases[0].AckedPerSec)
		}
	}
}

// percentile returns the p-th percentile (nearest rank) of ds, 0 if empty.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

// LeadershipTimes returns the wall time of every "gained leadership" line
// in the node logs, sorted.
func LeadershipTimes(logs map[string]string) ([]time.Time, error) {
	lines, err := ReadLogLines(logs, "gained leadership")
	if err != nil {
		return nil, err
	}
	out := make([]time.Time, 0, len(lines))
	for _, l := range lines {
		out = append(out, l.At)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out, nil
}

// measureRuntime reads every node's heap after a forced GC and its
// goroutine count, with the workload stopped. The workload's idle
// keep-alive connections are closed first, so server goroutines of
// connections a slow phase opened and left idle do not count as a leak.
func measureRuntime(c *Cluster, w *Workload) []NodeRuntime {
	w.client.CloseIdleConnections()
	time.Sleep(500 * time.Millisecond) // let the servers see the closes
	out := make([]NodeRuntime, len(c.Nodes))
	for k := range c.Nodes {
		out[k] = nodeRuntime(c, k)
	}
	return out
}

// nodeRuntime asks node k twice for a heap profile with gc=1 (each runs a
// garbage collection; the second frees what sync.Pool's victim cache kept
// through the first, such as forwarding copy buffers) and then reads go_memstats_heap_alloc_bytes and
// go_goroutines from its metrics. Zero values mean it could not be read.
func nodeRuntime(c *Cluster, k int) NodeRuntime {
	var r NodeRuntime
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		if st, _, err := c.do(ctx, k, http.MethodGet, "/v1/sys/pprof/heap?gc=1", c.RootToken, ""); err != nil || st != http.StatusOK {
			return r
		}
	}
	st, body, err := c.do(ctx, k, http.MethodGet, "/v1/sys/metrics?format=prometheus", c.RootToken, "")
	if err != nil || st != http.StatusOK {
		return r
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		switch f[0] {
		case "go_memstats_heap_alloc_bytes":
			r.Heap = uint64(v)
		case "go_goroutines":
			r.Goroutines = int(v)
		case "tokend_fsm_tokens":
			r.Tokens = int(v)
		}
	}
	if st, body, err := c.do(ctx, k, http.MethodGet, "/v1/sys/pprof/goroutine?debug=1", c.RootToken, ""); err == nil && st == http.StatusOK {
		r.KeepAlive = keepAliveGoroutines(body)
	}
	return r
}

// keepAliveGoroutines counts, in a goroutine profile with debug=1, the
// goroutines of HTTP keep-alive connections: net/http's persistConn read
// and write loops (client side) and server connections blocked reading the
// next request.
func keepAliveGoroutines(profile []byte) int {
	n := 0
	text := string(profile)
	if head, rest, ok := strings.Cut(text, "\n"); ok && strings.HasPrefix(head, "goroutine profile:") {
		text = rest
	}
	for _, block := range strings.Split(text, "\n\n") {
		first, _, _ := strings.Cut(block, "\n")
		count, _, ok := strings.Cut(first, " @ ")
		if !ok {
			continue
		}
		c, err := strconv.Atoi(strings.TrimSpace(count))
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(block, "net/http.(*persistConn).readLoop"),
			strings.Contains(block, "net/http.(*persistConn).writeLoop"),
			strings.Contains(block, "net/http.(*conn).serve") && strings.Contains(block, "bufio.(*Reader).Peek"):
			n += c
		}
	}
	return n
}

// dumpGoroutines saves every node's goroutine profile (debug=1: grouped by
// stack) as goroutines-<when>-n<k>.txt, for the leak check's artifacts.
func dumpGoroutines(c *Cluster, dir, when string) {
	for k := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, body, err := c.do(ctx, k, http.MethodGet, "/v1/sys/pprof/goroutine?debug=1", c.RootToken, "")
		cancel()
		if err == nil && st == http.StatusOK {
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("goroutines-%s-n%d.txt", when, k+1)), body, 0o600)
		}
	}
}

// checkLeak compares every node's heap and goroutines after the scenario
// with after the baseline: goroutines other than keep-alive ones at most
// flakyLeakFactor × before, and the heap at most flakyLeakFactor × before
// plus what the tokens and keep-alive connections gained since may hold.
func checkLeak(c *Cluster, before, after []NodeRuntime) []Violation {
	var out []Violation
	for k := range c.Nodes {
		b, a := before[k], after[k]
		if b.Heap == 0 || a.Heap == 0 || b.Goroutines == 0 || a.Goroutines == 0 {
			out = append(out, Violation{Checker: CheckLeak, At: -1,
				Detail: fmt.Sprintf("n%d: heap or goroutines could not be read from its metrics (before %+v, after %+v)", k+1, b, a)})
			continue
		}
		if lim := heapLimit(b, a, len(c.Nodes)-1); a.Heap > lim {
			out = append(out, Violation{Checker: CheckLeak, At: -1, Detail: fmt.Sprintf(
				"n%d: heap %d B after the faults > %d B (%.1f x %d B after the baseline + %d tokens x %d B + %d keep-alive goroutines x %d B + %d B of raft connection buffers)",
				k+1, a.Heap, lim, flakyLeakFactor, b.Heap, max(a.Tokens-b.Tokens, 0), heapPerToken,
				max(a.KeepAlive-b.KeepAlive, 0), heapPerKeepAlive, raftConnAllowance(len(c.Nodes)-1))})
		}
		if ga, gb := a.Goroutines-a.KeepAlive, b.Goroutines-b.KeepAlive; float64(ga) > flakyLeakFactor*float64(gb) {
			out = append(out, Violation{Checker: CheckLeak, At: -1, Detail: fmt.Sprintf(
				"n%d: %d goroutines (besides %d keep-alive) after the faults > %.1f x %d after the baseline",
				k+1, ga, a.KeepAlive, flakyLeakFactor, gb)})
		}
	}
	return out
}

// heapLimit is the most heap a node with peers peers may hold after the
// scenario.
func heapLimit(b, a NodeRuntime, peers int) uint64 {
	return uint64(flakyLeakFactor*float64(b.Heap)) + uint64(max(a.Tokens-b.Tokens, 0))*heapPerToken +
		uint64(max(a.KeepAlive-b.KeepAlive, 0))*heapPerKeepAlive + raftConnAllowance(peers)
}

// flakyReport renders the per-phase table.
func flakyReport(res *FlakyResult, cfg FlakyConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, "flaky links (T7): %d nodes, seed %d, %d operations, %d elections after the start\n",
		cfg.Nodes, cfg.Seed, res.Ops, res.Elections)
	fmt.Fprintf(&b, "%-12s %6s %6s %8s %7s %9s %9s %9s %9s %4s  %s\n", "phase", "ops", "acked", "acked/s", "drop%",
		"w-p50", "w-p99", "r-p50", "r-p99", "elec", "fault (evidence)")
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	for _, ph := range res.Phases {
		ev := ""
		switch {
		case ph.LossDropped > 0:
			ev = fmt.Sprintf(" (%d packets dropped by nft)", ph.LossDropped)
		case ph.UDPDropped > 0:
			ev = fmt.Sprintf(" (%d gossip datagrams blackholed)", ph.UDPDropped)
		case ph.LinkBytes > 0:
			ev = fmt.Sprintf(" (%d B through the delayed proxies)", ph.LinkBytes)
		}
		fmt.Fprintf(&b, "%-12s %6d %6d %8.1f %6.1f%% %9s %9s %9s %9s %4d  %s%s\n", ph.Name, ph.Ops, ph.Acked,
			ph.AckedPerSec, ph.DropPct, ms(ph.WriteP50), ms(ph.WriteP99), ms(ph.ReadP50), ms(ph.ReadP99),
			ph.Elections, ph.Detail, ev)
	}
	for k := range res.Before {
		bf, af := res.Before[k], res.After[k]
		fmt.Fprintf(&b, "n%d: heap %.1f -> %.1f MiB (limit %.1f), goroutines %d -> %d of which keep-alive %d -> %d, tokens %d -> %d (baseline -> after recovery)\n",
			k+1, float64(bf.Heap)/(1<<20), float64(af.Heap)/(1<<20), float64(heapLimit(bf, af, len(res.Before)-1))/(1<<20),
			bf.Goroutines, af.Goroutines, bf.KeepAlive, af.KeepAlive, bf.Tokens, af.Tokens)
	}
	counts := map[string]int{}
	for _, v := range res.Violations {
		counts[v.Checker]++
	}
	b.WriteString("violations by checker:")
	for _, ck := range []string{CheckLinear, CheckStale, CheckRevokeVis, CheckLost, CheckConverge, CheckLeader,
		CheckCrash, CheckServerErr, CheckRetryable, CheckFalseFail, CheckHealthy, CheckLeak, CheckInjected} {
		fmt.Fprintf(&b, " %s=%d", ck, counts[ck])
	}
	b.WriteString("\n")
	for _, w := range res.Warnings {
		b.WriteString(w + "\n")
	}
	return b.String()
}
