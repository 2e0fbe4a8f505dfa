package fsm

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// DefaultMaxTTL is Vault's system default (and max) lease TTL, 768h, in
// seconds. RenewToken uses it when the command carries no MaxTTL.
const DefaultMaxTTL int64 = 768 * 3600

// CalculateTTL is Vault's sdk/framework CalculateTTL (VAULT-API.md §2.6),
// shared by the HTTP layer at create time and by RenewToken at apply time.
//
// Durations are whole seconds; start (the lease's issue time) and now are
// Unix nanoseconds. sysMax is the system max lease TTL and also serves as the
// system default TTL (tokend, like Vault's defaults, uses one value for both).
// backendMax is the tuned mount max (0 = untuned), explicitMax the token's
// explicit max TTL, period its period, backendTTL the requested (at create)
// or last granted (at renew) TTL, increment the renew increment (0 at
// create). Negative durations count as 0.
//
//	maxTTL = min over the positive values of sysMax, backendMax, explicitMax
//	period > 0: ttl = min(period, maxTTL); lifetime bounded by start+explicitMax if set
//	otherwise:  ttl = increment, else backendTTL, else sysMax; bounded by start+maxTTL
//	a ttl beyond the bound is capped (with Vault's warning); a bound already
//	reached is ErrPastMaxTTL.
//
// Errors: ErrInvalidMaxTTL when maxTTL <= 0, ErrPastMaxTTL when the bound has
// passed. The function is pure: it reads no clock.
func CalculateTTL(increment, backendTTL, period, backendMax, explicitMax, sysMax int64, start, now int64) (ttl int64, warnings []string, err error) {
	increment, backendTTL, period = max(increment, 0), max(backendTTL, 0), max(period, 0)
	backendMax, explicitMax = max(backendMax, 0), max(explicitMax, 0)

	maxTTL := sysMax
	if backendMax > 0 && backendMax < maxTTL {
		maxTTL = backendMax
	}
	if explicitMax > 0 && explicitMax < maxTTL {
		maxTTL = explicitMax
	}
	if maxTTL <= 0 {
		return 0, nil, ErrInvalidMaxTTL
	}

	var maxValid int64
	bounded := false
	if period > 0 {
		ttl = period
		if ttl > maxTTL {
			warnings = append(warnings, fmt.Sprintf("period of %q exceeded the effective max_ttl of %q; period value is capped accordingly",
				humanDuration(period), humanDuration(maxTTL)))
			ttl = maxTTL
		}
		if explicitMax > 0 {
			maxValid, bounded = addSeconds(start, explicitMax), true
		}
	} else {
		switch {
		case increment > 0:
			ttl = increment
		case backendTTL > 0:
			ttl = backendTTL
		default:
			ttl = sysMax
		}
		maxValid, bounded = addSeconds(start, maxTTL), true
	}

	if bounded {
		remaining := satSub(maxValid, now)
		// Whole seconds, truncated, as Vault does; less than one second
		// left is as good as none.
		remainingSec := remaining / int64(time.Second)
		if remaining <= 0 || remainingSec <= 0 {
			return 0, nil, ErrPastMaxTTL
		}
		if ttl > remainingSec {
			warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the effective max_ttl of %q; TTL value is capped accordingly",
				humanDuration(ttl), humanDuration(remainingSec)))
			ttl = remainingSec
		}
	}
	return ttl, warnings, nil
}

// humanDuration formats seconds the way Vault's warnings do: Go's duration
// string without trailing zero units ("768h", "1h30m", "59m59s").
func humanDuration(sec int64) string {
	if sec == 0 {
		return "0s"
	}
	var d time.Duration
	if sec > math.MaxInt64/int64(time.Second) {
		d = time.Duration(math.MaxInt64)
	} else {
		d = time.Duration(sec) * time.Second
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

// addSeconds returns t (Unix ns) plus sec seconds, saturating at the int64
// range so a hostile command cannot wrap a time around.
func addSeconds(t, sec int64) int64 {
	if sec > math.MaxInt64/int64(time.Second) {
		return satAdd(t, math.MaxInt64)
	}
	if sec < math.MinInt64/int64(time.Second) {
		return satAdd(t, math.MinInt64)
	}
	return satAdd(t, sec*int64(time.Second))
}

func satAdd(a, b int64) int64 {
	s := a + b
	if a > 0 && b > 0 && s < 0 {
		return math.MaxInt64
	}
	if a < 0 && b < 0 && s >= 0 {
		return math.MinInt64
	}
	return s
}

func satSub(a, b int64) int64 {
	if b == math.MinInt64 {
		if a >= 0 {
			return math.MaxInt64
		}
		return a - b
	}
	return satAdd(a, -b)
}
