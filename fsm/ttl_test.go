package fsm

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestCalculateTTL(t *testing.T) {
	const h768 = DefaultMaxTTL
	for _, tc := range []struct {
		name                                                        string
		increment, backendTTL, period, backendMax, explicitMax, sys int64
		start, now                                                  int64
		want                                                        int64
		warnings                                                    []string
		err                                                         error
		anyWarnings                                                 bool
	}{
		{name: "create_no_ttl_gets_system_default", sys: h768, start: t0, now: t0, want: h768},
		{name: "create_ttl_over_max_is_capped", backendTTL: 2000 * 3600, sys: h768, start: t0, now: t0, want: h768,
			warnings: []string{`TTL of "2000h" exceeded the effective max_ttl of "768h"; TTL value is capped accordingly`}},
		{name: "create_ttl_capped_by_explicit_max", backendTTL: 3600, explicitMax: 1800, sys: h768, start: t0, now: t0, want: 1800,
			warnings: []string{`TTL of "1h" exceeded the effective max_ttl of "30m"; TTL value is capped accordingly`}},
		{name: "create_period", period: 24 * 3600, sys: h768, start: t0, now: t0, want: 24 * 3600},
		{name: "create_period_over_max", period: 1000 * 3600, sys: h768, start: t0, now: t0, want: h768,
			warnings: []string{`period of "1000h" exceeded the effective max_ttl of "768h"; period value is capped accordingly`}},
		{name: "create_period_over_explicit_max", period: 7200, explicitMax: 3600, sys: h768, start: t0, now: t0, want: 3600,
			warnings: []string{`period of "2h" exceeded the effective max_ttl of "1h"; period value is capped accordingly`}},
		{name: "backend_max_caps", backendTTL: 7200, backendMax: 3600, sys: h768, start: t0, now: t0, want: 3600,
			warnings: []string{`TTL of "2h" exceeded the effective max_ttl of "1h"; TTL value is capped accordingly`}},
		{name: "renew_increment_wins_over_last_ttl", increment: 7200, backendTTL: 3600, sys: h768, start: t0, now: t0 + hour, want: 7200},
		{name: "renew_remaining_is_truncated_to_seconds", increment: 7200, sys: 3600, start: t0, now: t0 + 1800*sec + sec/2, want: 1799,
			warnings: []string{`TTL of "2h" exceeded the effective max_ttl of "29m59s"; TTL value is capped accordingly`}},
		{name: "renew_past_max", increment: 10, sys: 3600, start: t0, now: t0 + hour, err: ErrPastMaxTTL},
		{name: "renew_less_than_a_second_left", increment: 10, sys: 3600, start: t0, now: t0 + hour - 1, err: ErrPastMaxTTL},
		{name: "periodic_without_explicit_max_is_unbounded", period: 600, sys: h768, start: t0, now: t0 + 100000*hour, want: 600},
		{name: "periodic_past_explicit_max", period: 600, explicitMax: 3600, sys: h768, start: t0, now: t0 + hour, err: ErrPastMaxTTL},
		{name: "zero_max", sys: 0, err: ErrInvalidMaxTTL},
		{name: "negative_inputs_count_as_zero", increment: -5, backendTTL: -5, period: -5, sys: 100, start: t0, now: t0, want: 100},
		{name: "huge_values_saturate", backendTTL: 1 << 62, sys: 1 << 62, start: t0, now: t0, want: (math.MaxInt64 - t0) / sec, anyWarnings: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings, err := CalculateTTL(tc.increment, tc.backendTTL, tc.period, tc.backendMax, tc.explicitMax, tc.sys, tc.start, tc.now)
			if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, tc.err)
			}
			if got != tc.want || (!tc.anyWarnings && !slices.Equal(warnings, tc.warnings)) {
				t.Fatalf("got %d %q, want %d %q", got, warnings, tc.want, tc.warnings)
			}
		})
	}
}

func TestHumanDuration(t *testing.T) {
	for sec, want := range map[int64]string{0: "0s", 1: "1s", 60: "1m", 3600: "1h", 5400: "1h30m", 3599: "59m59s", 768 * 3600: "768h", 3601: "1h0m1s"} {
		if got := humanDuration(sec); got != want {
			t.Errorf("humanDuration(%d) = %q, want %q", sec, got, want)
		}
	}
}
