package main

import (
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestJudge(t *testing.T) {
	var r row
	r.judge(0.6, true, 0.5)
	if r.Pass == nil || !*r.Pass || r.Target != "≥ 0.5" || r.Ratio != 0.6 {
		t.Errorf("0.6 ≥ 0.5: %+v", r)
	}
	r.judge(0.4, true, 0.5)
	if *r.Pass {
		t.Errorf("0.4 passed ≥ 0.5")
	}
	r.judge(2.5, false, 2)
	if *r.Pass || r.Target != "≤ 2" {
		t.Errorf("2.5 ≤ 2: %+v", r)
	}
	r.judge(1.5, false, 2)
	if !*r.Pass {
		t.Errorf("1.5 failed ≤ 2")
	}
}

func TestPrintTable(t *testing.T) {
	pass, fail := row{Name: "create (3 nodes)", Res: result{OpsPerS: 3000, P50: 20, P99: 90, CPUPerOp: 420 * time.Microsecond}, Ceiling: "raft (b)", CeilVal: 5000},
		row{Name: "lookup-self + 200 creates/s", Res: result{OpsPerS: 9000, P50: 4, P99: 30, Errors: 3}, Ceiling: "p99 w/o writes", CeilVal: 10, Note: "a note"}
	pass.judge(0.6, true, 0.5)
	fail.judge(3, false, 2)
	plain := row{Name: "mixed (3 nodes)", Res: result{OpsPerS: 100, P50: 1, P99: 2}}
	var b bytes.Buffer
	missed := printTable(&b, opts{conc: 64, dur: 5 * time.Second}, []row{pass, fail, plain})
	out := b.String()
	if !missed {
		t.Error("a failed target not reported as missed")
	}
	for _, want := range []string{
		"profile                      ops/s  p50      p99      cpu/op",
		"create (3 nodes)             3000   20.0ms   90.0ms   420µs   raft (b) 5000/s",
		"0.60   ≥ 0.5   PASS",
		"p99 w/o writes 10.0ms",
		"3.00   ≤ 2     FAIL (3 errors)",
		"mixed (3 nodes)              100    1.000ms  2.000ms  -\n",
		"lookup-self + 200 creates/s: a note",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	if printTable(&b, opts{}, []row{pass, plain}) {
		t.Error("all targets met, reported as missed")
	}
}

func TestProcCPU(t *testing.T) {
	if runtime.GOOS != "linux" {
		if procCPU(os.Getpid()) != 0 {
			t.Error("procCPU without /proc is not 0")
		}
		return
	}
	// Burn some CPU so that at least one 10 ms tick is accounted.
	deadline := time.Now().Add(50 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	if got := procCPU(os.Getpid()); got <= 0 {
		t.Errorf("procCPU(self) = %v after burning CPU (%d)", got, x)
	}
	if got := procCPU(1 << 30); got != 0 {
		t.Errorf("procCPU of a missing pid = %v", got)
	}
}

func TestSanitize(t *testing.T) {
	if got := sanitize("Child-Cascade ×10 (3 nodes)"); got != "child-cascade__10__3_nodes_" {
		t.Errorf("sanitize = %q", got)
	}
}
