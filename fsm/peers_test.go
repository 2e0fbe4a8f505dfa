package fsm

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestRemovePeerTombstones(t *testing.T) {
	f := New()
	if f.PeerRemoved("n4", "a") || len(f.RemovedPeers()) != 0 {
		t.Fatal("fresh state has tombstones")
	}
	if r := f.Apply(1, mustEncode(t, RemovePeer{})); !errors.Is(r.Err, ErrInvalidCommand) {
		t.Fatalf("empty server id: %v", r.Err)
	}
	mustApply(t, f, RemovePeer{ServerID: "n4", InstanceID: "a", Time: t0})
	switch {
	case !f.PeerRemoved("n4", "a"):
		t.Error("removed instance not covered")
	case f.PeerRemoved("n4", "b"):
		t.Error("a fresh instance (wiped data dir) of n4 is covered")
	case f.PeerRemoved("n3", "a"):
		t.Error("another server is covered")
	}
	// No instance id known: every instance of the server is refused.
	mustApply(t, f, RemovePeer{ServerID: "n5"})
	if !f.PeerRemoved("n5", "anything") || !f.PeerRemoved("n5", "") {
		t.Error("instance-less tombstone does not cover every instance")
	}
	// A repeated removal replaces, it does not duplicate.
	mustApply(t, f, RemovePeer{ServerID: "n4", InstanceID: "a", Time: t0 + sec})
	ps := f.RemovedPeers()
	if len(ps) != 2 || ps[1].ServerID != "n4" || ps[1].Time != t0+sec {
		t.Fatalf("tombstones after re-removal: %+v", ps)
	}
	ps[0].ServerID = "changed"
	if f.RemovedPeers()[0].ServerID != "n5" {
		t.Fatal("RemovedPeers returned the stored slice")
	}
	// Bounded: the oldest are dropped.
	for i := 0; i < MaxRemovedPeers+5; i++ {
		mustApply(t, f, RemovePeer{ServerID: fmt.Sprintf("x%d", i)})
	}
	ps = f.RemovedPeers()
	if len(ps) != MaxRemovedPeers || ps[len(ps)-1].ServerID != fmt.Sprintf("x%d", MaxRemovedPeers+4) || f.PeerRemoved("n5", "") {
		t.Fatalf("bound: %d tombstones, last %+v", len(ps), ps[len(ps)-1])
	}
}

func TestRemovedPeersSurviveSnapshot(t *testing.T) {
	f := sampleFSM(t)
	before := f.Hash()
	mustApply(t, f, RemovePeer{ServerID: "n4", InstanceID: "a", Time: t0})
	if f.Hash() == before {
		t.Fatal("a tombstone does not change the state hash")
	}
	g := New()
	if err := g.Restore(bytes.NewReader(snapshotBytes(t, f))); err != nil {
		t.Fatal(err)
	}
	if !g.PeerRemoved("n4", "a") || g.PeerRemoved("n4", "b") || g.Hash() != f.Hash() {
		t.Fatalf("restored tombstones %+v, hash equal %v", g.RemovedPeers(), g.Hash() == f.Hash())
	}
}
