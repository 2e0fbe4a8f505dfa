package test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/test/inproc"
)

// scrapeNode reads node i's GET /v1/sys/metrics?format=prometheus as root.
func scrapeNode(t *testing.T, c *inproc.Cluster, i int) metricSet {
	t.Helper()
	req, err := http.NewRequest("GET", c.Addr(i)+"/v1/sys/metrics?format=prometheus", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", c.RootToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("scrape node %d: %v", i, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape node %d: %d %v %s", i, resp.StatusCode, err, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse node %d's exposition: %v", i, err)
	}
	return metricSet(fams)
}

// metricSet is one parsed scrape.
type metricSet map[string]*dto.MetricFamily

// sum adds up the series of name whose labels include want (a histogram
// counts its observations); ok is false when no series matches.
func (m metricSet) sum(name string, want map[string]string) (total float64, ok bool) {
	mf := m[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, s := range mf.GetMetric() {
		for k, v := range want {
			found := false
			for _, lp := range s.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		ok = true
		switch {
		case s.Counter != nil:
			total += s.GetCounter().GetValue()
		case s.Gauge != nil:
			total += s.GetGauge().GetValue()
		case s.Histogram != nil:
			total += float64(s.GetHistogram().GetSampleCount())
		}
	}
	return total, ok
}

// gauge returns an unlabelled series' value, failing the test if absent.
func (m metricSet) gauge(t *testing.T, name string) float64 {
	t.Helper()
	v, ok := m.sum(name, nil)
	if !ok {
		t.Fatalf("no series %s", name)
	}
	return v
}

// TestMetricsOnCluster scrapes every node of a real 3-node cluster and
// checks that the series exist and follow what the cluster does: creates
// through a follower are forwarded, applied everywhere, counted by route,
// timed around raft, and reflected in the indexes and token counts.
func TestMetricsOnCluster(t *testing.T) {
	c := inproc.New(t, 3)
	leader := c.LeaderIndex()
	f := c.Followers()[0]
	// The root token must have reached the follower before it can scrape.
	c.WaitForIndex(c.Cluster(leader).AppliedIndex())
	before := scrapeNode(t, c, f)
	appliedBefore := before.gauge(t, "tokend_raft_applied_index")
	fwdBefore, _ := before.sum("tokend_forwarded_requests_total", map[string]string{"outcome": "forwarded"})
	applyBefore := 0.0
	for i := range c.Nodes {
		n, _ := scrapeNode(t, c, i).sum("tokend_raft_apply_duration_seconds", map[string]string{"command": "create_token"})
		applyBefore += n
	}

	const creates = 3
	for k := 0; k < creates; k++ {
		createToken(t, c.Client(f), &vaultapi.TokenCreateRequest{TTL: "1h"})
	}
	index := c.Cluster(leader).AppliedIndex()
	c.WaitForIndex(index)

	// Roles, terms and leases are checked on one round of scrapes taken
	// while the cluster is settled: exactly one node reports leading, all
	// report the same term, every follower holds a read lease. (A loaded
	// machine may hold an election meanwhile; the round is then retaken.)
	var round []metricSet
	c.WaitFor(10*time.Second, "a settled round of scrapes", func() bool {
		round = round[:0]
		leaders, terms := 0.0, map[float64]bool{}
		for i := range c.Nodes {
			m := scrapeNode(t, c, i)
			round = append(round, m)
			leaders += m.gauge(t, "tokend_raft_leader")
			terms[m.gauge(t, "tokend_raft_term")] = true
			if m.gauge(t, "tokend_raft_leader") == 0 && m.gauge(t, "tokend_read_stale") != 0 {
				return false
			}
		}
		return leaders == 1 && len(terms) == 1
	})
	for i, m := range round {
		applied := m.gauge(t, "tokend_raft_applied_index")
		if applied < float64(index) {
			t.Errorf("node %d: applied index %v < %d", i, applied, index)
		}
		if commit := m.gauge(t, "tokend_raft_commit_index"); commit < applied {
			t.Errorf("node %d: commit index %v < applied %v", i, commit, applied)
		}
		if last := m.gauge(t, "tokend_raft_last_index"); last < applied {
			t.Errorf("node %d: last index %v < applied %v", i, last, applied)
		}
		// The root token plus the creates: the gauge and the state agree.
		tokens := m.gauge(t, "tokend_fsm_tokens")
		if want := float64(c.Cluster(i).State().Len()); tokens != want || tokens != 1+creates {
			t.Errorf("node %d: tokend_fsm_tokens = %v, state holds %v, want %d", i, tokens, want, 1+creates)
		}
		if v := m.gauge(t, "tokend_raft_voters"); v != 3 {
			t.Errorf("node %d: voters = %v, want 3", i, v)
		}
		if v := m.gauge(t, "tokend_raft_known_leader"); v != 1 {
			t.Errorf("node %d: known leader = %v", i, v)
		}
		lc := m.gauge(t, "tokend_raft_last_contact_seconds")
		lease := m.gauge(t, "tokend_read_lease_remaining_seconds")
		qc := m.gauge(t, "tokend_leader_quorum_contact_seconds")
		if m.gauge(t, "tokend_raft_leader") == 1 {
			if lc != 0 || lease != 0 {
				t.Errorf("leader %d: last contact %v, lease %v, want 0 and 0", i, lc, lease)
			}
			// Heartbeats go out every 50-100 ms: a settled leader's
			// quorum answered well within max-stale.
			if qc < 0 || qc >= c.MaxStale.Seconds() {
				t.Errorf("leader %d: quorum contact %vs ago, outside [0, max-stale)", i, qc)
			}
			continue
		}
		if qc != 0 {
			t.Errorf("follower %d: quorum contact %v, want 0", i, qc)
		}
		if lc < 0 || lc >= c.MaxStale.Seconds() {
			t.Errorf("follower %d: last contact %vs, outside [0, max-stale)", i, lc)
		}
		if lease <= 0 {
			t.Errorf("follower %d holds no read lease: %v", i, lease)
		}
	}

	after := scrapeNode(t, c, f)
	if a := after.gauge(t, "tokend_raft_applied_index"); a <= appliedBefore {
		t.Errorf("follower applied index did not grow: %v → %v", appliedBefore, a)
	}
	if fwd, _ := after.sum("tokend_forwarded_requests_total", map[string]string{"outcome": "forwarded"}); fwd-fwdBefore < creates {
		t.Errorf("follower forwarded %v requests, want ≥ %d", fwd-fwdBefore, creates)
	}
	// Counted on both sides of the hop, by pattern and status, and timed
	// around raft where they were proposed (summed over the nodes, should
	// leadership have moved).
	create := map[string]string{"route": "/v1/auth/token/create", "status": "200"}
	var requests, latencies, applyAfter float64
	for i := range c.Nodes {
		m := scrapeNode(t, c, i)
		n, _ := m.sum("tokend_http_requests_total", create)
		requests += n
		if i == f && n < creates {
			t.Errorf("follower %d: %v create requests counted, want ≥ %d", i, n, creates)
		}
		n, _ = m.sum("tokend_http_request_duration_seconds", create)
		latencies += n
		n, _ = m.sum("tokend_raft_apply_duration_seconds", map[string]string{"command": "create_token"})
		applyAfter += n
	}
	if requests < 2*creates || latencies < 2*creates {
		t.Errorf("%v create requests and %v latencies counted in all, want ≥ %d each", requests, latencies, 2*creates)
	}
	if applyAfter-applyBefore < creates {
		t.Errorf("%v create proposals timed, want ≥ %d", applyAfter-applyBefore, creates)
	}
	// The runtime collector is wired too.
	if _, ok := after["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}

	// A proposal a follower refuses is counted as a failure, by reason.
	if _, _, err := c.Cluster(f).Propose(context.Background(), fsm.ReapExpired{Now: time.Now().UnixNano()}); err == nil {
		t.Fatal("a follower accepted a proposal")
	}
	if n, _ := scrapeNode(t, c, f).sum("tokend_raft_apply_failures_total", map[string]string{"command": "reap_expired", "reason": "not_leader"}); n != 1 {
		t.Errorf("follower counted %v refused proposals, want 1", n)
	}

	// Snapshots are timed and their index shows; a restarted node restores
	// from its snapshot and counts that.
	if err := c.Cluster(f).Snapshot(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	m := scrapeNode(t, c, f)
	if n, _ := m.sum("tokend_snapshot_persist_duration_seconds", map[string]string{"result": "ok"}); n != 1 {
		t.Errorf("persisted snapshots = %v, want 1", n)
	}
	if n, _ := m.sum("tokend_snapshot_capture_duration_seconds", nil); n != 1 {
		t.Errorf("captured snapshots = %v, want 1", n)
	}
	if si := m.gauge(t, "tokend_raft_last_snapshot_index"); si < float64(index) {
		t.Errorf("last snapshot index %v < %d", si, index)
	}
	c.Stop(f)
	c.Restart(f)
	c.WaitForIndex(index)
	m = scrapeNode(t, c, f)
	if n, _ := m.sum("tokend_snapshot_restore_duration_seconds", map[string]string{"result": "ok"}); n != 1 {
		t.Errorf("restores after restart = %v, want 1", n)
	}
	// Its own snapshot, not one the leader sent.
	if n, _ := m.sum("tokend_snapshot_installs_total", nil); n != 0 {
		t.Errorf("snapshot installs after a restart on an up-to-date log = %v, want 0", n)
	}
	if tokens := m.gauge(t, "tokend_fsm_tokens"); tokens != 1+creates {
		t.Errorf("restarted follower: tokend_fsm_tokens = %v, want %d", tokens, 1+creates)
	}
}
