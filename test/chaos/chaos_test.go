//go:build chaos

package chaos

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The full harness needs -tags chaos (make chaos, and the short run of make
// test), so a plain `go test ./...` stays fast.
var (
	flagDuration  = flag.Duration("chaos.duration", 2*time.Minute, "total fault-schedule time, split over the cluster sizes")
	flagNodes     = flag.String("chaos.nodes", "3", "comma-separated cluster sizes")
	flagSeed      = flag.Int64("chaos.seed", 0, "seed of the workload and the fault schedule (0: from the clock; printed)")
	flagArtifacts = flag.String("chaos.artifacts", os.Getenv("TOKEND_CHAOS_ARTIFACTS"), "keep the artifacts in this dir (default: a temp dir, removed when the run passes)")
	flagNemeses   = flag.String("chaos.nemeses", "all", "comma-separated nemeses, or all")
	flagRate      = flag.Float64("chaos.rate", 250, "client operations per second")
	flagWorkers   = flag.Int("chaos.workers", 200, "operations in flight at most")
	flagHoldMin   = flag.Duration("chaos.hold-min", 3*time.Second, "shortest time a fault is held")
	flagHoldMax   = flag.Duration("chaos.hold-max", 6*time.Second, "longest time a fault is held")
	flagMaxStale  = flag.Duration("chaos.max-stale", time.Second, "-max-stale of the nodes")
)

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Getenv(EnvInNetns) != "1" {
		// Build outside the namespace: inside it the module proxy is
		// unreachable.
		dir, err := os.MkdirTemp("", "tokend-chaos-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		bin, err := BuildBinary(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		code, ran, err := ReexecInNetns(bin)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if ran {
			os.RemoveAll(dir)
			os.Exit(code)
		}
		os.Setenv(EnvBinary, bin)
		defer os.RemoveAll(dir)
	}
	os.Exit(m.Run())
}

// notInjectable reports loudly that a fault asked for cannot be injected
// here, and why; with CI=true that fails the test (a CI run must not pass
// without the faults it claims to run).
func notInjectable(t *testing.T, fault, why string) {
	t.Helper()
	msg := fmt.Sprintf("!!! FAULT NOT INJECTABLE: %s: %s", fault, why)
	fmt.Println(msg)
	if os.Getenv("CI") == "true" {
		t.Errorf("%s (CI=true: failing)", msg)
	} else {
		t.Log(msg + " (not run; with CI=true this fails)")
	}
}

// TestChaos runs the workload under the nemesis schedule on every cluster
// size and fails on any checker violation, crash or unhealthy end, and —
// with CI=true — when a nemesis it was asked to run cannot be injected.
func TestChaos(t *testing.T) {
	caps := Probe()
	for _, m := range caps.Missing {
		t.Logf("fault family not injectable here: %s", m)
	}
	nemeses := AllNemeses
	if *flagNemeses != "all" {
		nemeses = strings.Split(*flagNemeses, ",")
	}
	for _, name := range nemeses {
		if ok, why := caps.Injectable(name); !ok {
			notInjectable(t, "nemesis "+name, why)
		}
	}
	var sizes []int
	for _, s := range strings.Split(*flagNodes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 3 {
			t.Fatalf("-chaos.nodes %q: want sizes >= 3", *flagNodes)
		}
		sizes = append(sizes, n)
	}
	seed := runSeed()
	root := scenarioDir(t, "")
	t.Logf("chaos: seed %d, artifacts in %s, nodes %v, duration %s", seed, root, sizes, *flagDuration)
	var tables []string
	for _, n := range sizes {
		t.Run(fmt.Sprintf("nodes=%d", n), func(t *testing.T) {
			dir := filepath.Join(root, fmt.Sprintf("nodes-%d", n))
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			res, err := Run(Config{
				Bin: os.Getenv(EnvBinary), Nodes: n, Duration: *flagDuration / time.Duration(len(sizes)),
				Seed: seed + int64(n), Dir: dir, Nemeses: nemeses, MaxStale: *flagMaxStale,
				HoldMin: *flagHoldMin, HoldMax: *flagHoldMax, Quiet: 2 * time.Second,
				Workload: WorkloadConfig{Workers: *flagWorkers, Rate: *flagRate,
					ReadTimeout: 3 * time.Second, WriteTimeout: 10 * time.Second,
					RunID: strconv.FormatInt(seed%1000000, 36)},
				Caps: caps, Logf: t.Logf,
			})
			if err != nil {
				t.Fatalf("chaos run: %v", err)
			}
			t.Logf("\n%s", res.Table)
			tables = append(tables, res.Table)
			for i, v := range res.Violations {
				if i == 30 {
					t.Errorf("... %d more violations in %s", len(res.Violations)-30, filepath.Join(dir, "violations.json"))
					break
				}
				t.Errorf("violation [%s]: %s", v.Checker, v.Detail)
			}
		})
	}
	fmt.Printf("\n==== chaos summary (seed %d) ====\n%s", seed, strings.Join(tables, "\n"))
	for _, m := range caps.Missing {
		fmt.Printf("NOT INJECTABLE: %s\n", m)
	}
}
