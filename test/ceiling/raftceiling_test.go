package ceiling

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tokend/tokend/fsm"
)

// createTokenEntry encodes a representative CreateToken entry: what
// auth/token/create with {"ttl":"1h"} and the root token proposes.
func createTokenEntry(t testing.TB) []byte {
	t.Helper()
	now := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC).UnixNano()
	hs, err := fsm.NewHasher([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	tok := fsm.Token{
		Hash:         hs.Hash("hvs." + strings.Repeat("A", 24)),
		Accessor:     strings.Repeat("b", 24),
		Parent:       hs.Hash("root"),
		Policies:     []string{"root"},
		DisplayName:  "token",
		Path:         "auth/token/create",
		CreationTime: now,
		CreationTTL:  3600,
		TTL:          3600,
		ExpireTime:   now + 3600*int64(time.Second),
		IssueTime:    now,
		Renewable:    true,
		Type:         fsm.TokenTypeService,
	}
	b, err := fsm.Encode(fsm.CreateToken{Token: tok, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEntrySize prints the size of a tokend CreateToken entry and checks
// that DefaultEntrySize (the default of cmd/raftceiling) still matches it.
func TestEntrySize(t *testing.T) {
	n := len(createTokenEntry(t))
	t.Logf("CreateToken entry: %d bytes (DefaultEntrySize %d)", n, DefaultEntrySize)
	// A small drift (a new optional field) does not change the ceiling
	// measurably; a large one means DefaultEntrySize must be re-measured.
	if d := n - DefaultEntrySize; d > DefaultEntrySize/10 || -d > DefaultEntrySize/10 {
		t.Errorf("CreateToken entry is %d bytes, DefaultEntrySize is %d: update it", n, DefaultEntrySize)
	}
}

func TestClusterAppliesAndCloses(t *testing.T) {
	defer goleak.VerifyNone(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Start(ctx, t.TempDir(), 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	const total = 200
	res, err := c.Load(ctx, 8, DefaultEntrySize, 0, total)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	if res.Applies+res.Errors != total || res.Applies == 0 {
		t.Errorf("applies %d + errors %d, want %d in total", res.Applies, res.Errors, total)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.Max < res.P99 || res.AppliesPerSec <= 0 {
		t.Errorf("implausible result %+v", res)
	}
	// Every node's state machine catches up with the leader's.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		applied := c.Applied()
		if slices.Min(applied) == uint64(res.Applies) {
			break
		}
		select {
		case <-ctx.Done():
			c.Close()
			t.Fatalf("followers did not catch up: applied %v, want %d each", applied, res.Applies)
		case <-tick.C:
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	res, err := Run(context.Background(), 3, 4, 100, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.Nodes != 3 || res.Proposers != 4 || res.EntrySize != 100 || res.Applies == 0 {
		t.Errorf("unexpected result %+v", res)
	}
}

func TestLoadRejectsBadArguments(t *testing.T) {
	c := &Cluster{}
	if _, err := c.Load(context.Background(), 0, 10, time.Second, 0); err == nil {
		t.Error("zero proposers accepted")
	}
	if _, err := c.Load(context.Background(), 1, 10, 0, 0); err == nil {
		t.Error("neither duration nor count accepted")
	}
}

// BenchmarkRaftCeiling is reference ceiling (b) of issue 5: a raw 3-node
// raft + raft-boltdb/v2 cluster applying CreateToken-sized commands from 64
// concurrent proposers (benchConcurrency of test/bench_test.go). Compare its
// applies/s with BenchmarkClusterCreate's creates/s from the same run.
func BenchmarkRaftCeiling(b *testing.B) {
	const proposers = 64
	size := len(createTokenEntry(b))
	ctx := context.Background()
	c, err := Start(ctx, b.TempDir(), 3, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	b.ResetTimer()
	res, err := c.Load(ctx, proposers, size, 0, max(b.N, proposers))
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(res.AppliesPerSec, "applies/s")
	b.ReportMetric(float64(res.P50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(res.P99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(size), "entry-bytes")
}
