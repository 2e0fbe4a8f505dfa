//go:build chaos

package chaos

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

var flagFlakyDuration = flag.Duration("chaos.flaky-duration", 90*time.Second,
	"length of the flaky-links scenario (T7); 0 leaves it out")

// TestChaosFlakyLinks is RELIABILITY.md T7 on 3 nodes: delay 75±50 ms on
// every link of the leader, 50% packet loss on one directed link, then a
// one-way cut, all through per-link fault proxies that nftables NAT puts
// in the node-to-node paths (no tc netem here). It fails on any C1–C5
// violation, a leak, or a fault that did not act on traffic; without the
// network namespace or nftables nat it says so loudly and fails when
// CI=true.
func TestChaosFlakyLinks(t *testing.T) {
	if *flagFlakyDuration == 0 {
		t.Log("flaky links: -chaos.flaky-duration=0, not run")
		return
	}
	caps := Probe()
	if !caps.SlowLinks {
		notInjectable(t, "slow links (T7 flaky links)", caps.SlowLinksWhy)
		return
	}
	seed := runSeed()
	root := scenarioDir(t, "flaky")
	t.Logf("flaky links: seed %d, artifacts in %s, duration %s", seed, root, *flagFlakyDuration)
	res, err := RunFlaky(FlakyConfig{
		Bin: os.Getenv(EnvBinary), Dir: root, Nodes: 3, Duration: *flagFlakyDuration, Seed: seed,
		MaxStale: *flagMaxStale,
		Workload: WorkloadConfig{Workers: *flagWorkers, Rate: *flagRate,
			ReadTimeout: 3 * time.Second, WriteTimeout: 10 * time.Second,
			RunID: "fl" + strconv.FormatInt(seed%1000000, 36)},
		Logf: t.Logf,
	})
	if err != nil {
		t.Fatalf("flaky links: %v (artifacts in %s)", err, root)
	}
	t.Logf("\n%s", res.Table)
	fmt.Printf("\n==== flaky links (seed %d) ====\n%s", seed, res.Table)
	for i, v := range res.Violations {
		if i == 30 {
			t.Errorf("... %d more violations in %s", len(res.Violations)-30, filepath.Join(root, "flaky.json"))
			break
		}
		t.Errorf("violation [%s]: %s", v.Checker, v.Detail)
	}
}
