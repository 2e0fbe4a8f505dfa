package fsm

import "unique"

// Interning: stored tokens repeat a few values millions of times (policy
// names, creation path, type, display name, role, meta keys). A token's
// shape (records.go) holds canonical copies of them, so every shape and
// the path index share one copy of each. Records are immutable and readers
// get copies, so sharing is unobservable; it changes no state and no
// encoding.

// in returns the canonical copy of s (unique keeps it only while used).
func in(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}
