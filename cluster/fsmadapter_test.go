package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/fsm"
)

// TestApplyBatch checks the BatchingFSM path: every command of a batch is
// applied in order with its own result, configuration entries only
// advance the index, and the applied index (and its waiters) move once,
// to the last entry of the batch.
func TestApplyBatch(t *testing.T) {
	a := newRaftFSM(fsm.New())
	c1, h1 := newToken(t, time.Hour)
	c2, h2 := newToken(t, time.Hour)
	enc := func(c fsm.Command) []byte {
		b, err := fsm.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	waited := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		waited <- a.await(ctx, 13)
	}()
	logs := []*raft.Log{
		{Index: 10, Type: raft.LogConfiguration},
		{Index: 11, Type: raft.LogCommand, Data: enc(c1)},
		{Index: 12, Type: raft.LogCommand, Data: enc(c1)}, // the same token again: refused
		{Index: 13, Type: raft.LogCommand, Data: enc(c2)},
	}
	out := a.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("%d responses for %d entries", len(out), len(logs))
	}
	if out[0] != nil {
		t.Errorf("configuration entry response %v, want nil", out[0])
	}
	for i, want := range []string{h1, "", h2} {
		res, ok := out[i+1].(fsm.Result)
		if !ok {
			t.Fatalf("response %d is %T", i+1, out[i+1])
		}
		if want == "" {
			if res.Err == nil {
				t.Errorf("duplicate create at index 12 accepted")
			}
			continue
		}
		if res.Err != nil || res.Token == nil || res.Token.Hash != want {
			t.Errorf("response %d: %+v", i+1, res)
		}
	}
	if _, ok := a.f.Token(h2); !ok {
		t.Error("second token not in the state")
	}
	if got := a.appliedIndex(); got != 13 {
		t.Errorf("applied index %d, want 13", got)
	}
	if err := <-waited; err != nil {
		t.Errorf("await(13): %v", err)
	}
	// An empty batch changes nothing.
	if out := a.ApplyBatch(nil); len(out) != 0 || a.appliedIndex() != 13 {
		t.Errorf("empty batch: %v, applied %d", out, a.appliedIndex())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := a.await(ctx, 14); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("await(14) before it was applied: %v", err)
	}
}

// memSink is a raft.SnapshotSink into memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string    { return "mem" }
func (*memSink) Cancel() error { return nil }
func (*memSink) Close() error  { return nil }

// snapshotAt persists a's current state as raft would.
func snapshotAt(t *testing.T, a *raftFSM) []byte {
	t.Helper()
	s, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var sink memSink
	if err := s.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	return sink.Bytes()
}

// TestRestoreRefusesSnapshotNotNewerThanApplied: a snapshot at or below the
// applied index is refused and leaves state and index alone (restoring it
// moved a follower serving reads back in time: test/chaos T5, where a
// leader's stopped replication goroutine re-sent an old snapshot after the
// re-added follower had caught up); a newer one restores, and so does any
// snapshot into an empty state (the node's own at start).
func TestRestoreRefusesSnapshotNotNewerThanApplied(t *testing.T) {
	enc := func(c fsm.Command) []byte {
		b, err := fsm.Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := newRaftFSM(fsm.New())
	c1, h1 := newToken(t, time.Hour)
	c2, h2 := newToken(t, time.Hour)
	a.ApplyBatch([]*raft.Log{{Index: 10, Type: raft.LogCommand, Data: enc(c1)}})
	old := snapshotAt(t, a)
	a.ApplyBatch([]*raft.Log{{Index: 20, Type: raft.LogCommand, Data: enc(c2)}})
	newer := snapshotAt(t, a)
	before := a.f.Digest()
	for name, snap := range map[string][]byte{"older": old, "same index": newer} {
		err := a.Restore(io.NopCloser(bytes.NewReader(snap)))
		if !errors.Is(err, errStaleSnapshot) {
			t.Fatalf("%s snapshot: err %v, want errStaleSnapshot", name, err)
		}
		if a.appliedIndex() != 20 || a.f.Digest() != before {
			t.Fatalf("%s snapshot changed the state: applied %d", name, a.appliedIndex())
		}
		if _, ok := a.f.Token(h2); !ok {
			t.Fatalf("%s snapshot removed the newer token", name)
		}
	}
	// An empty state (start-up) takes either; a state behind takes a newer one.
	b := newRaftFSM(fsm.New())
	if err := b.Restore(io.NopCloser(bytes.NewReader(old))); err != nil || b.appliedIndex() != 10 {
		t.Fatalf("restore into an empty state: %v, applied %d", err, b.appliedIndex())
	}
	if _, ok := b.f.Token(h1); !ok {
		t.Fatal("restored state misses the token")
	}
	if err := b.Restore(io.NopCloser(bytes.NewReader(newer))); err != nil || b.appliedIndex() != 20 || b.f.Digest() != before {
		t.Fatalf("restore of a newer snapshot: %v, applied %d", err, b.appliedIndex())
	}
}
