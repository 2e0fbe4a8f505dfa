package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Config is one chaos run on one cluster size.
type Config struct {
	Bin      string
	Nodes    int
	Duration time.Duration
	Seed     int64
	// Dir receives the artifacts (node data dirs and logs, history.jsonl,
	// schedule.json, violations.json, report.txt).
	Dir      string
	Nemeses  []string
	MaxStale time.Duration
	// HoldMin and HoldMax bound how long a fault is held.
	HoldMin, HoldMax time.Duration
	// Quiet is the pause between healing and the next fault.
	Quiet    time.Duration
	Workload WorkloadConfig
	Caps     Capabilities
	Logf     func(string, ...any)
}

// Result is what a run found.
type Result struct {
	Nodes      int
	Seed       int64
	Ops        int
	Events     []Event
	Violations []Violation
	Stale      StaleStats
	Elections  int
	Table      string
	// Untested lists the nemeses that could not be injected here.
	Untested []string
	// Skipped counts workload ticks dropped because too many operations
	// were in flight.
	Skipped int
}

// Run executes one chaos run: start the cluster, run the workload under the
// nemesis schedule, heal, kill and restart the whole cluster, then check.
func Run(cfg Config) (*Result, error) {
	logf := cfg.Logf
	res := &Result{Nodes: cfg.Nodes, Seed: cfg.Seed}
	var net Network = noNetwork{}
	var nemeses []string
	for _, name := range cfg.Nemeses {
		if needsPartitions(name) && !cfg.Caps.Partitions {
			res.Untested = append(res.Untested, name)
			continue
		}
		nemeses = append(nemeses, name)
	}
	c, err := NewCluster(cfg.Bin, cfg.Dir, cfg.Nodes, cfg.Caps.Netns, cfg.MaxStale)
	if err != nil {
		return nil, err
	}
	defer c.StopAll()
	if cfg.Caps.Partitions {
		nn := &nftNetwork{nodes: cfg.Nodes, addr: c.Addr}
		if err := nn.Heal(); err != nil {
			return nil, err
		}
		net = nn
		defer func() { _ = nn.Heal() }()
	}
	if err := c.Init(60 * time.Second); err != nil {
		return nil, err
	}
	start := time.Now()
	rec, err := NewRecorder(filepath.Join(cfg.Dir, "history.jsonl"), start)
	if err != nil {
		return nil, err
	}
	wcfg := cfg.Workload
	wcfg.Seed = cfg.Seed
	w := NewWorkload(wcfg, c, rec)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.Run(ctx)
	}()
	probe := NewProber(c, rec, wcfg.RunID)
	wg.Add(1)
	go func() {
		defer wg.Done()
		probe.Run(ctx)
	}()

	rnd := rand.New(rand.NewSource(cfg.Seed))
	env := &nemesisEnv{c: c, net: net, rec: rec, rnd: rnd}
	time.Sleep(2 * time.Second) // let the workload build some tokens
	order := append([]string(nil), nemeses...)
	rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	// At least one full round, so every nemesis runs once even in a short run.
	for i := 0; len(order) > 0 && (i < len(order) || time.Since(start) < cfg.Duration); i++ {
		if i > 0 && i%len(order) == 0 {
			rnd.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		name := order[i%len(order)]
		hold := cfg.HoldMin + time.Duration(rnd.Int63n(int64(cfg.HoldMax-cfg.HoldMin)+1))
		if name == NemKillAll {
			hold = time.Second
		}
		fwd := forwardErrors(c)
		ev := env.Run(name, hold)
		ev.Seq = i
		if ev.Error != "" {
			res.Violations = append(res.Violations, Violation{Checker: CheckNemesis, At: ev.Start,
				Detail: fmt.Sprintf("%s: %s", name, ev.Error)})
		}
		// Every node must serve again within 20 s of the heal (gossip push/
		// pull 5 s + FailedGrace 10 s + slack); then wait on, bounded, so
		// one slow heal does not cascade into the next fault.
		if err := c.WaitHealthy(20 * time.Second); err != nil {
			res.Violations = append(res.Violations, Violation{Checker: CheckHealthy, At: ev.Start,
				Detail: fmt.Sprintf("after %s: %v", name, err)})
			_ = c.WaitHealthy(40 * time.Second)
		}
		ev.End = rec.Now()
		ev.ForwardErrors = forwardErrorsDelta(fwd, forwardErrors(c), ev.Targets)
		logf("n=%d #%d %-20s targets %v hold %s: healthy again %s after the fault started %s", cfg.Nodes, i, name,
			nodeNames(ev.Targets), hold, time.Duration(ev.End-ev.Start).Round(time.Millisecond), ev.Error)
		res.Events = append(res.Events, ev)
		time.Sleep(cfg.Quiet)
	}
	cancel()
	wg.Wait()

	// Durability across a full-cluster crash: kill -9 everything, restart,
	// then read every acknowledged operation back on every node.
	ev := env.Run(nemFinalKillAll, 500*time.Millisecond)
	ev.Seq = len(res.Events)
	if ev.Error != "" {
		res.Violations = append(res.Violations, Violation{Checker: CheckNemesis, At: ev.Start, Detail: ev.Error})
	}
	if err := c.WaitHealthy(60 * time.Second); err != nil {
		res.Violations = append(res.Violations, Violation{Checker: CheckHealthy, At: ev.Start,
			Detail: "after the final full restart: " + err.Error()})
	}
	ev.End = rec.Now()
	res.Events = append(res.Events, ev)
	ops := rec.Ops()
	if err := rec.Close(); err != nil {
		return nil, err
	}
	res.Ops = len(ops)
	res.Skipped = w.Skipped
	res.Violations = append(res.Violations, finalChecks(c, ops, logf)...)
	c.StopAll()

	lin := CheckLinearizable(ops, cfg.Dir, 60*time.Second)
	res.Violations = append(res.Violations, lin...)
	res.Violations = append(res.Violations, CheckServerErrors(ops)...)
	vis, stale := CheckVisibility(ops, cfg.MaxStale)
	res.Violations = append(res.Violations, vis...)
	res.Stale = stale
	logs := map[string]string{}
	for _, p := range c.Nodes {
		logs[p.ID] = p.LogPath
	}
	terms, err := LeaderTerms(logs)
	if err != nil {
		return nil, err
	}
	for _, nodes := range terms {
		res.Elections += len(nodes)
	}
	res.Violations = append(res.Violations, CheckLeaders(terms)...)
	res.Violations = append(res.Violations, CheckLogs(logs)...)
	for _, cr := range c.Crashes() {
		res.Violations = append(res.Violations, Violation{Checker: CheckCrash, At: -1, Detail: cr})
	}
	res.Violations = append(res.Violations, CheckRetryAfter(ops)...)
	res.Violations = append(res.Violations, CheckFalseFailures(ops)...)
	elections, err := LeadershipTimes(logs)
	if err != nil {
		return nil, err
	}
	kills, killReport := CheckLeaderKills(res.Events, ops, elections)
	res.Violations = append(res.Violations, kills...)
	planned, plannedReport := CheckPlannedRestarts(res.Events, probe.Ops(), elections)
	res.Violations = append(res.Violations, planned...)
	res.Table = Report(res, ops) + killReport + plannedReport
	if err := saveJSON(filepath.Join(cfg.Dir, "schedule.json"), map[string]any{
		"seed": cfg.Seed, "nodes": cfg.Nodes, "duration": cfg.Duration.String(), "nemeses": nemeses,
		"untested": res.Untested, "events": res.Events}); err != nil {
		return nil, err
	}
	if err := saveJSON(filepath.Join(cfg.Dir, "violations.json"), res.Violations); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, "report.txt"), []byte(res.Table), 0o600); err != nil {
		return nil, err
	}
	return res, nil
}

type noNetwork struct{}

func (noNetwork) Cut([]Link) error { return fmt.Errorf("partitions are not injectable here") }
func (noNetwork) Heal() error      { return nil }

func saveJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}

// finalChecks runs convergence (C4) and the ledger (C3) on the healed,
// restarted cluster.
func finalChecks(c *Cluster, ops []*Op, logf func(string, ...any)) []Violation {
	var out []Violation
	// C4: every node's state digest (sys/storage/fsm-hash) equal at one
	// applied index within 10 s of the heal (converge.go).
	out = append(out, checkConvergence(c, 10*time.Second, logf)...)

	// C3: every acknowledged create is present and every acknowledged
	// revoke is absent on every node (local state) and in a consistent read.
	exps := Expectations(ops)
	for k := range c.Nodes {
		local, err := c.Accessors(k, false)
		if err != nil {
			out = append(out, Violation{Checker: CheckLost, At: -1, Detail: fmt.Sprintf("n%d: %v", k+1, err)})
			continue
		}
		have := make(map[string]bool, len(local))
		for _, a := range local {
			have[a] = true
		}
		for _, e := range exps {
			if e.Accessor == "" {
				continue
			}
			if e.MustValid && !have[e.Accessor] {
				out = append(out, Violation{Checker: CheckLost, At: -1,
					Detail: fmt.Sprintf("n%d lost acknowledged create of %s", k+1, e.Token)})
			}
			if e.MustInvalid && have[e.Accessor] {
				out = append(out, Violation{Checker: CheckLost, At: -1,
					Detail: fmt.Sprintf("n%d still has %s after an acknowledged revoke", k+1, e.Token)})
			}
		}
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan int)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				e := exps[i]
				k := i % len(c.Nodes)
				var status int
				for try := 0; try < 5; try++ {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					status, _, _ = c.do(ctx, k, http.MethodGet, "/v1/auth/token/lookup-self?consistent", e.Token, "")
					cancel()
					if status == http.StatusOK || status == http.StatusForbidden {
						break
					}
					time.Sleep(200 * time.Millisecond) // retry interval
				}
				var v string
				switch {
				case status != http.StatusOK && status != http.StatusForbidden:
					v = fmt.Sprintf("consistent read of %s on n%d: status %d after 5 tries", e.Token, k+1, status)
				case e.MustValid && status != http.StatusOK:
					v = fmt.Sprintf("acknowledged create of %s lost (consistent read via n%d: %d)", e.Token, k+1, status)
				case e.MustInvalid && status != http.StatusForbidden:
					v = fmt.Sprintf("acknowledged revoke of %s undone (consistent read via n%d: %d)", e.Token, k+1, status)
				}
				if v != "" {
					mu.Lock()
					out = append(out, Violation{Checker: CheckLost, At: -1, Detail: v})
					mu.Unlock()
				}
			}
		}()
	}
	for i := range exps {
		work <- i
	}
	close(work)
	wg.Wait()
	valid, invalid := 0, 0
	for _, e := range exps {
		if e.MustValid {
			valid++
		}
		if e.MustInvalid {
			invalid++
		}
	}
	logf("final ledger: %d tokens that must be valid, %d that must be invalid, checked on %d nodes", valid, invalid, len(c.Nodes))
	return out
}

// Report renders the per-nemesis table.
func Report(res *Result, ops []*Op) string {
	type row struct {
		events, ops, acked, info int
		viol                     map[string]int
		recover                  []time.Duration
		noRecover                int
		valOK, valAll            int
	}
	rows := map[string]*row{}
	var names []string
	sorted := append([]*Op(nil), ops...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Invoke < sorted[j].Invoke })
	for i, ev := range res.Events {
		r := rows[ev.Nemesis]
		if r == nil {
			r = &row{viol: map[string]int{}}
			rows[ev.Nemesis] = r
			names = append(names, ev.Nemesis)
		}
		r.events++
		winEnd := int64(1 << 62)
		if i+1 < len(res.Events) {
			winEnd = res.Events[i+1].Start
		}
		maj := map[int]bool{}
		for _, k := range ev.Majority {
			maj[k] = true
		}
		// Writes flow again at the earliest completion of a create that
		// was sent after the fault started.
		recovered, firstWrite := false, int64(0)
		for _, op := range sorted {
			if op.Invoke < ev.Start || op.Invoke >= winEnd {
				continue
			}
			r.ops++
			switch op.Outcome {
			case Ok:
				r.acked++
			case Info:
				r.info++
			}
			if op.Outcome == Ok && (op.Kind == OpCreate || op.Kind == OpChildCreate) &&
				(!recovered || op.Complete < firstWrite) {
				recovered, firstWrite = true, op.Complete
			}
			if (op.Kind == OpValidate || op.Kind == OpValidateConsistent) && op.Invoke <= ev.Healed && maj[op.Node] {
				r.valAll++
				if op.Outcome == Ok {
					r.valOK++
				}
			}
		}
		switch {
		case recovered:
			r.recover = append(r.recover, time.Duration(firstWrite-ev.Start))
		case ev.Nemesis != nemFinalKillAll: // the workload has stopped by then
			r.noRecover++
		}
		for _, v := range res.Violations {
			if v.At >= ev.Start && v.At < winEnd {
				r.viol[v.Checker]++
			}
		}
	}
	checkers := []string{CheckLinear, CheckLost, CheckRevokeVis, CheckStale, CheckHealthy, CheckNemesis, CheckServerErr}
	var b strings.Builder
	fmt.Fprintf(&b, "chaos run: %d nodes, seed %d, %d operations (%d ticks skipped: too many in flight), %d elections\n",
		res.Nodes, res.Seed, res.Ops, res.Skipped, res.Elections)
	fmt.Fprintf(&b, "%-20s %4s %7s %7s %6s %5s %5s %5s %5s %5s %5s %5s %9s %9s %8s\n",
		"nemesis", "runs", "ops", "acked", "indet", "lin", "lost", "rvis", "stale", "hlth", "nerr", "e500",
		"rec-med", "rec-max", "val-maj")
	for _, name := range names {
		r := rows[name]
		med, worst := "-", "-"
		if len(r.recover) > 0 {
			slices.Sort(r.recover)
			med = r.recover[len(r.recover)/2].Round(time.Millisecond).String()
			worst = r.recover[len(r.recover)-1].Round(time.Millisecond).String()
		}
		if r.noRecover > 0 {
			worst = fmt.Sprintf("%s+%dnone", worst, r.noRecover)
		}
		avail := "-"
		if r.valAll > 0 {
			avail = fmt.Sprintf("%.1f%%", 100*float64(r.valOK)/float64(r.valAll))
		}
		fmt.Fprintf(&b, "%-20s %4d %7d %7d %6d", name, r.events, r.ops, r.acked, r.info)
		for _, ck := range checkers {
			fmt.Fprintf(&b, " %5d", r.viol[ck])
		}
		fmt.Fprintf(&b, " %9s %9s %8s\n", med, worst, avail)
	}
	global := map[string]int{}
	for _, v := range res.Violations {
		global[v.Checker]++
	}
	fmt.Fprintf(&b, "violations by checker (whole run):")
	for _, ck := range append(checkers, CheckConverge, CheckLeader, CheckCrash, CheckRetryable, CheckUnavail, CheckPlanned, CheckFalseFail) {
		fmt.Fprintf(&b, " %s=%d", ck, global[ck])
	}
	b.WriteString("\n")
	if n := len(res.Stale.MissingCreate); n > 0 {
		s := append([]time.Duration(nil), res.Stale.MissingCreate...)
		slices.Sort(s)
		fmt.Fprintf(&b, "default reads missing an acknowledged create: %d, staleness p50 %s p99 %s max %s\n",
			n, s[n/2].Round(time.Millisecond), s[n*99/100].Round(time.Millisecond), s[n-1].Round(time.Millisecond))
	} else {
		b.WriteString("default reads missing an acknowledged create: 0\n")
	}
	fmt.Fprintf(&b, "default/consistent reads valid after a covering revoke ack: %d\n", res.Stale.RevokedValid)
	classes := ErrorClasses(ops)
	keys := make([]string, 0, len(classes))
	for k := range classes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("not-ok answers by class:")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, classes[k])
	}
	b.WriteString("\n")
	var kills []time.Duration
	for _, name := range []string{NemKillLeader} {
		if r := rows[name]; r != nil {
			kills = append(kills, r.recover...)
		}
	}
	if len(kills) > 0 {
		slices.Sort(kills)
		var parts []string
		for _, k := range kills {
			parts = append(parts, k.Round(time.Millisecond).String())
		}
		fmt.Fprintf(&b, "kill -9 leader -> first acknowledged create: n=%d min %s median %s max %s: %s\n",
			len(kills), kills[0].Round(time.Millisecond), kills[len(kills)/2].Round(time.Millisecond),
			kills[len(kills)-1].Round(time.Millisecond), strings.Join(parts, " "))
	}
	if len(res.Untested) > 0 {
		fmt.Fprintf(&b, "NOT INJECTED (not injectable here): %s\n", strings.Join(res.Untested, ", "))
	}
	return b.String()
}
