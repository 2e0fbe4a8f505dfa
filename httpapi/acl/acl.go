package acl

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Operation is the logical operation of a request, as Vault names it.
type Operation string

// The operations an ACL decides on. Vault's internal renew and revoke
// operations map to OpUpdate.
const (
	OpRead   Operation = "read"
	OpList   Operation = "list"
	OpUpdate Operation = "update"
	OpCreate Operation = "create"
	OpDelete Operation = "delete"
	OpPatch  Operation = "patch"
)

// capability returns the capability op needs, or 0 for an unknown op.
func (op Operation) capability() Capability {
	switch op {
	case OpRead:
		return CapRead
	case OpList:
		return CapList
	case OpUpdate:
		return CapUpdate
	case OpCreate:
		return CapCreate
	case OpDelete:
		return CapDelete
	case OpPatch:
		return CapPatch
	}
	return 0
}

// Request is what Allowed decides on.
type Request struct {
	// Path is the logical request path without "/v1/" (a leading "/" is
	// ignored), e.g. "auth/token/lookup-self".
	Path string
	// Operation is the logical operation.
	Operation Operation
	// Params are the request's parameters (body and query), checked against
	// allowed/denied/required_parameters on read, create, update and patch.
	// Values are as JSON decodes them (string, float64 or json.Number, bool,
	// nil, []any, map[string]any); []string is accepted too.
	Params map[string]any
	// RootProtected marks a sudo path: the matching rule must also grant
	// sudo.
	RootProtected bool
	// WrapTTL is the requested response-wrapping TTL, zero when the response
	// is not wrapped. Rules with min/max_wrapping_ttl require a wrapped
	// response within bounds.
	WrapTTL time.Duration
}

// Result is the decision of Allowed.
type Result struct {
	// Allowed is true when the request may proceed.
	Allowed bool
	// RootPrivs is true when the winning rule grants sudo on the path (or
	// the ACL is root).
	RootPrivs bool
	// IsRoot is true for a root ACL.
	IsRoot bool
	// DeniedReason says why a request was denied, for debug logs only (the
	// client always gets a bare "permission denied"). It names rules and
	// parameter names, never parameter values.
	DeniedReason string
}

// perms is the merged rule of one pattern.
type perms struct {
	pattern  string // as written in the (first) policy; for DeniedReason
	caps     Capability
	minWrap  time.Duration
	maxWrap  time.Duration
	allowed  map[string][]any
	denied   map[string][]any
	required []string
}

// rank orders non-exact matches by specificity (Vault's
// CheckAllowedFromNonExactPaths): a rank that is less is less specific.
type rank struct {
	first     int // position of the first "+" (segment rule) or of the "*" (prefix rule)
	isPrefix  bool
	wildcards int // number of "+" segments
	path      string
}

func (a rank) less(b rank) bool {
	if a.first != b.first {
		return a.first < b.first
	}
	if a.isPrefix != b.isPrefix {
		return a.isPrefix
	}
	if a.wildcards != b.wildcards {
		return a.wildcards > b.wildcards
	}
	if len(a.path) != len(b.path) {
		return len(a.path) < len(b.path)
	}
	return a.path < b.path
}

// segRule is a rule with "+" segments.
type segRule struct {
	parts    []string // pattern split on "/"; for a prefix rule the last part has its "*" removed
	isPrefix bool
	rank     rank
	perms    *perms
}

// match reports whether path matches the segment rule, without allocating.
func (s *segRule) match(path string) bool {
	pos := 0
	exhausted := false
	last := len(s.parts) - 1
	for i, part := range s.parts {
		if exhausted {
			// Fewer path segments than pattern segments.
			return false
		}
		var seg string
		if j := strings.IndexByte(path[pos:], '/'); j >= 0 {
			seg = path[pos : pos+j]
			pos += j + 1
		} else {
			seg = path[pos:]
			exhausted = true
		}
		switch {
		case part == "+", part == seg:
		case s.isPrefix && i == last && strings.HasPrefix(seg, part):
		default:
			return false
		}
	}
	// A non-prefix rule needs exactly as many segments as the pattern.
	return s.isPrefix || exhausted
}

// ACL is the merged, precomputed rule set of a token's policies. It is
// immutable and safe for concurrent use. The zero value and a nil *ACL deny
// everything.
type ACL struct {
	root bool

	exact map[string]*perms
	// prefix rules by their prefix, and the distinct prefix lengths in
	// descending order: the longest matching prefix is found with at most
	// len(prefixLens) map lookups.
	prefix     map[string]*perms
	prefixLens []int
	// Segment rules, each list most specific first: those whose first
	// segment is literal are bucketed by it (a request only has to try the
	// bucket of its own first segment), the ones starting with "+" are in
	// segsWild.
	segsByFirst map[string][]segRule
	segsWild    []segRule
}

// New merges policies into an ACL. nil policies are skipped (a token may
// name a policy that does not exist: it grants nothing). If any policy is the
// root policy the result is a root ACL. Rules for the same pattern merge:
// capabilities union, deny from any policy wins, parameter lists merge,
// the smaller wrapping TTL bounds win. Templated rules are skipped.
func New(policies ...*Policy) *ACL {
	a := &ACL{exact: map[string]*perms{}, prefix: map[string]*perms{}}
	segByPattern := map[string]*perms{}
	for _, p := range policies {
		if p == nil {
			continue
		}
		if p.root {
			return &ACL{root: true}
		}
		for i := range p.Paths {
			r := &p.Paths[i]
			if r.Templated {
				continue
			}
			var m map[string]*perms
			switch {
			case r.HasSegmentWildcards:
				m = segByPattern
			case r.IsPrefix:
				m = a.prefix
			default:
				m = a.exact
			}
			if cur, ok := m[r.Path]; ok {
				cur.merge(r)
			} else {
				m[r.Path] = newPerms(r)
			}
		}
	}

	seen := map[int]bool{}
	for k := range a.prefix {
		if !seen[len(k)] {
			seen[len(k)] = true
			a.prefixLens = append(a.prefixLens, len(k))
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(a.prefixLens)))

	for pattern, pm := range segByPattern {
		s := segRule{perms: pm, rank: rank{first: strings.IndexByte(pattern, '+')}}
		trimmed := pattern
		if strings.HasSuffix(pattern, "*") {
			s.isPrefix = true
			trimmed = pattern[:len(pattern)-1]
		}
		s.parts = strings.Split(trimmed, "/")
		for _, part := range s.parts {
			if part == "+" {
				s.rank.wildcards++
			}
		}
		s.rank.isPrefix = s.isPrefix
		s.rank.path = trimmed
		// A segment rule with a single part is exactly "+" ("x*" has no "+"
		// segment and "+*" is rejected), so a literal first part is always
		// compared for equality and can serve as a bucket key.
		if s.parts[0] == "+" {
			a.segsWild = append(a.segsWild, s)
		} else {
			if a.segsByFirst == nil {
				a.segsByFirst = map[string][]segRule{}
			}
			a.segsByFirst[s.parts[0]] = append(a.segsByFirst[s.parts[0]], s)
		}
	}
	// Most specific first: the first rule of a list that matches is the
	// best of that list.
	bySpecificity := func(l []segRule) {
		sort.Slice(l, func(i, j int) bool { return l[j].rank.less(l[i].rank) })
	}
	bySpecificity(a.segsWild)
	for _, l := range a.segsByFirst {
		bySpecificity(l)
	}
	return a
}

// newPerms copies a parsed rule into a fresh merged rule (the policy itself
// is never mutated by later merges).
func newPerms(r *PathRule) *perms {
	return &perms{
		pattern:  r.Pattern,
		caps:     r.Capabilities,
		minWrap:  r.MinWrappingTTL,
		maxWrap:  r.MaxWrappingTTL,
		allowed:  copyParams(r.AllowedParameters),
		denied:   copyParams(r.DeniedParameters),
		required: append([]string(nil), r.RequiredParameters...),
	}
}

// merge folds another rule for the same pattern into pm, as Vault's NewACL
// does.
func (pm *perms) merge(r *PathRule) {
	switch {
	case pm.caps&CapDeny != 0:
		// Already denied: nothing else matters for this pattern.
		return
	case r.Capabilities&CapDeny != 0:
		*pm = perms{pattern: pm.pattern, caps: CapDeny}
		return
	}
	pm.caps |= r.Capabilities
	// Wrapping TTL bounds: the smaller of two set values wins, for both the
	// minimum and the maximum (Vault prefers the shortest lifetime).
	if r.MaxWrappingTTL > 0 && (pm.maxWrap == 0 || r.MaxWrappingTTL < pm.maxWrap) {
		pm.maxWrap = r.MaxWrappingTTL
	}
	if r.MinWrappingTTL > 0 && (pm.minWrap == 0 || r.MinWrappingTTL < pm.minWrap) {
		pm.minWrap = r.MinWrappingTTL
	}
	pm.allowed = mergeParams(pm.allowed, r.AllowedParameters)
	pm.denied = mergeParams(pm.denied, r.DeniedParameters)
	for _, req := range r.RequiredParameters {
		if !contains(pm.required, req) {
			pm.required = append(pm.required, req)
		}
	}
}

func copyParams(in map[string][]any) map[string][]any {
	if in == nil {
		return nil
	}
	out := make(map[string][]any, len(in))
	for k, v := range in {
		out[k] = append([]any{}, v...)
	}
	return out
}

// mergeParams merges parameter constraints: an empty value list (any value)
// for a key overrides value lists; otherwise the lists concatenate.
func mergeParams(cur, add map[string][]any) map[string][]any {
	if len(add) == 0 {
		return cur
	}
	if cur == nil {
		return copyParams(add)
	}
	for k, v := range add {
		old, ok := cur[k]
		if len(v) == 0 || (ok && len(old) == 0) {
			cur[k] = []any{}
			continue
		}
		cur[k] = append(append([]any{}, v...), old...)
	}
	return cur
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// IsRoot reports whether a is a root ACL.
func (a *ACL) IsRoot() bool { return a != nil && a.root }

// lookup finds the winning rule for path, or nil. list selects Vault's list
// semantics: the path without its trailing "/" is tried too.
func (a *ACL) lookup(path string, list bool) *perms {
	if pm, ok := a.exact[path]; ok {
		return pm
	}
	if !list {
		return a.nonExact(path)
	}
	trimmed := strings.TrimSuffix(path, "/")
	if trimmed == path {
		return a.nonExact(path)
	}
	if pm, ok := a.exact[trimmed]; ok {
		return pm
	}
	// Without the slash first: a trailing-glob rule could otherwise match
	// the slashed form ahead of a more specific rule for the bare path.
	if pm := a.nonExact(trimmed); pm != nil {
		return pm
	}
	return a.nonExact(path)
}

// nonExact returns the most specific prefix or segment rule matching path.
func (a *ACL) nonExact(path string) *perms {
	var best *perms
	var bestRank rank
	for _, n := range a.prefixLens {
		if n > len(path) {
			continue
		}
		if pm, ok := a.prefix[path[:n]]; ok {
			best = pm
			bestRank = rank{first: n, isPrefix: true, path: path[:n]}
			break
		}
	}
	if a.segsByFirst != nil {
		first := path
		if i := strings.IndexByte(path, '/'); i >= 0 {
			first = path[:i]
		}
		best, bestRank = scanSegs(a.segsByFirst[first], path, best, bestRank)
	}
	best, _ = scanSegs(a.segsWild, path, best, bestRank)
	return best
}

// scanSegs returns the first rule of list (sorted most specific first) that
// matches path and is more specific than best, or best.
func scanSegs(list []segRule, path string, best *perms, bestRank rank) (*perms, rank) {
	for i := range list {
		s := &list[i]
		if best != nil && s.rank.less(bestRank) {
			// No later rule of this list can beat best.
			break
		}
		if s.match(path) {
			// Ranks of distinct patterns never tie, so s beats best.
			return s.perms, s.rank
		}
	}
	return best, bestRank
}

// trimPath drops leading slashes, as Vault does defensively.
func trimPath(path string) string {
	for len(path) > 0 && path[0] == '/' {
		path = path[1:]
	}
	return path
}

// Capabilities returns the sorted capabilities a holds on path, with list
// semantics as Vault's sys/capabilities endpoints: ["root"] for a root ACL,
// ["deny"] when no rule matches or the winning rule denies.
func (a *ACL) Capabilities(path string) []string {
	if a.IsRoot() {
		return []string{"root"}
	}
	if a == nil {
		return []string{"deny"}
	}
	pm := a.lookup(trimPath(path), true)
	if pm == nil {
		return []string{"deny"}
	}
	return pm.caps.Names()
}

// Sudo reports whether a grants sudo on path (a root ACL always does); this
// is Vault's handler-level sudo check (e.g. auth/token/create with id,
// no_parent or period), which uses read semantics (no trailing-"/" retry).
func (a *ACL) Sudo(path string) bool {
	if a.IsRoot() {
		return true
	}
	if a == nil {
		return false
	}
	pm := a.lookup(trimPath(path), false)
	return pm != nil && pm.caps&CapSudo != 0
}

// Allowed decides req. A request is allowed when the winning rule grants the
// operation's capability, its parameter and wrapping constraints hold, and,
// for a root-protected path, it also grants sudo.
func (a *ACL) Allowed(req Request) Result {
	if a.IsRoot() {
		return Result{Allowed: true, RootPrivs: true, IsRoot: true}
	}
	if a == nil {
		return Result{DeniedReason: "no policies"}
	}
	path := trimPath(req.Path)
	pm := a.lookup(path, req.Operation == OpList)
	if pm == nil {
		return Result{DeniedReason: fmt.Sprintf("no rule matches path %q", path)}
	}
	res := Result{RootPrivs: pm.caps&CapSudo != 0}
	need := req.Operation.capability()
	switch {
	case need == 0:
		res.DeniedReason = fmt.Sprintf("unsupported operation %q", string(req.Operation))
		return res
	case pm.caps&CapDeny != 0:
		res.DeniedReason = fmt.Sprintf("rule %q denies path %q", pm.pattern, path)
		return res
	case pm.caps&need == 0:
		res.DeniedReason = fmt.Sprintf("rule %q does not grant %q on path %q", pm.pattern, string(req.Operation), path)
		return res
	}
	if reason := pm.checkWrapping(req.WrapTTL); reason != "" {
		res.DeniedReason = reason
		return res
	}
	switch req.Operation {
	case OpRead, OpUpdate, OpCreate, OpPatch:
		if reason := pm.checkParams(req.Params); reason != "" {
			res.DeniedReason = reason
			return res
		}
	}
	if req.RootProtected && !res.RootPrivs {
		res.DeniedReason = fmt.Sprintf("path %q requires sudo, which rule %q does not grant", path, pm.pattern)
		return res
	}
	res.Allowed = true
	return res
}

// checkWrapping enforces min/max_wrapping_ttl; "" when satisfied.
func (pm *perms) checkWrapping(ttl time.Duration) string {
	if pm.maxWrap > 0 && (ttl == 0 || ttl > pm.maxWrap) {
		return fmt.Sprintf("rule %q requires a response-wrapping TTL of at most %s", pm.pattern, pm.maxWrap)
	}
	if pm.minWrap > 0 && (ttl == 0 || ttl < pm.minWrap) {
		return fmt.Sprintf("rule %q requires a response-wrapping TTL of at least %s", pm.pattern, pm.minWrap)
	}
	// Merging can produce min > max even though each block was validated.
	if pm.minWrap != 0 && pm.maxWrap != 0 && pm.maxWrap < pm.minWrap {
		return fmt.Sprintf("rule %q has conflicting wrapping TTL bounds", pm.pattern)
	}
	return ""
}
