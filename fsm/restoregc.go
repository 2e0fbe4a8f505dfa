package fsm

import (
	"runtime/debug"
	"sync"
)

// A restore builds the whole state at once: for a million tokens about
// 900 MB of records and index entries, nearly all of which stay live. With
// the collector on, the heap doubles through the pacer's goals a dozen
// times on the way, and each cycle marks everything built so far (about
// twice the final heap in all, a third or more of the restore's CPU in
// BenchmarkSnapshot1M) only to find almost no garbage. So a version-2 restore runs with the collector paused. What
// it allocates that does not stay live is bounded by the stream (one
// parent-hash copy per child, the sort buffers): about 10% of the state,
// less than the headroom the pacer would have let the heap grow into
// anyway. A memory limit (GOMEMLIMIT) still applies while paused. When the
// collector resumes, the next allocation starts a cycle that marks the new
// state once, concurrently with the node starting to serve.

var (
	gcPauseMu    sync.Mutex
	gcPauseCount int // restores running with the collector paused
	gcPaused     int // the GC percent to restore when the last one ends
)

// pauseGC pauses garbage collection until the returned func is called.
// Concurrent restores (tests) share one pause: the first saves the
// setting, the last puts it back.
func pauseGC() (resume func()) {
	gcPauseMu.Lock()
	if gcPauseCount == 0 {
		gcPaused = debug.SetGCPercent(-1)
	}
	gcPauseCount++
	gcPauseMu.Unlock()
	return func() {
		gcPauseMu.Lock()
		gcPauseCount--
		if gcPauseCount == 0 {
			debug.SetGCPercent(gcPaused)
		}
		gcPauseMu.Unlock()
	}
}
