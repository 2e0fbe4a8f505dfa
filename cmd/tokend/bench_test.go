package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	if got := histIndex(histMax); got != histBuckets-1 {
		t.Fatalf("histIndex(max) = %d, want %d", got, histBuckets-1)
	}
	prev := -1
	for v := uint64(0); v < 1<<20; v += 1 + v/97 {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("index of %d = %d (previous %d)", v, i, prev)
		}
		prev = i
		up := histUpper(i)
		if up < v {
			t.Fatalf("upper(%d) = %d < %d", i, up, v)
		}
		if v >= histLinear && float64(up-v) > float64(v)/histSubCount {
			t.Fatalf("value %d in bucket up to %d: error above 1/%d", v, up, histSubCount)
		}
		if v < histLinear && up != v {
			t.Fatalf("small value %d not exact (%d)", v, up)
		}
		if histIndex(up) != i || (i+1 < histBuckets && histIndex(up+1) != i+1) {
			t.Fatalf("bucket %d does not end at %d", i, up)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var empty histogram
	if s := empty.snapshot(); s.quantile(0.5) != 0 || s.mean() != 0 {
		t.Fatalf("empty histogram: p50 %v mean %v", s.quantile(0.5), s.mean())
	}

	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	h.record(-time.Second) // clamped to 0, never a panic
	s := h.snapshot()
	near := func(name string, got, want time.Duration) {
		t.Helper()
		if d := float64(got-want) / float64(want); d < -0.01 || d > 0.01 {
			t.Errorf("%s = %v, want %v ±1%%", name, got, want)
		}
	}
	near("p50", s.quantile(0.50), 5000*time.Microsecond)
	near("p90", s.quantile(0.90), 9000*time.Microsecond)
	near("p99", s.quantile(0.99), 9900*time.Microsecond)
	near("mean", s.mean(), 5000*time.Microsecond)
	if s.quantile(1) != 10*time.Millisecond || time.Duration(s.max) != 10*time.Millisecond {
		t.Errorf("p100 %v max %v, want exactly 10ms", s.quantile(1), time.Duration(s.max))
	}
	if s.total != 10001 {
		t.Errorf("total %d", s.total)
	}

	var one histogram
	one.record(1234567 * time.Nanosecond)
	if s := one.snapshot(); s.quantile(0.5) != 1234567 || s.quantile(0.99) != 1234567 {
		t.Errorf("single value: p50 %v p99 %v", s.quantile(0.5), s.quantile(0.99))
	}
	var huge histogram
	huge.record(time.Hour)
	if got := huge.snapshot().quantile(0.5); got != histMax {
		t.Errorf("an hour is capped to %v, got %v", time.Duration(histMax), got)
	}
}

func TestParseMix(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{"create=10,lookup-self=80,renew-self=5,revoke=5", "create=10,lookup-self=80,renew-self=5,revoke=5", ""},
		{" lookup = 3 , child-cascade=1,", "child-cascade=1,lookup=3", ""},
		{"create=0,lookup-self=1", "lookup-self=1", ""},
		{"", "", "no operation with a positive weight"},
		{"create=0", "", "no operation with a positive weight"},
		{"create", "", "expected op=weight"},
		{"create=x", "", "whole number"},
		{"create=-1", "", "whole number"},
		{"create=1.5", "", "whole number"},
		{"mint=1", "", `unknown operation "mint"`},
		{"mixed=1", "", `unknown operation "mixed"`},
		{"create=1,create=2", "", "create given twice"},
	}
	for _, tt := range tests {
		m, err := parseMix(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseMix(%q) = %v, %v; want error %q", tt.in, m, err, tt.err)
			}
			continue
		}
		if err != nil || mixString(m) != tt.want {
			t.Errorf("parseMix(%q) = %q, %v; want %q", tt.in, mixString(m), err, tt.want)
		}
	}
}

func TestBenchFlags(t *testing.T) {
	env := mapEnv("VAULT_ADDR", "http://vault:8200", "VAULT_TOKEN", "vt")
	tests := []struct {
		name string
		args []string
		env  func(string) string
		err  string
		ok   func(c *benchConfig) bool
	}{
		{"defaults", nil, env, "", func(c *benchConfig) bool {
			return c.profile == profLookupSelf && c.concurrency == 64 && c.duration == 10*time.Second && c.count == 0 &&
				c.prepare == 100 && c.timeout == 10*time.Second && c.ttl.seconds() == "3600s" &&
				c.token == "vt" && strings.Join(c.addrs, " ") == "http://vault:8200"
		}},
		{"tokend env wins", nil, mapEnv("TOKEND_ADDR", "127.0.0.1:1", "VAULT_ADDR", "x:2", "TOKEND_TOKEN", "tt", "VAULT_TOKEN", "vt"), "",
			func(c *benchConfig) bool { return c.token == "tt" && c.addrs[0] == "http://127.0.0.1:1" }},
		{"addr list", []string{"-addr", "a:1, http://b:2/", "-addr", "https://c:3", "-token", "x", "-n", "5"}, env, "",
			func(c *benchConfig) bool {
				return strings.Join(c.addrs, " ") == "http://a:1 http://b:2 https://c:3" && c.token == "x" && c.count == 5 && c.duration == 0
			}},
		{"mix implies mixed", []string{"-mix", "create=1,revoke=1"}, env, "",
			func(c *benchConfig) bool { return c.profile == profMixed && mixString(c.mix) == "create=1,revoke=1" }},
		{"mixed default mix", []string{"-profile", "mixed"}, env, "",
			func(c *benchConfig) bool { return mixString(c.mix) == defaultMix }},
		{"create needs no prepare", []string{"-profile", "create", "-prepare", "0", "-d", "2"}, env, "",
			func(c *benchConfig) bool { return c.preparedCount() == 0 && c.duration == 2*time.Second }},
		{"revoke prepares victims", []string{"-profile", "revoke", "-prepare", "7"}, env, "",
			func(c *benchConfig) bool { return c.preparedCount() == 7 && !c.needsPrepared() }},
		{"no token", nil, mapEnv(), "no token", nil},
		{"c 0", []string{"-c", "0"}, env, "-c must be >= 1", nil},
		{"n and d", []string{"-n", "10", "-d", "1s"}, env, "-n and -d are exclusive", nil},
		{"n negative", []string{"-n", "-1"}, env, "-n must be >= 0", nil},
		{"d zero", []string{"-d", "0"}, env, "-d must be > 0", nil},
		{"bad d", []string{"-d", "soon"}, env, "invalid value", nil},
		{"bad profile", []string{"-profile", "write"}, env, "-profile must be one of", nil},
		{"mix with other profile", []string{"-profile", "create", "-mix", "create=1"}, env, "-mix is only for -profile mixed", nil},
		{"bad mix", []string{"-mix", "create=1,bogus=2"}, env, "unknown operation", nil},
		{"reads need prepare", []string{"-profile", "lookup", "-prepare", "0"}, env, "-prepare must be >= 1", nil},
		{"mixed reads need prepare", []string{"-mix", "lookup-self=1", "-prepare", "0"}, env, "-prepare must be >= 1", nil},
		{"children", []string{"-children", "0"}, env, "-children must be >= 1", nil},
		{"timeout", []string{"-timeout", "0"}, env, "-timeout must be > 0", nil},
		{"format", []string{"-format", "yaml"}, env, "-format must be table or json", nil},
		{"bad addr", []string{"-addr", "ftp://x"}, env, "not an http(s) address", nil},
		{"stray argument", []string{"lookup-self"}, env, "unexpected argument", nil},
		{"rate", []string{"-rate", "200", "-cpuprofile", "/tmp/x.pprof", "-d", "2s"}, env, "",
			func(c *benchConfig) bool {
				return c.rate == 200 && c.cpuProfile == "/tmp/x.pprof" && c.duration == 2*time.Second
			}},
		{"rate default", nil, env, "", func(c *benchConfig) bool { return c.rate == 0 && c.cpuProfile == "" }},
		{"rate negative", []string{"-rate", "-5"}, env, "-rate must be a number of operations per second >= 0", nil},
		{"rate NaN", []string{"-rate", "NaN"}, env, "-rate must be a number", nil},
		{"rate not a number", []string{"-rate", "fast"}, env, "invalid value", nil},
		{"cpuprofile with n", []string{"-cpuprofile", "p", "-n", "10"}, env, "-cpuprofile needs a duration", nil},
		{"cpuprofile short d", []string{"-cpuprofile", "p", "-d", "500ms"}, env, "-cpuprofile needs -d of at least 1s", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseBenchFlags(tt.env, tt.args, &bytes.Buffer{})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || !tt.ok(c) {
				t.Fatalf("config %+v, err %v", c, err)
			}
		})
	}
}

func TestBenchHelpAndUsageExit(t *testing.T) {
	code, out, _ := runArgs("bench", "-h")
	if code != 0 || !strings.Contains(out, "child-cascade") || !strings.Contains(out, "-prepare") {
		t.Fatalf("exit %d help:\n%s", code, out)
	}
	for _, f := range []string{"-rate", "-cpuprofile"} {
		if !strings.Contains(out, f) {
			t.Errorf("help lacks %s:\n%s", f, out)
		}
	}
	code, out, errOut := runArgs("bench", "-c", "0", "-token", "x")
	if code != exitFailure || out != "" || !strings.Contains(errOut, "-c must be >= 1") {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
	code, out, errOut = runArgs("bench", "-rate", "-1", "-token", "x")
	if code != exitFailure || out != "" || !strings.Contains(errOut, "-rate must be") {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
	// An unwritable profile path fails before any request is sent.
	code, out, errOut = runArgs("bench", "-cpuprofile", t.TempDir()+"/no/such/dir/p", "-d", "1s", "-token", "x", "-addr", "127.0.0.1:1")
	if code != exitFailure || out != "" || !strings.Contains(errOut, "-cpuprofile") {
		t.Fatalf("exit %d stdout %q stderr %q", code, out, errOut)
	}
}

// TestBenchEndToEnd runs every profile for a few operations against an
// in-process dev server.
func TestBenchEndToEnd(t *testing.T) {
	stdout, _, _ := devServer(t, "-dev-root-token-id", "s.benchroot")
	m := addrRE.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("banner:\n%s", stdout.String())
	}
	env := mapEnv("TOKEND_ADDR", m[1], "TOKEND_TOKEN", "s.benchroot")
	bench := func(t *testing.T, args ...string) (int, string, string) {
		t.Helper()
		var o, e bytes.Buffer
		code := run(context.Background(), append([]string{"bench"}, args...), env, strings.NewReader(""), &o, &e)
		return code, o.String(), e.String()
	}

	tests := []struct {
		args  []string
		kinds string // kinds of the requests rows
		n     int64
	}{
		{[]string{"-profile", "create"}, "create", 40},
		{[]string{"-profile", "lookup-self"}, "lookup-self", 40},
		{[]string{"-profile", "lookup"}, "lookup", 40},
		{[]string{"-profile", "renew-self"}, "renew-self", 40},
		{[]string{"-profile", "revoke", "-prepare", "10"}, "revoke", 40}, // 30 victims made on the fly, untimed
		{[]string{"-profile", "child-cascade", "-children", "3"}, "create-parent create-child revoke-cascade", 5},
		{[]string{"-mix", "create=1,lookup-self=1,lookup=1,renew-self=1,revoke=1", "-addr", m[1] + "," + m[1]}, "", 60},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := append([]string{"-n", strconv.FormatInt(tt.n, 10), "-c", "4", "-prepare", "10", "-format", "json"}, tt.args...)
			code, out, errOut := bench(t, args...)
			if code != 0 {
				t.Fatalf("exit %d\nstdout %s\nstderr %s", code, out, errOut)
			}
			var r benchReport
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("not one JSON object: %v\n%s", err, out)
			}
			if r.Ops != tt.n || r.Errors != 0 || len(r.ErrorsBy) != 0 || r.Stopped != "count" || r.OpsPerS <= 0 {
				t.Fatalf("report %s", out)
			}
			if r.Latency.P50 <= 0 || r.Latency.P50 > r.Latency.P99 || r.Latency.P99 > r.Latency.Max {
				t.Fatalf("latencies %+v", r.Latency)
			}
			var kinds []string
			for _, q := range r.Requests {
				if q.Count > 0 {
					kinds = append(kinds, q.Kind)
				}
			}
			if tt.kinds != "" && strings.Join(kinds, " ") != tt.kinds {
				t.Fatalf("request kinds %v, want %s\n%s", kinds, tt.kinds, out)
			}
			if r.Profile == profRevoke && r.Setup != 30 {
				t.Fatalf("setup requests %d, want 30", r.Setup)
			}
		})
	}

	t.Run("table", func(t *testing.T) {
		code, out, errOut := bench(t, "-profile", "lookup-self", "-n", "20", "-c", "2", "-prepare", "5")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"profile        lookup-self", "ops            20\n", "latency p99", "Request        OK", "lookup-self    20"} {
			if !strings.Contains(out, want) {
				t.Errorf("table lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "\r") {
			t.Errorf("progress line written to a non-terminal:\n%q", out)
		}
	})

	t.Run("errors by status", func(t *testing.T) {
		code, out, _ := bench(t, "-profile", "create", "-n", "10", "-c", "2", "-token", "s.benchroot",
			"-addr", m[1]+",127.0.0.1:1", "-format", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		var r benchReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		if r.Ops+r.Errors != 10 || r.Errors == 0 || len(r.ErrorsBy) != 1 || r.ErrorsBy[0].Status != "transport" {
			t.Fatalf("report %s", out)
		}
		// Preparing fails with the server's answer: exit 2.
		code, _, errOut := bench(t, "-profile", "lookup-self", "-n", "5", "-token", "bogus")
		if code != exitAPIError || !strings.Contains(errOut, "403") || strings.Contains(errOut, "bogus") {
			t.Fatalf("exit %d stderr %q", code, errOut)
		}
		// Every operation refused: the report, then exit 2.
		code, out, _ = bench(t, "-profile", "create", "-n", "5", "-c", "1", "-token", "bogus")
		if code != exitAPIError || !strings.Contains(out, "403") {
			t.Fatalf("exit %d stdout %s", code, out)
		}
	})

	t.Run("interrupt with progress", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cfg, err := parseBenchFlags(env, []string{"-profile", "lookup-self", "-d", "60s", "-c", "2", "-prepare", "5"}, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		progress := &syncBuffer{}
		done := make(chan *benchReport, 1)
		go func() {
			r, err := runBench(ctx, cfg, progress)
			if err != nil {
				t.Error(err)
			}
			done <- r
		}()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(progress.String(), "ops/s") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
		}
		cancel()
		r := <-done
		if r == nil || r.Stopped != "interrupted" || r.Ops == 0 || r.Errors != 0 {
			t.Fatalf("report %+v", r)
		}
		if p := progress.String(); !strings.Contains(p, "ops/s") || !strings.HasSuffix(p, "\r\033[K") {
			t.Fatalf("progress %q", p)
		}
	})
}
