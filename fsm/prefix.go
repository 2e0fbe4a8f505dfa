package fsm

import (
	"fmt"
	"strings"
)

// trimPrefix normalises a RevokePrefix prefix: trailing "/" are dropped, so
// "auth/token/create/r/" and "auth/token/create/r" name the same set.
func trimPrefix(p string) string {
	return strings.TrimRight(p, "/")
}

// pathMatches reports whether a creation path lies under prefix (already
// trimmed) segment-wise: equal, or prefix followed by "/".
func pathMatches(path, prefix string) bool {
	return prefix != "" && (path == prefix || strings.HasPrefix(path, prefix+"/"))
}

// underPrefix returns the hashes of the tokens whose Path matches prefix
// (trimmed), in path-index order. Two range scans of the sorted path index:
// the exact path, then [prefix+"/", prefix+"0") ('0' follows '/'), so the
// cost is O(log n + matches), never a full scan.
func (s *state) underPrefix(prefix string) []key {
	var out []key
	collect := func(it pathItem) bool {
		out = append(out, it.hash)
		return true
	}
	s.paths.AscendRange(pathItem{path: prefix}, pathItem{path: prefix + "\x00"}, collect)
	s.paths.AscendRange(pathItem{path: prefix + "/"}, pathItem{path: prefix + "0"}, collect)
	return out
}

func applyRevokePrefix(f *FSM, c RevokePrefix) Result {
	prefix := trimPrefix(c.Prefix)
	if prefix == "" {
		return Result{Err: fmt.Errorf("revoke prefix: empty prefix: %w", ErrInvalidCommand)}
	}
	// A match inside an earlier match's subtree is counted once: revoke
	// removes the union of the subtrees.
	return Result{Revoked: f.revoke(f.st.underPrefix(prefix))}
}
