package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// benchReport is the result of a run; its JSON form is what -format=json
// prints (README "Load testing with tokend bench" documents the keys).
type benchReport struct {
	Profile     string         `json:"profile"`
	Mix         map[string]int `json:"mix,omitempty"`
	Addrs       []string       `json:"addrs"`
	Concurrency int            `json:"concurrency"`
	Prepared    int            `json:"prepared"`
	Children    int            `json:"children,omitempty"`
	Stopped     string         `json:"stopped"` // "duration", "count" or "interrupted"
	DurationS   float64        `json:"duration_s"`
	Ops         int64          `json:"ops"`    // operations that succeeded
	Errors      int64          `json:"errors"` // operations that failed
	OpsPerS     float64        `json:"ops_per_s"`
	Latency     latencyJSON    `json:"latency_ms"`
	Requests    []requestJSON  `json:"requests"`
	Setup       int64          `json:"setup_requests"`
	ErrorsBy    []errorJSON    `json:"errors_by_status"`
	Rate        float64        `json:"rate,omitempty"` // -rate, when set

	// profile is the -cpuprofile download, profileErr why it failed.
	profile    []byte
	profileErr error
}

// latencyJSON is a latency summary in milliseconds.
type latencyJSON struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// requestJSON is the summary of one kind of request.
type requestJSON struct {
	Kind    string      `json:"kind"`
	Count   int64       `json:"count"`
	Errors  int64       `json:"errors"`
	PerS    float64     `json:"per_s"`
	Latency latencyJSON `json:"latency_ms"`
}

// errorJSON counts failed requests of one HTTP status, or "transport",
// "timeout" or "bad-response".
type errorJSON struct {
	Status  string `json:"status"`
	Count   int64  `json:"count"`
	Example string `json:"example"`
}

func summarize(s *histSnapshot) latencyJSON {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return latencyJSON{P50: ms(s.quantile(0.50)), P90: ms(s.quantile(0.90)), P99: ms(s.quantile(0.99)), Max: ms(time.Duration(s.max)), Mean: ms(s.mean())}
}

// report builds the report once every worker has stopped.
func (b *benchRun) report(elapsed time.Duration) *benchReport {
	cfg := b.cfg
	r := &benchReport{
		Profile:     cfg.profile,
		Addrs:       cfg.addrs,
		Concurrency: cfg.concurrency,
		Prepared:    len(b.prepared),
		Stopped:     "duration",
		DurationS:   math.Round(elapsed.Seconds()*1000) / 1000,
		Ops:         b.ops.Load(),
		Errors:      b.errOps.Load(),
		Latency:     summarize(b.iter.snapshot()),
		Setup:       b.setup.Load(),
		Requests:    []requestJSON{},
		ErrorsBy:    []errorJSON{},
		Rate:        cfg.rate,
	}
	if cfg.profile == profRevoke {
		r.Prepared = cfg.preparedCount()
	}
	switch {
	case b.ctx.Err() != nil:
		r.Stopped = "interrupted"
	case cfg.count > 0:
		r.Stopped = "count"
	}
	if len(cfg.mix) > 0 {
		r.Mix = map[string]int{}
		for _, s := range cfg.mix {
			r.Mix[s.op] = s.weight
		}
	}
	if cfg.profile == profChildCascade || r.Mix[profChildCascade] > 0 {
		r.Children = cfg.children
	}
	if elapsed > 0 {
		r.OpsPerS = math.Round(float64(r.Ops)/elapsed.Seconds()*10) / 10
	}
	for k := range numKinds {
		s := b.kinds[k].snapshot()
		errs := b.kindErrs[k].Load()
		if s.total == 0 && errs == 0 {
			continue
		}
		rq := requestJSON{Kind: kindNames[k], Count: int64(s.total), Errors: errs, Latency: summarize(s)}
		if elapsed > 0 {
			rq.PerS = math.Round(float64(s.total)/elapsed.Seconds()*10) / 10
		}
		r.Requests = append(r.Requests, rq)
	}
	b.errMu.Lock()
	for k, s := range b.errs {
		r.ErrorsBy = append(r.ErrorsBy, errorJSON{Status: k, Count: s.count, Example: s.example})
	}
	b.errMu.Unlock()
	sort.Slice(r.ErrorsBy, func(i, j int) bool { return r.ErrorsBy[i].Status < r.ErrorsBy[j].Status })
	return r
}

// write prints the report as tables or as one JSON object.
func (r *benchReport) write(w io.Writer, format string) error {
	if format == "json" {
		enc := json.NewEncoder(w)
		return enc.Encode(r)
	}
	ms := func(v float64) string { return fmtMillis(v) }
	profile := r.Profile
	if len(r.Mix) > 0 {
		parts := make([]mixShare, 0, len(r.Mix))
		for op, wt := range r.Mix {
			parts = append(parts, mixShare{op, wt})
		}
		profile += " (" + mixString(parts) + ")"
	}
	if r.Children > 0 {
		profile += fmt.Sprintf(" (%d children)", r.Children)
	}
	rows := [][]string{
		{"profile", profile},
		{"nodes", strings.Join(r.Addrs, ", ")},
		{"concurrency", strconv.Itoa(r.Concurrency)},
		{"prepared", strconv.Itoa(r.Prepared)},
		{"duration", fmt.Sprintf("%.3fs (stopped by %s)", r.DurationS, r.Stopped)},
		{"ops", strconv.FormatInt(r.Ops, 10)},
		{"errors", strconv.FormatInt(r.Errors, 10)},
		{"ops/s", strconv.FormatFloat(r.OpsPerS, 'f', 1, 64)},
		{"latency p50", ms(r.Latency.P50)},
		{"latency p90", ms(r.Latency.P90)},
		{"latency p99", ms(r.Latency.P99)},
		{"latency max", ms(r.Latency.Max)},
	}
	if r.Rate > 0 {
		rows = append(rows[:3], append([][]string{{"rate cap", strconv.FormatFloat(r.Rate, 'f', -1, 64) + " ops/s"}}, rows[3:]...)...)
	}
	if r.Setup > 0 {
		rows = append(rows, []string{"setup requests", strconv.FormatInt(r.Setup, 10) + " (untimed)"})
	}
	if err := writeTable(w, []string{"Key", "Value"}, rows); err != nil {
		return err
	}
	if len(r.Requests) > 0 {
		fmt.Fprintln(w)
		rows = rows[:0]
		for _, q := range r.Requests {
			rows = append(rows, []string{q.Kind, strconv.FormatInt(q.Count, 10), strconv.FormatInt(q.Errors, 10),
				strconv.FormatFloat(q.PerS, 'f', 1, 64), ms(q.Latency.P50), ms(q.Latency.P90), ms(q.Latency.P99), ms(q.Latency.Max)})
		}
		if err := writeTable(w, []string{"Request", "OK", "Errors", "Per s", "p50", "p90", "p99", "Max"}, rows); err != nil {
			return err
		}
	}
	if len(r.ErrorsBy) > 0 {
		fmt.Fprintln(w)
		rows = rows[:0]
		for _, e := range r.ErrorsBy {
			rows = append(rows, []string{e.Status, strconv.FormatInt(e.Count, 10), e.Example})
		}
		if err := writeTable(w, []string{"Status", "Count", "Example"}, rows); err != nil {
			return err
		}
	}
	return nil
}

// fmtMillis renders milliseconds compactly: 0.412ms, 12.3ms, 1.52s.
func fmtMillis(v float64) string {
	switch {
	case v >= 1000:
		return strconv.FormatFloat(v/1000, 'f', 2, 64) + "s"
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	default:
		return strconv.FormatFloat(v, 'f', 3, 64) + "ms"
	}
}
