package chaos

import (
	"strings"
	"testing"
	"time"
)

func ms(x int64) int64 { return x * int64(time.Millisecond) }

func TestCheckRetryAfter(t *testing.T) {
	ops := []*Op{
		{ID: 1, Kind: OpCreate, Status: 503, RetryAfter: "1"},
		{ID: 2, Kind: OpCreate, Status: 503},
		{ID: 3, Kind: OpValidate, Status: 429},
		{ID: 4, Kind: OpValidate, Status: 200},
	}
	v := CheckRetryAfter(ops)
	if len(v) != 2 || !strings.Contains(v[0].Detail, "op 2") || !strings.Contains(v[1].Detail, "op 3") {
		t.Fatalf("violations %+v, want ops 2 and 3", v)
	}
}

func TestCheckLeaderKills(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []Event{
		{Seq: 0, Nemesis: NemKillLeader, Start: ms(1000), End: ms(5000), StartWall: t0.Add(time.Second), Targets: []int{0}, ForwardErrors: 2},
		{Seq: 1, Nemesis: NemKillLeader, Start: ms(10000), End: ms(15000), StartWall: t0.Add(10 * time.Second), Targets: []int{1}},
		{Seq: 2, Nemesis: NemKillRandom, Start: ms(20000), StartWall: t0.Add(20 * time.Second), Targets: []int{2}},
	}
	ops := []*Op{
		// Kill 0: the killed node's own clients see refused connections
		// (not counted); a survivor answers 503 with Retry-After (fine),
		// then acknowledges a create 1.5 s after the kill.
		{ID: 1, Kind: OpCreate, Node: 0, Invoke: ms(1100), Complete: ms(1101), Outcome: Info, Error: "connection refused"},
		{ID: 2, Kind: OpCreate, Node: 1, Invoke: ms(1200), Complete: ms(1300), Outcome: Info, Status: 503, RetryAfter: "1"},
		{ID: 3, Kind: OpCreate, Node: 2, Invoke: ms(2000), Complete: ms(2500), Outcome: Ok, Status: 200},
		// A definite 4xx the workload provokes is no client-visible error.
		{ID: 4, Kind: OpChildCreate, Node: 2, Invoke: ms(2100), Complete: ms(2200), Outcome: Fail, Status: 400},
		// A survivor's error that the next fault caused (it ended after
		// that fault began) does not count against kill 0.
		{ID: 7, Kind: OpCreate, Node: 1, Invoke: ms(9900), Complete: ms(10100), Outcome: Info, Error: "connection reset"},
		// Kill 1: a survivor times out, and writes come back after 4.5 s.
		{ID: 5, Kind: OpValidateConsistent, Node: 0, Invoke: ms(10100), Complete: ms(13100), Outcome: Info, Error: "timeout"},
		{ID: 6, Kind: OpCreate, Node: 2, Invoke: ms(14000), Complete: ms(14500), Outcome: Ok, Status: 200},
	}
	elections := []time.Time{t0.Add(1500 * time.Millisecond), t0.Add(11 * time.Second), t0.Add(12 * time.Second)}
	v, report := CheckLeaderKills(events, ops, elections)
	var retry, unavail []string
	for _, x := range v {
		switch x.Checker {
		case CheckRetryable:
			retry = append(retry, x.Detail)
		case CheckUnavail:
			unavail = append(unavail, x.Detail)
		}
	}
	if len(retry) != 1 || !strings.Contains(retry[0], "op 5") {
		t.Errorf("retryable violations %q, want only op 5 (a timeout on a survivor)", retry)
	}
	// 1.5 s and 4.5 s: the max (4 s) is exceeded, the median (4.5 s, the
	// upper of two) too.
	if len(unavail) != 2 {
		t.Errorf("unavailability violations %q, want the 4.5 s kill and the median", unavail)
	}
	for _, want := range []string{"2 kills", "max 4.5s", "elections/kill mean 1.50 max 2", "forwarding errors/kill mean 1.00 max 2"} {
		if !strings.Contains(report, want) {
			t.Errorf("report %q lacks %q", report, want)
		}
	}
}

func TestCheckPlannedRestarts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	events := []Event{
		{Seq: 0, Nemesis: NemRollingRestart, Start: ms(1000), End: ms(9000), StartWall: t0.Add(time.Second),
			Targets: []int{0, 1, 2}, LeaderStop: t0.Add(3 * time.Second)},
		{Seq: 1, Nemesis: NemRestart, Start: ms(10000), End: ms(12000), StartWall: t0.Add(10 * time.Second), Targets: []int{1}},
	}
	probe := []ProbeOp{
		{Client: 0, Invoke: ms(1500), First: "transport"},
		{Client: 0, Invoke: ms(4000), First: "503"},
		{Client: 1, Invoke: ms(4000), First: "503"},
		{Client: 1, Invoke: ms(10500), First: "transport"},
		{Client: 1, Invoke: ms(10600), First: "transport", Final: "transport"},
		// After the cluster was healthy again (End): not the restart's.
		{Client: 2, Invoke: ms(9500), Complete: ms(9600), First: "transport", Final: "503"},
	}
	elections := []time.Time{t0.Add(3200 * time.Millisecond)}
	v, report := CheckPlannedRestarts(events, probe, elections)
	if len(v) != 2 {
		t.Fatalf("violations %+v, want client 1's final error and its 2 errors for 1 restart", v)
	}
	for _, want := range []string{"4 restarts", "after one retry: 1", "median 200ms"} {
		if !strings.Contains(report, want) {
			t.Errorf("report %q lacks %q", report, want)
		}
	}
}

func TestForwardErrorsDelta(t *testing.T) {
	// Node 0 was restarted (a target), node 2 did not answer afterwards.
	if got := forwardErrorsDelta([]int{5, 1, 2}, []int{0, 4, -1}, []int{0}); got != 3 {
		t.Fatalf("delta = %d, want 3", got)
	}
}

func TestCheckFalseFailures(t *testing.T) {
	ops := []*Op{
		{ID: 1, Kind: OpCreate, Status: 400, Outcome: Fail, Error: `{"errors":["cannot create a token with a duplicate ID"]}`},
		{ID: 2, Kind: OpChildCreate, Status: 400, Outcome: Fail, Error: `{"errors":["parent token lookup failed: no parent found"]}`},
		{ID: 3, Kind: OpRenew, Status: 400, Outcome: Fail, Error: "duplicate ID"},
	}
	if v := CheckFalseFailures(ops); len(v) != 1 || !strings.Contains(v[0].Detail, "op 1") {
		t.Fatalf("violations %+v, want op 1 only", v)
	}
}
