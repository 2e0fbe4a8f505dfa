package main

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// The latency histogram of tokend bench is log-linear, in the spirit of
// HdrHistogram: values (nanoseconds) below 2^(histSubBits+1) have a bucket
// each; above, every power of two is split into 2^histSubBits equal
// buckets, so a recorded value is known to within 1/128 (< 0.8%) whatever
// its size. Memory is fixed (histBuckets counters, about 34 KiB) however
// many values are recorded, and recording is one atomic add, so every
// worker records into the same histogram without a lock.
const (
	histSubBits  = 7
	histSubCount = 1 << histSubBits // buckets per power of two
	histLinear   = 2 * histSubCount // values below this are exact
	histMaxBits  = 40               // values are capped at 2^40-1 ns (about 18 minutes)
	histMax      = 1<<histMaxBits - 1
	histBuckets  = histLinear + (histMaxBits-histSubBits-1)*histSubCount
)

// histIndex is the bucket of value v (v <= histMax).
func histIndex(v uint64) int {
	if v < histLinear {
		return int(v)
	}
	shift := bits.Len64(v) - (histSubBits + 1) // >= 1: v>>shift is in [128, 256)
	return histLinear + (shift-1)*histSubCount + int(v>>shift) - histSubCount
}

// histUpper is the highest value that falls in bucket i.
func histUpper(i int) uint64 {
	if i < histLinear {
		return uint64(i)
	}
	shift := (i-histLinear)/histSubCount + 1
	top := uint64((i-histLinear)%histSubCount + histSubCount)
	return (top+1)<<shift - 1
}

// histogram counts latencies; safe for concurrent use. The zero value is
// ready.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	total  atomic.Uint64
	sum    atomic.Uint64 // nanoseconds; overflows only after ~584 years of latency
	max    atomic.Uint64
}

// record adds one latency.
func (h *histogram) record(d time.Duration) {
	v := uint64(max(d, 0))
	v = min(v, histMax)
	h.counts[histIndex(v)].Add(1)
	h.total.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
}

// snapshot copies the counters. Taken while others record, it may be off by
// the few values in flight; the final report is taken after every worker
// has stopped.
func (h *histogram) snapshot() *histSnapshot {
	s := &histSnapshot{total: h.total.Load(), sum: h.sum.Load(), max: h.max.Load()}
	for i := range h.counts {
		s.counts[i] = h.counts[i].Load()
	}
	return s
}

// histSnapshot is a plain copy of a histogram, for percentiles.
type histSnapshot struct {
	counts [histBuckets]uint64
	total  uint64
	sum    uint64
	max    uint64
}

// quantile returns the value at quantile q (0 < q <= 1): the highest value
// of the bucket holding the ceil(q*total)-th smallest value, never more
// than the recorded maximum. It is 0 for an empty histogram.
func (s *histSnapshot) quantile(q float64) time.Duration {
	if s.total == 0 {
		return 0
	}
	rank := uint64(q*float64(s.total) + 0.999999999)
	rank = max(rank, 1)
	rank = min(rank, s.total)
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histUpper(i), s.max))
		}
	}
	return time.Duration(s.max)
}

// mean is the average recorded value (0 when empty).
func (s *histSnapshot) mean() time.Duration {
	if s.total == 0 {
		return 0
	}
	return time.Duration(s.sum / s.total)
}
