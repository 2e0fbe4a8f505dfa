package config

import (
	"strings"
	"testing"
)

func TestMaxRequestSizeAndTokenRateFlags(t *testing.T) {
	c, err := Load([]string{"-dev", "-max-request-size", "1048576", "-rate-limit-token", "50", "-rate-limit-token-burst", "80"}, nil)
	if err != nil || c.MaxRequestSize != 1<<20 || c.RateLimitToken != 50 || c.RateLimitTokenBurst != 80 {
		t.Fatalf("Load: %v %+v", err, c)
	}
	c, err = Load([]string{"-dev"}, func(k string) string {
		if k == "TOKEND_MAX_REQUEST_SIZE" {
			return "4096"
		}
		return ""
	})
	if err != nil || c.MaxRequestSize != 4096 || c.RateLimitToken != 0 {
		t.Fatalf("Load from env: %v %+v", err, c)
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-max-request-size", "-1"}, "-max-request-size must be between"},
		{[]string{"-max-request-size", "100"}, "-max-request-size must be between"},
		{[]string{"-max-request-size", "2147483648"}, "-max-request-size must be between"},
		{[]string{"-max-request-size", "1MiB"}, "not an integer"},
		{[]string{"-rate-limit-token", "-2"}, "-rate-limit-token must be >= 0"},
		{[]string{"-rate-limit-token-burst", "-2"}, "-rate-limit-token-burst must be >= 0"},
	} {
		_, err := Load(append([]string{"-dev"}, tt.args...), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%v) = %v, want %q", tt.args, err, tt.want)
		}
	}
}
