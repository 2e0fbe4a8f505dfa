package main

import (
	"testing"
	"time"
)

func TestTestClockOffset(t *testing.T) {
	for _, tt := range []struct {
		v    string
		want time.Duration
		err  bool
	}{
		{"", 0, false}, {"0", 0, false}, {"+30s", 30 * time.Second, false},
		{"-30s", -30 * time.Second, false}, {"1m30s", 90 * time.Second, false}, {"soon", 0, true},
	} {
		t.Setenv("TOKEND_TEST_CLOCK_OFFSET", tt.v)
		clock, d, err := testClock()
		if (err != nil) != tt.err || d != tt.want || (clock == nil) != (tt.want == 0) {
			t.Errorf("%q: offset %s, clock set %v, err %v", tt.v, d, clock != nil, err)
			continue
		}
		if clock == nil {
			continue
		}
		before := time.Now()
		got := clock()
		after := time.Now()
		if got.Before(before.Add(d)) || got.After(after.Add(d)) {
			t.Errorf("%q: clock %s not within [%s, %s] shifted", tt.v, got, before, after)
		}
		// Durations between shifted reads use the monotonic clock: the
		// shift does not leak into them.
		if e := clock().Sub(got); e < 0 || e > time.Second {
			t.Errorf("%q: elapsed between two reads %s", tt.v, e)
		}
	}
}
