package faultproxy

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Direction selects which way of a link a fault applies to.
type Direction int

const (
	// Forward is the client-to-target way: bytes or datagrams sent to the
	// proxy's listen address and relayed to the target.
	Forward Direction = 1 << iota
	// Backward is the target-to-client way: replies relayed back.
	Backward
	// Both is Forward and Backward together.
	Both = Forward | Backward
)

// String returns "forward", "backward" or "both".
func (d Direction) String() string {
	switch d {
	case Forward:
		return "forward"
	case Backward:
		return "backward"
	case Both:
		return "both"
	default:
		return fmt.Sprintf("Direction(%d)", int(d))
	}
}

// indexes returns the per-direction slots (0 forward, 1 backward) d covers.
// An invalid Direction is a programmer error and panics.
func (d Direction) indexes() []int {
	switch d {
	case Forward:
		return []int{0}
	case Backward:
		return []int{1}
	case Both:
		return []int{0, 1}
	default:
		panic(fmt.Sprintf("faultproxy: invalid direction %d", int(d)))
	}
}

// dirFault is the fault setting of one direction.
type dirFault struct {
	cut    bool
	mean   time.Duration
	jitter time.Duration
	drop   float64
	// wake is closed and replaced on every change, so waiters (a stalled
	// relay) re-read the setting.
	wake chan struct{}
}

// control holds the fault settings shared by every connection of a proxy.
// Settings can change at any time; relays read them per chunk or datagram.
type control struct {
	mu   sync.Mutex
	seed uint64
	dirs [2]dirFault
}

func newControl() *control {
	c := &control{seed: 1}
	for i := range c.dirs {
		c.dirs[i].wake = make(chan struct{})
	}
	return c
}

// update applies f to every direction in d and wakes the waiters.
func (c *control) update(d Direction, f func(*dirFault)) {
	idx := d.indexes()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range idx {
		f(&c.dirs[i])
		close(c.dirs[i].wake)
		c.dirs[i].wake = make(chan struct{})
	}
}

// get returns a copy of direction i's setting (wake included).
func (c *control) get(i int) dirFault {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dirs[i]
}

func (c *control) getSeed() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seed
}

func (c *control) cut(d Direction)  { c.update(d, func(f *dirFault) { f.cut = true }) }
func (c *control) heal(d Direction) { c.update(d, func(f *dirFault) { *f = dirFault{wake: f.wake} }) }

func (c *control) delay(d Direction, mean, jitter time.Duration) {
	mean, jitter = max(mean, 0), max(jitter, 0)
	c.update(d, func(f *dirFault) { f.mean, f.jitter = mean, jitter })
}

func (c *control) setDrop(d Direction, p float64) {
	if p != p || p < 0 { // NaN or negative
		p = 0
	}
	p = min(p, 1)
	c.update(d, func(f *dirFault) { f.drop = p })
}

// sampleDelay draws mean ± jitter (uniform, never negative) from r.
func sampleDelay(r *rand.Rand, mean, jitter time.Duration) time.Duration {
	if jitter <= 0 {
		return mean
	}
	return max(mean+time.Duration(r.Int64N(2*int64(jitter)+1))-jitter, 0)
}

// shouldDrop reports whether to drop with probability p, drawing from r only
// when 0 < p < 1 so a fault-free run draws nothing.
func shouldDrop(r *rand.Rand, p float64) bool {
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	default:
		return r.Float64() < p
	}
}

// DirStats counts the traffic of one direction. For TCP a "packet" is one
// chunk as returned by a single Read of the source connection.
type DirStats struct {
	// Bytes and Packets were written to the destination.
	Bytes, Packets uint64
	// DroppedBytes and DroppedPackets were discarded by Drop, by a cut (UDP
	// only), by a full queue (UDP only) or by Reset/Close while queued.
	DroppedBytes, DroppedPackets uint64
}

// Stats is a snapshot of a proxy's counters.
type Stats struct {
	// Forward and Backward are the per-direction counters.
	Forward, Backward DirStats
	// Accepted is the number of TCP connections accepted (0 for UDP).
	Accepted uint64
	// Live is the number of TCP connections currently open (0 for UDP).
	Live int
}

type dirCounters struct {
	bytes, packets, droppedBytes, droppedPackets atomic.Uint64
}

func (c *dirCounters) sent(n int) {
	c.bytes.Add(uint64(n))
	c.packets.Add(1)
}

func (c *dirCounters) dropped(n int) {
	c.droppedBytes.Add(uint64(n))
	c.droppedPackets.Add(1)
}

func (c *dirCounters) snapshot() DirStats {
	return DirStats{
		Bytes:          c.bytes.Load(),
		Packets:        c.packets.Load(),
		DroppedBytes:   c.droppedBytes.Load(),
		DroppedPackets: c.droppedPackets.Load(),
	}
}
