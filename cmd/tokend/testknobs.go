package main

import (
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
