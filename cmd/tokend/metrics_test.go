package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestGoMetricsBridge: what raft and memberlist emit through go-metrics'
// global sink lands in the registry under the tokend_ prefix, and stop
// detaches it.
func TestGoMetricsBridge(t *testing.T) {
	reg, stop, err := newMetricsRegistry()
	if err != nil {
		t.Fatal(err)
	}
	gometrics.IncrCounter([]string{"raft", "bridge_test"}, 2)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	found := false
	for _, mf := range fams {
		if mf.GetName() == "tokend_raft_bridge_test" && len(mf.GetMetric()) == 1 && mf.GetMetric()[0].GetCounter().GetValue() == 2 {
			found = true
		}
	}
	if !found {
		t.Fatalf("bridged counter missing from %d families", len(fams))
	}
	stop()
	gometrics.IncrCounter([]string{"raft", "bridge_test"}, 5)
	fams, _ = reg.Gather()
	for _, mf := range fams {
		if mf.GetName() == "tokend_raft_bridge_test" && mf.GetMetric()[0].GetCounter().GetValue() != 2 {
			t.Fatalf("sink still attached after stop: %v", mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
}

// TestServerMetrics scrapes a real dev server: the node's gauges, the HTTP
// metrics, raft's own telemetry and the runtime collectors share one
// registry without name clashes.
func TestServerMetrics(t *testing.T) {
	stdout, stderr, stop := devServer(t, "-dev-root-token-id", "s.metricsroot")
	m := addrRE.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("banner:\n%s", stdout.String())
	}
	req, _ := http.NewRequest("GET", m[1]+"/v1/sys/metrics?format=prometheus", nil)
	req.Header.Set("X-Vault-Token", "s.metricsroot")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	for _, name := range []string{
		"tokend_raft_leader", "tokend_raft_applied_index", "tokend_fsm_tokens", // the node
		"tokend_raft_apply_duration_seconds",          // the node, around Propose (dev init proposed)
		"tokend_raft_apply", "tokend_raft_commitTime", // raft's go-metrics, bridged
		"go_goroutines", "process_cpu_seconds_total", // runtime and process
	} {
		if fams[name] == nil {
			t.Errorf("no %s in the scrape", name)
		}
	}
	if v := fams["tokend_raft_leader"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("dev node leader flag %v", v)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(stderr.String(), "metrics gathering incomplete") {
		t.Fatalf("registry reported clashes:\n%s", stderr.String())
	}
}

// BenchmarkGoMetricsBridge is the cost of one go-metrics emission as raft
// makes them (a timer, a counter), through the bridge and, for reference,
// through go-metrics' default blackhole sink.
func BenchmarkGoMetricsBridge(b *testing.B) {
	for _, bridged := range []bool{false, true} {
		name := "blackhole"
		if bridged {
			name = "prometheus"
		}
		b.Run(name, func(b *testing.B) {
			if bridged {
				_, stop, err := newMetricsRegistry()
				if err != nil {
					b.Fatal(err)
				}
				defer stop()
			}
			start := time.Now()
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				gometrics.MeasureSince([]string{"raft", "commitTime"}, start)
				gometrics.IncrCounter([]string{"raft", "apply"}, 1)
			}
		})
	}
}
