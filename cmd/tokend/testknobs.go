package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/tokend/tokend/cluster"
)

// testTiming reads the test-only knob TOKEND_TEST_SNAPSHOT_THRESHOLD: with
// N > 0 raft snapshots after N entries (checked every second) and keeps N/2
// entries behind a snapshot, so real-process tests see snapshots (and
// InstallSnapshot) within seconds. Unset, the production timing applies.
func testTiming() cluster.Timing {
	n, err := strconv.ParseUint(os.Getenv("TOKEND_TEST_SNAPSHOT_THRESHOLD"), 10, 64)
	if err != nil || n == 0 {
		return cluster.Timing{}
	}
	return cluster.Timing{SnapshotThreshold: n, TrailingLogs: max(n/2, 1), SnapshotInterval: time.Second}
}

// testClock reads the test-only knob TOKEND_TEST_CLOCK_OFFSET, a signed Go
// duration ("+30s", "-30s", "1m30s"): every wall-clock read that decides a
// token time (httpapi's Now: creation, expiry checks, renewal, uses, audit
// times; the leader's reaper) is shifted by it, so one machine can play
// nodes with skewed clocks (RELIABILITY.md T8). Raft, read leases and every
// timeout keep reading time.Now and never see a shifted value (durations
// between two shifted reads are unchanged anyway: time.Now().Add shifts the
// monotonic reading too). Unset or "0": nil (the real clock). A value
// that does not parse is an error, so a test never runs unskewed by
// mistake.
func testClock() (func() time.Time, time.Duration, error) {
	v := os.Getenv("TOKEND_TEST_CLOCK_OFFSET")
	if v == "" {
		return nil, 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return nil, 0, fmt.Errorf("TOKEND_TEST_CLOCK_OFFSET %q: %w", v, err)
	}
	if d == 0 {
		return nil, 0, nil
	}
	return func() time.Time { return time.Now().Add(d) }, d, nil
}
