//go:build chaos

package chaos

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Helpers shared by the single-scenario tests (T6 membership, T8 clock
// skew, T10 request storm): each runs its own cluster and fault schedule
// instead of Run's random nemesis rotation.

// view is a Cluster over a subset of c's nodes (shared *Proc, so process
// state is shared): Start, Init, the workload and the final checks then
// see only those nodes, numbered 0.. within the view. bootstrap-expect and
// -join follow the view's size and members.
func (c *Cluster) view(ks ...int) *Cluster {
	v := &Cluster{Bin: c.Bin, RootToken: c.RootToken, MaxStale: c.MaxStale, Netns: c.Netns,
		HashKeyFile: c.HashKeyFile, client: c.client}
	for _, k := range ks {
		v.Nodes = append(v.Nodes, c.Nodes[k])
	}
	return v
}

// scenarioDir returns the artifact dir of one test (-chaos.artifacts/name,
// or a temp dir; name "" is the root itself) and registers a cleanup that
// removes a temp dir unless the test failed.
func scenarioDir(t *testing.T, name string) string {
	t.Helper()
	root := *flagArtifacts
	keep := root != ""
	if !keep {
		prefix := "tokend-chaos-"
		if name != "" {
			prefix += name + "-"
		}
		var err error
		if root, err = os.MkdirTemp("", prefix); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if keep {
			return
		}
		if t.Failed() {
			t.Logf("artifacts kept in %s", dir)
			return
		}
		os.RemoveAll(root)
	})
	t.Logf("%s: artifacts in %s", name, dir)
	return dir
}

// runSeed is -chaos.seed, or one from the clock when it is 0.
func runSeed() int64 {
	if *flagSeed != 0 {
		return *flagSeed
	}
	return time.Now().UnixNano()
}

// requirePartitions fails (CI=true) or skips loudly when nftables
// partitions cannot be injected here.
func requirePartitions(t *testing.T, caps Capabilities, what string) bool {
	t.Helper()
	if caps.Partitions {
		return true
	}
	for _, m := range caps.Missing {
		t.Logf("!!! FAULT NOT INJECTABLE (%s): %s", what, m)
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: %s needs partitions, which cannot be injected here", what)
	}
	return false
}

// historyChecks runs the history checkers over ops recorded against the
// nodes of v (C1 linearizability, revocation visibility and staleness, no
// 5xx other than 503, C3 ledger and C4 convergence on v's nodes), plus C5
// one leader per term, panics and unexpected exits over every node of all.
// It returns the violations and the number of elections (leaderships
// taken) seen in the logs.
func historyChecks(all, v *Cluster, ops []*Op, dir string, logf func(string, ...any)) ([]Violation, StaleStats, int) {
	var out []Violation
	out = append(out, finalChecks(v, ops, logf)...)
	out = append(out, CheckLinearizable(ops, dir, 60*time.Second)...)
	out = append(out, CheckServerErrors(ops)...)
	vis, stale := CheckVisibility(ops, v.MaxStale)
	out = append(out, vis...)
	logs := map[string]string{}
	for _, p := range all.Nodes {
		logs[p.ID] = p.LogPath
	}
	elections := 0
	terms, err := LeaderTerms(logs)
	if err != nil {
		out = append(out, Violation{Checker: CheckCrash, At: -1, Detail: "read logs: " + err.Error()})
	}
	for _, nodes := range terms {
		elections += len(nodes)
	}
	out = append(out, CheckLeaders(terms)...)
	out = append(out, CheckLogs(logs)...)
	for _, cr := range all.Crashes() {
		out = append(out, Violation{Checker: CheckCrash, At: -1, Detail: cr})
	}
	return out, stale, elections
}

// reportViolations fails t with every violation (at most 30 listed).
func reportViolations(t *testing.T, vs []Violation) {
	t.Helper()
	for i, v := range vs {
		if i == 30 {
			t.Errorf("... %d more violations", len(vs)-30)
			return
		}
		t.Errorf("violation [%s]: %s", v.Checker, v.Detail)
	}
}

// getBin is the tokend binary TestMain built.
func getBin(t *testing.T) string {
	t.Helper()
	bin := os.Getenv(EnvBinary)
	if bin == "" {
		t.Fatal("no tokend binary (TestMain builds it)")
	}
	return bin
}
