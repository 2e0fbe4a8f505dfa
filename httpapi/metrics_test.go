package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	vault "github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// newMetricsEnv is newEnv with a metrics registry.
func newMetricsEnv(t *testing.T) (*env, *prometheus.Registry) {
	t.Helper()
	e := &env{t: t, node: newFakeLeader(), logBuf: &syncBuffer{}}
	reg := prometheus.NewRegistry()
	opts := testOptions(e.logBuf)
	// At Info, as nodes run: the Trace log of the other tests reads the
	// clock itself and once hid a latency measured from the zero time.
	opts.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: e.logBuf})
	opts.Metrics = reg
	e.srv = httptest.NewServer(New(e.node, opts))
	t.Cleanup(e.srv.Close)
	root, err := InitRoot(context.Background(), e.node, "")
	if err != nil {
		t.Fatalf("InitRoot: %v", err)
	}
	e.root = root
	return e, reg
}

// scrape fetches base's sys/metrics in the Prometheus format and parses it.
func scrape(t *testing.T, base, token string) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	code, hdr, body := doRaw(t, base, "GET", "/v1/sys/metrics?format=prometheus", token, "")
	if code != http.StatusOK {
		t.Fatalf("scrape: %d %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("scrape content type %q: %s", ct, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse exposition: %v\n%s", err, body)
	}
	return fams, body
}

// sample returns the value of the series of family name whose labels
// include want: a counter's or gauge's value, a histogram's count.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// histogramSum is the sample sum of the histogram series of name with the
// labels in want (0 when there is none).
func histogramSum(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	for _, m := range fams[name].GetMetric() {
		match := 0
		for _, lp := range m.GetLabel() {
			if v, ok := want[lp.GetName()]; ok && v == lp.GetValue() {
				match++
			}
		}
		if match == len(want) && m.Histogram != nil {
			return m.GetHistogram().GetSampleSum()
		}
	}
	return 0
}

func reqLabels(route, method, status string) map[string]string {
	return map[string]string{"route": route, "method": method, "status": status}
}

func TestMetricsCountRequestsByRoutePattern(t *testing.T) {
	e, _ := newMetricsEnv(t)
	const lookupSelf = "/v1/auth/token/lookup-self"
	if code, _, body := e.do("GET", lookupSelf, e.root, ""); code != 200 {
		t.Fatalf("lookup-self: %d %s", code, body)
	}
	fams, _ := scrape(t, e.srv.URL, e.root)
	if v, ok := sample(fams, "tokend_http_requests_total", reqLabels(lookupSelf, "GET", "200")); !ok || v != 1 {
		t.Fatalf("lookup-self 200 count = %v (%v), want 1", v, ok)
	}
	if v, ok := sample(fams, "tokend_http_request_duration_seconds", reqLabels(lookupSelf, "GET", "200")); !ok || v != 1 {
		t.Fatalf("lookup-self 200 latency observations = %v (%v), want 1", v, ok)
	}
	// The observation is the request's own time: it once measured from the
	// zero time when the debug log was off (every request in +Inf).
	if sum := histogramSum(fams, "tokend_http_request_duration_seconds", reqLabels(lookupSelf, "GET", "200")); sum <= 0 || sum > 10 {
		t.Fatalf("lookup-self 200 latency sum = %v s, want the time of one request", sum)
	}

	// The counter moves, and each status gets its own series.
	e.do("GET", lookupSelf, e.root, "")
	e.do("GET", lookupSelf, "not-a-token", "")
	// Path values (a token ID here) never become label values: the pattern does.
	secret := "s.MARKERsecretinpath0123456789"
	e.do("GET", "/v1/auth/token/lookup/"+secret, e.root, "")
	e.do("GET", "/v1/no/such/route/"+secret, e.root, "")
	// A made-up method folds into OTHER.
	e.do("BREW", lookupSelf, e.root, "")
	// Status codes a caller picks (sys/health, unauthenticated) fold into
	// their class; Vault's own codes keep theirs.
	for _, code := range []string{"299", "298", "472"} {
		e.do("GET", "/v1/sys/health?activecode="+code, "", "")
	}
	e.do("GET", "/v1/sys/health?activecode=999", "", "")
	// Node-to-node traffic has its own label.
	e.do("POST", InternalPathPrefix+"lease", "", `{}`)
	fams, body := scrape(t, e.srv.URL, e.root)
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{reqLabels(lookupSelf, "GET", "200"), 2},
		{reqLabels(lookupSelf, "GET", "403"), 1},
		{reqLabels("/v1/auth/token/lookup/{token}", "GET", "403"), 1},
		{reqLabels(routeUnmatched, "GET", "404"), 1},
		{reqLabels(routeUnmatched, "OTHER", "405"), 1},
		{reqLabels("/v1/sys/health", "GET", "2xx"), 2},
		{reqLabels("/v1/sys/health", "GET", "472"), 1},
		{reqLabels("/v1/sys/health", "GET", "other"), 1},
		{reqLabels(routeInternal, "POST", "404"), 1},
		// The first scrape, answered before the second was taken.
		{reqLabels("/v1/sys/metrics", "GET", "200"), 1},
	} {
		if v, ok := sample(fams, "tokend_http_requests_total", tc.labels); !ok || v != tc.want {
			t.Errorf("requests %v = %v (%v), want %v", tc.labels, v, ok, tc.want)
		}
	}
	if strings.Contains(body, "MARKER") || strings.Contains(body, e.root) {
		t.Fatalf("exposition carries a raw path or token:\n%s", body)
	}
	// Every route label is a declared pattern or a fixed pseudo route.
	patterns := map[string]bool{routeUnmatched: true, routeInternal: true}
	for _, rt := range newServer(newFakeLeader(), Options{}).router.routes {
		patterns[rt.Path] = true
	}
	statuses := map[string]bool{}
	for _, l := range statusLabels {
		statuses[l] = true
	}
	for _, m := range fams["tokend_http_requests_total"].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "route" && !patterns[lp.GetValue()] {
				t.Errorf("route label %q is not a route pattern", lp.GetValue())
			}
			if lp.GetName() == "status" && !statuses[lp.GetValue()] {
				t.Errorf("status label %q is outside the fixed set", lp.GetValue())
			}
		}
	}
}

func TestMetricsEndpointAuthAndFormats(t *testing.T) {
	e, _ := newMetricsEnv(t)
	// Unauthenticated and unauthorised callers get Vault's 403.
	if code, _, body := e.do("GET", "/v1/sys/metrics?format=prometheus", "", ""); code != 403 || !strings.Contains(body, `"errors":["permission denied"]`) {
		t.Fatalf("no token: %d %s", code, body)
	}
	plain := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}}).Auth.ClientToken
	if code, _, body := e.do("GET", "/v1/sys/metrics", plain, ""); code != 403 {
		t.Fatalf("default policy: %d %s", code, body)
	}
	e.putPolicy("metrics", `path "sys/metrics" { capabilities = ["read"] }`)
	reader := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"metrics"}}).Auth.ClientToken
	fams, _ := scrape(t, e.srv.URL, reader)
	if _, ok := fams["tokend_http_requests_total"]; !ok {
		t.Fatalf("no request metrics for a token with read on sys/metrics: %v", fams)
	}

	// An unknown format is a 400 in Vault's envelope, with Vault's message.
	code, hdr, body := e.do("GET", "/v1/sys/metrics?format=xml", e.root, "")
	if code != 400 || hdr.Get("Content-Type") != "application/json" || strings.TrimSpace(body) != `{"errors":["metric response format \"xml\" unknown"]}` {
		t.Fatalf("bad format: %d %q %s", code, hdr.Get("Content-Type"), body)
	}

	// No format: the JSON summary in go-metrics' shape.
	code, hdr, body = e.do("GET", "/v1/sys/metrics", e.root, "")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Fatalf("json: %d %q %s", code, hdr.Get("Content-Type"), body)
	}
	var sum struct {
		Timestamp string
		Gauges    []gaugeValue
		Points    []pointValue
		Counters  []sampledValue
		Samples   []sampledValue
	}
	if err := json.Unmarshal([]byte(body), &sum); err != nil {
		t.Fatalf("json summary: %v\n%s", err, body)
	}
	if _, err := time.Parse("2006-01-02 15:04:05 -0700 MST", sum.Timestamp); err != nil {
		t.Errorf("Timestamp %q is not go-metrics' format: %v", sum.Timestamp, err)
	}
	var found bool
	for _, c := range sum.Counters {
		if c.Name == "tokend_http_requests_total" && c.Labels["route"] == "/v1/sys/metrics" && c.Labels["status"] == "200" {
			found = c.Count >= 1 && c.Sum == float64(c.Count)
		}
	}
	if !found {
		t.Errorf("json counters lack the scrape of sys/metrics: %+v", sum.Counters)
	}
	var hist bool
	for _, s := range sum.Samples {
		if s.Name == "tokend_http_request_duration_seconds" && s.Count > 0 && s.Mean == s.Sum/float64(s.Count) {
			hist = true
		}
	}
	if !hist {
		t.Errorf("json samples lack the request latency: %+v", sum.Samples)
	}

	// Vault's Accept headers select Prometheus without ?format.
	for _, accept := range []string{"application/openmetrics-text; version=1.0.0", "application/json, prometheus/telemetry"} {
		code, hdr, _ := e.do("GET", "/v1/sys/metrics", e.root, "", "Accept", accept)
		if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
			t.Errorf("Accept %q: %d %q", accept, code, hdr.Get("Content-Type"))
		}
	}
}

// TestMetricsDisabled: without a registry the endpoint exists (the route
// table is the same everywhere) and says so.
func TestMetricsDisabled(t *testing.T) {
	e := newEnv(t, true)
	code, _, body := e.do("GET", "/v1/sys/metrics?format=prometheus", e.root, "")
	if code != 400 || !strings.Contains(body, msgPrometheusDisabled) {
		t.Fatalf("disabled: %d %s", code, body)
	}
}

// TestMetricsServedByStaleFollower: a follower without a read lease still
// reports its own metrics (it is the node an operator wants to look at),
// while its token reads go to the leader.
func TestMetricsServedByStaleFollower(t *testing.T) {
	c := newCluster2(t)
	opts := testOptions(c.logBuf)
	opts.Metrics = prometheus.NewRegistry()
	fs := httptest.NewServer(New(c.follower, opts))
	t.Cleanup(fs.Close)
	c.follower.set(func(n *fakeNode) { n.stale, n.forwards = true, 0 })
	fams, _ := scrape(t, fs.URL, c.root)
	if _, ok := fams["tokend_http_requests_total"]; ok {
		t.Fatal("the first scrape already counted requests")
	}
	c.follower.mu.Lock()
	fw := c.follower.forwards
	c.follower.mu.Unlock()
	if fw != 0 {
		t.Fatalf("sys/metrics was forwarded %d times", fw)
	}
	if code, _, _ := doRaw(t, fs.URL, "GET", "/v1/auth/token/lookup-self", c.root, ""); code != 200 {
		t.Fatalf("lookup-self through the stale follower: %d", code)
	}
	c.follower.mu.Lock()
	fw = c.follower.forwards
	c.follower.mu.Unlock()
	if fw != 1 {
		t.Fatalf("lookup-self forwards = %d, want 1", fw)
	}
}

// TestMetricsObserveAllocatesNothing: once a series exists, recording a
// request costs no allocation (the hot path perf work keeps lean).
func TestMetricsObserveAllocatesNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := newServer(newFakeLeader(), Options{Metrics: reg})
	route, _ := s.router.find("/v1/auth/token/lookup-self")
	if route == nil {
		t.Fatal("no lookup-self route")
	}
	c := &call{w: &recorder{status: 200}, r: httptest.NewRequest("GET", "/v1/auth/token/lookup-self", nil), route: route}
	s.metrics.observe(c, time.Millisecond)
	if n := testing.AllocsPerRun(100, func() { s.metrics.observe(c, time.Millisecond) }); n != 0 {
		t.Fatalf("observe allocates %.1f times per request", n)
	}
	// An uncommon status, counted under its class, neither.
	c.w.status = 418
	s.metrics.observe(c, time.Millisecond)
	if n := testing.AllocsPerRun(100, func() { s.metrics.observe(c, time.Millisecond) }); n != 0 {
		t.Fatalf("observe of an uncommon status allocates %.1f times", n)
	}
}

// BenchmarkLookupSelfMetrics is BenchmarkLookupSelf without and with the
// request metrics, in one run, for the instrumentation's per-request cost.
func BenchmarkLookupSelfMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		if on {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			node := newFakeLeader()
			root, err := InitRoot(context.Background(), node, "")
			if err != nil {
				b.Fatal(err)
			}
			var reg *prometheus.Registry
			if on {
				reg = prometheus.NewRegistry()
			}
			h := New(node, Options{Metrics: reg})
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("GET", "/v1/auth/token/lookup-self", nil)
					req.Header.Set("X-Vault-Token", root)
					w := httptest.NewRecorder()
					h.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatalf("status %d", w.Code)
					}
				}
			})
		})
	}
}

// BenchmarkMetricsObserve is the instrumentation alone: one request's
// counter and histogram update, from parallel goroutines on one series (the
// worst case for contention).
func BenchmarkMetricsObserve(b *testing.B) {
	s := newServer(newFakeLeader(), Options{Metrics: prometheus.NewRegistry()})
	route, _ := s.router.find("/v1/auth/token/lookup-self")
	r := httptest.NewRequest("GET", "/v1/auth/token/lookup-self", nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := &call{w: &recorder{status: 200}, r: r, route: route}
		for pb.Next() {
			s.metrics.observe(c, 50*time.Microsecond)
		}
	})
}

// BenchmarkLookupSelfMetricsInterleaved alternates one lookup-self without
// and one with the request metrics on one goroutine and reports each side's
// mean (off-ns/op, on-ns/op): on a shared, noisy machine interleaving puts
// both under the same load, which separate runs cannot.
func BenchmarkLookupSelfMetricsInterleaved(b *testing.B) {
	handler := func(reg *prometheus.Registry) (http.Handler, string) {
		node := newFakeLeader()
		root, err := InitRoot(context.Background(), node, "")
		if err != nil {
			b.Fatal(err)
		}
		return New(node, Options{Metrics: reg}), root
	}
	off, offRoot := handler(nil)
	on, onRoot := handler(prometheus.NewRegistry())
	serve := func(h http.Handler, root string) time.Duration {
		req := httptest.NewRequest("GET", "/v1/auth/token/lookup-self", nil)
		req.Header.Set("X-Vault-Token", root)
		w := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(w, req)
		d := time.Since(start)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
		return d
	}
	var offTotal, onTotal time.Duration
	for i := 0; i < b.N; i++ {
		if i%2 == 0 {
			offTotal += serve(off, offRoot)
			onTotal += serve(on, onRoot)
		} else {
			onTotal += serve(on, onRoot)
			offTotal += serve(off, offRoot)
		}
	}
	b.ReportMetric(float64(offTotal.Nanoseconds())/float64(b.N), "off-ns/op")
	b.ReportMetric(float64(onTotal.Nanoseconds())/float64(b.N), "on-ns/op")
	b.ReportMetric(float64(onTotal)/float64(offTotal), "on/off")
}
