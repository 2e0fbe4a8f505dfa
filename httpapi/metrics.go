package httpapi

import (
	"bytes"
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// This file is the HTTP API's telemetry: per-request counters and latency
// histograms (recorded by ServeHTTP), and sys/metrics, which serves the
// whole registry (Options.Metrics) that the caller filled with the node's,
// the runtime's and this package's collectors.

// requestBuckets (seconds): a local read takes ~50 µs, a forwarded write a
// few ms, a write that waits out an election seconds.
var requestBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Route labels for requests that matched no route of the tables.
const (
	routeUnmatched = "unmatched"
	routeInternal  = "internal" // node-to-node endpoints (read-lease grants)
)

// metricMethods are the method label values; anything else is "OTHER", so
// a client cannot create series at will.
var metricMethods = [...]string{"GET", "HEAD", "PUT", "POST", "DELETE", "LIST", "PATCH", "OPTIONS", "OTHER"}

func methodIndex(m string) int {
	switch m {
	case "GET":
		return 0
	case "HEAD":
		return 1
	case "PUT":
		return 2
	case "POST":
		return 3
	case "DELETE":
		return 4
	case "LIST":
		return 5
	case "PATCH":
		return 6
	case "OPTIONS":
		return 7
	}
	return 8
}

// statusLabels are the status label values: the codes tokend and Vault
// answer, each under its own label, then one label per class for any other
// code (sys/health lets an unauthenticated caller pick its codes, 100-999,
// which must not mint series at will).
var statusLabels = [...]string{
	"200", "201", "204", "301", "302", "304", "307", "308",
	"400", "401", "403", "404", "405", "409", "412", "413", "415", "429", "472", "473",
	"500", "501", "502", "503", "504", "530",
	"1xx", "2xx", "3xx", "4xx", "5xx", "other",
}

// statusSlot maps a status code to its index in statusLabels.
var statusSlot = func() (t [1000]uint8) {
	byLabel := map[string]int{}
	for i, l := range statusLabels {
		byLabel[l] = i
	}
	for code := range t {
		i, ok := byLabel[strconv.Itoa(code)]
		switch {
		case ok:
		case code >= 100 && code < 600:
			i = byLabel[strconv.Itoa(code/100)+"xx"]
		default:
			i = byLabel["other"]
		}
		t[code] = uint8(i)
	}
	return t
}()

func statusIndex(code int) int {
	if code < 0 || code >= len(statusSlot) {
		return len(statusLabels) - 1 // "other"
	}
	return int(statusSlot[code])
}

// seriesCell is one (route, method, status) series pair, resolved once.
type seriesCell struct {
	count prometheus.Counter
	dur   prometheus.Observer
}

// statusCells are one route and method's cells, by status index.
type statusCells [len(statusLabels)]atomic.Pointer[seriesCell]

// routeSeries caches the cells of one route label; a method's cells are
// allocated when the method is first seen (most routes see one or two).
type routeSeries struct {
	route   string
	methods [len(metricMethods)]atomic.Pointer[statusCells]
}

// httpMetrics records every request by route pattern (never the raw path:
// paths carry token IDs, accessors and prefixes), method and status.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// routes is built in newHTTPMetrics and read-only afterwards.
	routes    map[*Route]*routeSeries
	unmatched *routeSeries
	internal  *routeSeries
}

// newHTTPMetrics registers the request metrics in reg (nil: no
// instrumentation) and prepares one cache per route of rt.
func newHTTPMetrics(reg *prometheus.Registry, rt *router) *httpMetrics {
	if reg == nil {
		return nil
	}
	labels := []string{"route", "method", "status"}
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_http_requests_total",
			Help: "HTTP requests answered by this node, by route pattern, method and status code " +
				"(uncommon codes by class: 2xx, 4xx, ...).",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokend_http_request_duration_seconds",
			Help:    "Time to answer an HTTP request (forwarded ones included), by route pattern, method and status code.",
			Buckets: requestBuckets,
		}, labels),
		routes:    make(map[*Route]*routeSeries, len(rt.routes)),
		unmatched: &routeSeries{route: routeUnmatched},
		internal:  &routeSeries{route: routeInternal},
	}
	reg.MustRegister(m.requests, m.duration)
	for _, r := range rt.routes {
		m.routes[r] = &routeSeries{route: r.Path}
	}
	return m
}

// observe records one answered request. It allocates only the first time a
// (route, method, status) combination is seen.
func (m *httpMetrics) observe(c *call, d time.Duration) {
	if m == nil {
		return
	}
	rs := m.unmatched
	if c.route != nil {
		if r := m.routes[c.route]; r != nil {
			rs = r
		}
	} else if strings.HasPrefix(c.r.URL.Path, InternalPathPrefix) {
		rs = m.internal
	}
	st := c.w.status
	if st == 0 {
		st = http.StatusOK
	}
	cell := m.cell(rs, methodIndex(c.r.Method), st)
	cell.count.Inc()
	cell.dur.Observe(d.Seconds())
}

// cell returns the series of (rs, method mi, status code), creating it on
// first use. Lock-free: racing creators agree through CompareAndSwap (the
// prometheus vectors return the same child for the same labels anyway).
func (m *httpMetrics) cell(rs *routeSeries, mi, code int) *seriesCell {
	cells := rs.methods[mi].Load()
	if cells == nil {
		rs.methods[mi].CompareAndSwap(nil, new(statusCells))
		cells = rs.methods[mi].Load()
	}
	si := statusIndex(code)
	p := &cells[si]
	if c := p.Load(); c != nil {
		return c
	}
	p.CompareAndSwap(nil, m.newCell(rs.route, mi, si))
	return p.Load()
}

func (m *httpMetrics) newCell(route string, mi, si int) *seriesCell {
	lv := []string{route, metricMethods[mi], statusLabels[si]}
	return &seriesCell{count: m.requests.WithLabelValues(lv...), dur: m.duration.WithLabelValues(lv...)}
}

// Vault's metrics formats (VAULT-API: sys/metrics).
const (
	metricsFormatPrometheus = "prometheus"
	// Accept headers that select the Prometheus format without ?format.
	mimeOpenMetrics       = "application/openmetrics-text"
	mimePrometheusSchema  = "prometheus/telemetry"
	msgPrometheusDisabled = "prometheus is not enabled"
)

// metricsRoutes is the route table of sys/metrics.
func (s *server) metricsRoutes() []*Route {
	return []*Route{{
		Path: "/v1/sys/metrics", Bare: true, MountType: "system",
		Fields: Fields{
			"format": {Type: String, Description: `"prometheus" for the Prometheus text exposition format; ` +
				`empty (the default) for a JSON summary in go-metrics' shape`},
		},
		Ops: Ops{"GET": {Handler: s.readMetrics, Kind: Read, Local: true,
			Summary: "This node's telemetry: Prometheus text or a JSON summary (needs read on sys/metrics)"}},
		Description: "Without format, an Accept header starting with application/openmetrics-text or naming " +
			"prometheus/telemetry selects the Prometheus format, as in Vault. Answered by the node that receives it " +
			"(no read gates; forwarded only when X-Vault-Forward: active-node asks for the leader), so a stale " +
			"follower still reports why it is stale. An unknown format " +
			"is 400. The JSON summary has Vault's keys (Timestamp, Gauges, Points, Counters, Samples) but " +
			"cumulative values since the process started, not one 10-second interval.",
	}}
}

// readMetrics serves GET sys/metrics.
func (s *server) readMetrics(_ context.Context, r *Request) (*Response, error) {
	format := r.Data.String("format")
	if format == "" {
		format = formatFromAccept(r.HTTP.Header)
	}
	if format != "" && format != metricsFormatPrometheus {
		return nil, badRequest(`metric response format "` + format + `" unknown`)
	}
	reg := s.opts.Metrics
	if reg == nil {
		return nil, badRequest(msgPrometheusDisabled)
	}
	families, err := reg.Gather()
	if err != nil {
		// Gather still returns every family it could collect.
		s.log.Warn("metrics gathering incomplete", "error", err)
	}
	if format == metricsFormatPrometheus {
		f := expfmt.NewFormat(expfmt.TypeTextPlain)
		var buf bytes.Buffer
		enc := expfmt.NewEncoder(&buf, f)
		for _, mf := range families {
			if err := enc.Encode(mf); err != nil {
				s.log.Error("metrics encoding failed", "error", err)
				return nil, err
			}
		}
		// Non-nil even when empty: a Body, not a Raw answer.
		return &Response{Body: append([]byte{}, buf.Bytes()...), ContentType: string(f)}, nil
	}
	return &Response{Raw: summarize(families, r.Now)}, nil
}

// formatFromAccept is Vault's FormatFromRequest.
func formatFromAccept(h http.Header) string {
	accept := h.Values("Accept")
	if len(accept) == 0 {
		return ""
	}
	if strings.HasPrefix(accept[0], mimeOpenMetrics) {
		return metricsFormatPrometheus
	}
	for _, a := range accept {
		if strings.Contains(a, mimePrometheusSchema) {
			return metricsFormatPrometheus
		}
	}
	return ""
}

// metricsSummary is the JSON answer: go-metrics' MetricsSummary keys (what
// Vault serves without ?format). Values are cumulative since start.
type metricsSummary struct {
	Timestamp string         `json:"Timestamp"`
	Gauges    []gaugeValue   `json:"Gauges"`
	Points    []pointValue   `json:"Points"`
	Counters  []sampledValue `json:"Counters"`
	Samples   []sampledValue `json:"Samples"`
}

type gaugeValue struct {
	Name   string            `json:"Name"`
	Value  float64           `json:"Value"`
	Labels map[string]string `json:"Labels"`
}

// pointValue exists for the shape only: tokend records no raw points.
type pointValue struct {
	Name   string    `json:"Name"`
	Points []float64 `json:"Points"`
}

// sampledValue is a counter (Sum = its value, Count = Sum truncated) or a
// histogram/summary (Count observations adding up to Sum; Mean = Sum/Count).
// go-metrics' Rate, Min, Max and Stddev are not tracked and left out.
type sampledValue struct {
	Name   string            `json:"Name"`
	Count  uint64            `json:"Count"`
	Sum    float64           `json:"Sum"`
	Mean   float64           `json:"Mean"`
	Labels map[string]string `json:"Labels"`
}

// summarize turns gathered families into the JSON summary. Non-finite
// values (which JSON cannot carry) are left out.
func summarize(families []*dto.MetricFamily, now time.Time) *metricsSummary {
	out := &metricsSummary{
		Timestamp: now.Round(time.Second).UTC().String(),
		Gauges:    []gaugeValue{},
		Points:    []pointValue{},
		Counters:  []sampledValue{},
		Samples:   []sampledValue{},
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	for _, mf := range families {
		name := mf.GetName()
		for _, m := range mf.GetMetric() {
			labels := make(map[string]string, len(m.GetLabel()))
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				if v := m.GetCounter().GetValue(); finite(v) && v >= 0 {
					out.Counters = appendSample(out.Counters, name, uint64(v), v, labels)
				}
			case dto.MetricType_GAUGE:
				if v := m.GetGauge().GetValue(); finite(v) {
					out.Gauges = append(out.Gauges, gaugeValue{Name: name, Value: v, Labels: labels})
				}
			case dto.MetricType_UNTYPED:
				if v := m.GetUntyped().GetValue(); finite(v) {
					out.Gauges = append(out.Gauges, gaugeValue{Name: name, Value: v, Labels: labels})
				}
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				out.Samples = appendSample(out.Samples, name, h.GetSampleCount(), h.GetSampleSum(), labels)
			case dto.MetricType_SUMMARY:
				sm := m.GetSummary()
				out.Samples = appendSample(out.Samples, name, sm.GetSampleCount(), sm.GetSampleSum(), labels)
			}
		}
	}
	return out
}

func appendSample(s []sampledValue, name string, count uint64, sum float64, labels map[string]string) []sampledValue {
	if math.IsNaN(sum) || math.IsInf(sum, 0) {
		return s
	}
	mean := 0.0
	if count > 0 {
		mean = sum / float64(count)
	}
	return append(s, sampledValue{Name: name, Count: count, Sum: sum, Mean: mean, Labels: labels})
}
