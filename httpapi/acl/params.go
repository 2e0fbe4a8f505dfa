package acl

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// checkParams enforces required, denied and allowed parameters (Vault's
// AllowOperation); "" when the request passes. When several parameters fail
// the reason names the smallest one, so the reason is deterministic despite
// map iteration order.
func (pm *perms) checkParams(params map[string]any) string {
	for _, r := range pm.required {
		if _, ok := params[strings.ToLower(r)]; !ok {
			return fmt.Sprintf("rule %q requires parameter %q", pm.pattern, r)
		}
	}
	if len(params) == 0 {
		return ""
	}
	if len(pm.denied) > 0 {
		if _, ok := pm.denied["*"]; ok {
			return fmt.Sprintf("rule %q denies all parameters", pm.pattern)
		}
		bad, found := "", false
		for k, v := range params {
			if list, ok := pm.denied[strings.ToLower(k)]; ok && inDenied(v, list) {
				if !found || k < bad {
					bad, found = k, true
				}
			}
		}
		if found {
			return fmt.Sprintf("rule %q denies parameter %q", pm.pattern, bad)
		}
	}
	if len(pm.allowed) == 0 {
		return ""
	}
	_, allowAll := pm.allowed["*"]
	if allowAll && len(pm.allowed) == 1 {
		return ""
	}
	bad, found := "", false
	for k, v := range params {
		list, ok := pm.allowed[strings.ToLower(k)]
		if (!ok && !allowAll) || (ok && !inAllowed(v, list)) {
			if !found || k < bad {
				bad, found = k, true
			}
		}
	}
	if found {
		return fmt.Sprintf("rule %q does not allow parameter %q or its value", pm.pattern, bad)
	}
	return ""
}

// inAllowed reports whether v is allowed by list: an empty list allows any
// value; a list or comma-separated string is allowed when every element is.
func inAllowed(v any, list []any) bool {
	if len(list) == 0 || inList(v, list) {
		return true
	}
	elems, ok := elements(v)
	if !ok {
		return false
	}
	for _, e := range elems {
		if !inList(e, list) {
			return false
		}
	}
	return true
}

// inDenied reports whether v is denied by list: an empty list denies any
// value; a list or comma-separated string is denied when any element is.
func inDenied(v any, list []any) bool {
	if len(list) == 0 || inList(v, list) {
		return true
	}
	elems, _ := elements(v)
	for _, e := range elems {
		if inList(e, list) {
			return true
		}
	}
	return false
}

// elements splits a multi-valued parameter: a JSON list, or a string taken
// as a comma-separated list (Vault assumes it might be a comma string slice:
// failing to match an element is worse than matching a substring).
func elements(v any) ([]any, bool) {
	switch t := v.(type) {
	case []any:
		return t, true
	case []string:
		out := make([]any, len(t))
		for i, s := range t {
			out[i] = s
		}
		return out, true
	case string:
		if t == "" {
			return nil, true
		}
		parts := strings.Split(t, ",")
		out := make([]any, len(parts))
		for i, s := range parts {
			out[i] = strings.TrimSpace(s)
		}
		return out, true
	}
	return nil, false
}

// inList reports whether v equals an element of list: strings match with
// Vault's globs ("foo*", "*foo", "*foo*"), numbers by value whatever their
// Go type (HCL gives int, JSON float64 or json.Number), anything else
// deeply.
func inList(v any, list []any) bool {
	for _, el := range list {
		if el == nil || v == nil {
			if el == nil && v == nil {
				return true
			}
			continue
		}
		if es, ok := el.(string); ok {
			if vs, ok := v.(string); ok && globMatch(es, vs) {
				return true
			}
			continue
		}
		if ef, ok := number(el); ok {
			if vf, ok := number(v); ok && ef == vf {
				return true
			}
			continue
		}
		if reflect.DeepEqual(el, v) {
			return true
		}
	}
	return false
}

func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case float64:
		return n, true
	case json.Number:
		f, err := strconv.ParseFloat(string(n), 64)
		return f, err == nil
	}
	return 0, false
}

// globMatch is Vault's strutil.GlobbedStringsMatch: a leading and/or
// trailing "*" in pattern makes a suffix, prefix or substring match.
func globMatch(pattern, val string) bool {
	if len(pattern) < 2 {
		return val == pattern
	}
	pre := strings.HasPrefix(pattern, "*")
	suf := strings.HasSuffix(pattern, "*")
	switch {
	case pre && suf:
		return strings.Contains(val, pattern[1:len(pattern)-1])
	case pre:
		return strings.HasSuffix(val, pattern[1:])
	case suf:
		return strings.HasPrefix(val, pattern[:len(pattern)-1])
	}
	return val == pattern
}
