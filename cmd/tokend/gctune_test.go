package main

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, c := range []struct {
		live uint64
		want int
	}{
		{0, gcPercentMax},
		{1 << 10, gcPercentMax},
		{8 << 20, 800},
		{10 << 20, 640},
		{32 << 20, 200},
		{64 << 20, 100},
		{800 << 20, 100},
	} {
		if got := gcPercentFor(c.live); got != c.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", c.live>>20, got, c.want)
		}
	}
}

// TestGCTunerAdjusts: after a collection the tuner has set the percent for
// this (small) test heap, and keeps doing so after later collections.
func TestGCTunerAdjusts(t *testing.T) {
	old := debug.SetGCPercent(gcPercentBase)
	defer debug.SetGCPercent(old)
	startGCTuner("")
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		time.Sleep(10 * time.Millisecond) // the finalizer goroutine runs the tuner
		p := debug.SetGCPercent(-1)
		debug.SetGCPercent(p)
		if p > gcPercentBase {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GC percent still %d after collections", p)
		}
	}
}
