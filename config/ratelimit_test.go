package config

import (
	"math"
	"strings"
	"testing"
)

func TestValidRate(t *testing.T) {
	for _, tt := range []struct {
		rate  float64
		burst int
		want  string
	}{
		{0, 0, ""},
		{0, 4000, ""},
		{20, 100, ""},
		{0.5, 1, ""},
		{-1, 10, "-x must be >= 0"},
		{math.NaN(), 10, "-x must be >= 0"},
		{5, 0, "-x-burst must be >= 1 when -x is set"},
		{0, -1, "-x-burst must be >= 0"},
	} {
		err := validRate("x", tt.rate, tt.burst)
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("validRate(%v, %d) = %v, want %q", tt.rate, tt.burst, err, tt.want)
		}
	}
	for _, args := range [][]string{{"-rate-limit", "abc"}, {"-rate-limit", "Inf"}, {"-rate-limit-bad-auth", "-3"}, {"-rate-limit-burst", "1.5"}} {
		if _, err := Load(append([]string{"-dev"}, args...), nil); err == nil {
			t.Errorf("Load(%v) accepted", args)
		}
	}
	c, err := Load([]string{"-dev", "-rate-limit", "2000", "-rate-limit-burst", "4000"}, func(k string) string {
		if k == "TOKEND_RATE_LIMIT_BAD_AUTH" {
			return "5"
		}
		return ""
	})
	if err != nil || c.RateLimit != 2000 || c.RateLimitBurst != 4000 || c.RateLimitBadAuth != 5 || c.RateLimitBadAuthBurst != DefaultRateLimitBadAuthBurst {
		t.Fatalf("Load: %v %+v", err, c)
	}
}
