package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// gcHeadroom is how far the heap may grow past the live heap before the
// next collection, at least: while the live heap is small (a few thousand
// tokens: a few MiB), GOGC=100 alone collects every few MiB allocated,
// which under load is several collections a second and 10–18% of a node's
// CPU (make bench-cluster profiles). With the headroom a small heap is
// collected every 64 MiB allocated; once the live heap is larger than the
// headroom, plain GOGC=100 applies, so the peak heap stays at most
// max(2 × live, live + 64 MiB).
const gcHeadroom = 64 << 20

// gcPercentBase is the GOGC the tuner never goes below (Go's default).
const gcPercentBase = 100

// gcPercentMax bounds the percent for a nearly empty heap.
const gcPercentMax = 10000

var gcTunerOnce sync.Once

// startGCTuner makes the collector keep gcHeadroom of headroom above the
// live heap (see gcHeadroom), re-deciding after every collection. An
// explicit GOGC in the environment (gogc) wins: then the tuner does nothing.
func startGCTuner(gogc string) {
	if gogc != "" {
		return
	}
	gcTunerOnce.Do(func() {
		t := &gcTuner{last: gcPercentBase}
		// The pacer's goal is live + (live + stacks + globals) × GOGC/100.
		t.sample = []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
		t.arm()
	})
}

// gcTuner re-arms itself as a finalizer: the finalizer of an unreachable
// sentinel runs once after each collection, the moment the live heap of
// that collection is known.
type gcTuner struct {
	sample []metrics.Sample
	last   int
}

// gcSentinel holds a pointer, so it is never a tiny allocation (the
// finalizer of an object batched into a tiny block may never run).
type gcSentinel struct {
	t *gcTuner
}

func (t *gcTuner) arm() {
	s := &gcSentinel{t: t}
	runtime.SetFinalizer(s, func(s *gcSentinel) {
		s.t.tune()
		s.t.arm()
	})
}

func (t *gcTuner) tune() {
	metrics.Read(t.sample)
	var scan uint64
	for _, s := range t.sample {
		if s.Value.Kind() != metrics.KindUint64 {
			return
		}
		scan += s.Value.Uint64()
	}
	if p := gcPercentFor(scan); p != t.last {
		debug.SetGCPercent(p)
		t.last = p
	}
}

// gcPercentFor returns the GOGC that puts the next collection at about
// gcHeadroom above the live heap, but never below gcPercentBase; scan is
// what the pacer scales by GOGC (live heap, stacks and globals).
func gcPercentFor(scan uint64) int {
	if scan == 0 {
		return gcPercentMax
	}
	p := uint64(gcHeadroom) * 100 / scan
	switch {
	case p < gcPercentBase:
		return gcPercentBase
	case p > gcPercentMax:
		return gcPercentMax
	}
	// Steps of 10%: a heap that wobbles does not reset the pacer each cycle.
	return int(p / 10 * 10)
}
