//go:build chaos

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
	"testing"
	"time"
)

// The RELIABILITY.md scenarios T2, T5 and T11 (t2_*, t5_*, t11_*_test.go)
// each run on their own 3-node cluster under the recorded workload, with
// the same checkers as TestChaos (C1-C5, no panic, no 500). make chaos
// (-chaos.duration of 5 minutes or more) runs them at their RELIABILITY.md
// length; make chaos-short runs a shortened form (scFull).

// scFull reports whether the scenarios run at their RELIABILITY.md length.
func scFull() bool { return *flagDuration >= 5*time.Minute }

// scRun is one scenario's cluster, network, workload and history.
type scRun struct {
	t      *testing.T
	dir    string
	c      *Cluster
	net    Network
	caps   Capabilities
	rec    *Recorder
	w      *Workload
	cancel context.CancelFunc
	done   chan struct{}
	seed   int64
}

// startScRun starts a 3-node cluster (with env in every node's
// environment) and the workload at rate operations/s. It returns nil —
// after saying so loudly, and failing with CI=true — when the scenario
// needs partitions and they cannot be injected here.
func startScRun(t *testing.T, name string, rate float64, needPartitions bool, env map[string]string) *scRun {
	caps := Probe()
	if needPartitions && !caps.Partitions {
		for _, m := range caps.Missing {
			t.Logf("!!! FAULT NOT INJECTABLE: %s", m)
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true: %s needs partitions, which cannot be injected here", name)
		}
		t.Logf("!!! %s NOT RUN: partitions cannot be injected here", name)
		return nil
	}
	for k, v := range env {
		t.Setenv(k, v) // inherited by the node processes
	}
	seed := runSeed()
	dir := scenarioDir(t, name)
	t.Logf("%s: seed %d, artifacts in %s", name, seed, dir)
	c, err := NewCluster(os.Getenv(EnvBinary), dir, 3, caps.Netns, *flagMaxStale)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.StopAll)
	s := &scRun{t: t, dir: dir, c: c, net: noNetwork{}, caps: caps, seed: seed}
	if caps.Partitions {
		nn := &nftNetwork{nodes: 3, addr: c.Addr}
		if err := nn.Heal(); err != nil {
			t.Fatal(err)
		}
		s.net = nn
		t.Cleanup(func() { _ = nn.Heal() })
	}
	if err := c.Init(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	rec, err := NewRecorder(filepath.Join(dir, "history.jsonl"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	s.rec = rec
	s.w = NewWorkload(WorkloadConfig{Workers: *flagWorkers, Rate: rate, ReadTimeout: 3 * time.Second,
		WriteTimeout: 10 * time.Second, Seed: seed, RunID: strconv.FormatInt(seed%1000000, 36) + name[:3]}, c, rec)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		s.w.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-s.done })
	return s
}

// finish stops the workload and runs the checkers of TestChaos (C1-C5, no
// panic or crash, no 500) on the history, failing the test on any
// violation. It returns the history.
func (s *scRun) finish() []*Op {
	t := s.t
	s.cancel()
	<-s.done
	ops := s.rec.Ops()
	if err := s.rec.Close(); err != nil {
		t.Fatal(err)
	}
	var vs []Violation
	if err := s.c.WaitHealthy(20 * time.Second); err != nil {
		vs = append(vs, Violation{Checker: CheckHealthy, At: -1, Detail: "at the end: " + err.Error()})
	}
	vs = append(vs, finalChecks(s.c, ops, t.Logf)...)
	vs = append(vs, CheckLinearizable(ops, s.dir, 60*time.Second)...)
	vs = append(vs, CheckServerErrors(ops)...)
	vis, stale := CheckVisibility(ops, *flagMaxStale)
	vs = append(vs, vis...)
	terms, err := LeaderTerms(s.logs())
	if err != nil {
		t.Fatal(err)
	}
	vs = append(vs, CheckLeaders(terms)...)
	vs = append(vs, CheckLogs(s.logs())...)
	for _, cr := range s.c.Crashes() {
		vs = append(vs, Violation{Checker: CheckCrash, At: -1, Detail: cr})
	}
	acked, indet := 0, 0
	for _, op := range ops {
		switch op.Outcome {
		case Ok:
			acked++
		case Info:
			indet++
		}
	}
	t.Logf("history: %d operations, %d acknowledged, %d indeterminate, %d leader terms; default reads missing a create: %d; reads valid after a covering revoke ack: %d",
		len(ops), acked, indet, len(terms), len(stale.MissingCreate), stale.RevokedValid)
	_ = saveJSON(filepath.Join(s.dir, "violations.json"), vs)
	for i, v := range vs {
		if i == 30 {
			t.Errorf("... %d more violations in %s", len(vs)-30, filepath.Join(s.dir, "violations.json"))
			break
		}
		t.Errorf("violation [%s]: %s", v.Checker, v.Detail)
	}
	return ops
}

// logs maps node IDs to their log files.
func (s *scRun) logs() map[string]string {
	out := map[string]string{}
	for _, p := range s.c.Nodes {
		out[p.ID] = p.LogPath
	}
	return out
}

// follower returns a node other than leader (the n-th one after it).
func (s *scRun) follower(leader, n int) int { return (leader + 1 + n%2) % 3 }

// others lists the nodes other than k.
func scOthers(k int) []int {
	var out []int
	for i := range 3 {
		if i != k {
			out = append(out, i)
		}
	}
	return out
}

// metric sums the Prometheus series of node k whose name is name and whose
// label text contains labels (e.g. `result="ok"`).
func (c *Cluster) metric(k int, name, labels string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	status, body, err := c.do(ctx, k, http.MethodGet, "/v1/sys/metrics?format=prometheus", c.RootToken, "")
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("metrics on %s: %d", c.Nodes[k].ID, status)
	}
	var sum float64
	found := false
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		sp := strings.LastIndexByte(rest, ' ')
		if sp < 0 || !strings.Contains(rest[:sp], labels) {
			continue
		}
		v, err := strconv.ParseFloat(rest[sp+1:], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("metrics on %s: no %s{%s}", c.Nodes[k].ID, name, labels)
	}
	return sum, nil
}

// mustMetric is metric, retried briefly, failing the test on error.
func (s *scRun) mustMetric(k int, name, labels string) float64 {
	var err error
	for try := 0; try < 20; try++ {
		var v float64
		if v, err = s.c.metric(k, name, labels); err == nil {
			return v
		}
		time.Sleep(100 * time.Millisecond) // retry interval
	}
	s.t.Fatalf("%v", err)
	return 0
}

// latencyQuantile returns the q-quantile of the latencies of the
// acknowledged operations sent to node that were invoked in [from, to)
// (monotonic ns), and how many there were.
func latencyQuantile(ops []*Op, node int, from, to int64, q float64) (time.Duration, int) {
	var ds []time.Duration
	for _, op := range ops {
		if op.Node == node && op.Outcome == Ok && op.Invoke >= from && op.Invoke < to {
			ds = append(ds, time.Duration(op.Complete-op.Invoke))
		}
	}
	if len(ds) == 0 {
		return 0, 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(q*float64(len(ds))))], len(ds)
}

// gainedLeadership returns the "gained leadership" lines of every node.
func (s *scRun) gainedLeadership() []LogLine {
	lines, err := ReadLogLines(s.logs(), "gained leadership")
	if err != nil {
		s.t.Fatal(err)
	}
	return lines
}

// leadershipLines reads what electionCause needs.
func (s *scRun) leadershipLines() []LogLine {
	lines, err := ReadLogLines(s.logs(), "gained leadership", "lost leadership", "failed to contact",
		"failed to contact quorum of nodes, stepping down")
	if err != nil {
		s.t.Fatal(err)
	}
	return lines
}

// linesBetween returns the lines with At in [from, to).
func linesBetween(lines []LogLine, from, to time.Time) []LogLine {
	var out []LogLine
	for _, l := range lines {
		if !l.At.Before(from) && l.At.Before(to) {
			out = append(out, l)
		}
	}
	return out
}
