package fsm

import (
	"encoding/binary"
	"unique"
)

// Interning: stored tokens repeat a few values millions of times (policy
// names, creation path, type, display name, role, meta keys), and a child
// repeats its parent's 64-byte hash. insert makes every stored record share
// one copy of each, which is what keeps a stored token within its memory
// budget (see BenchmarkHeapPerToken). Records are immutable and readers get
// copies, so sharing is unobservable; it changes no state and no encoding.

// maxPolicySets bounds the table of shared policy lists, so a stream of
// distinct lists cannot grow it without limit (lists beyond it are kept
// per token, still with interned names).
const maxPolicySets = 4096

// in returns the canonical copy of s (unique keeps it only while used).
func in(s string) string {
	if s == "" {
		return ""
	}
	return unique.Make(s).Value()
}

// internToken makes t share repeated strings with the rest of the state; t
// is a new record owned by the state.
func (s *state) internToken(t *Token) {
	if p, ok := s.tokens[t.Parent]; ok {
		t.Parent = p.Hash
	}
	t.Policies = s.internPolicies(t.Policies)
	t.DisplayName = in(t.DisplayName)
	t.Path = in(t.Path)
	t.Type = in(t.Type)
	t.Role = in(t.Role)
	t.EntityID = in(t.EntityID)
	t.Dialect = in(t.Dialect)
	for i, c := range t.BoundCIDRs {
		t.BoundCIDRs[i] = in(c)
	}
	if len(t.Meta) > 0 {
		m := make(map[string]string, len(t.Meta))
		for k, v := range t.Meta {
			m[in(k)] = v
		}
		t.Meta = m
	} else {
		t.Meta = nil
	}
}

// internPolicies returns a shared list equal to ps. The list is shared by
// many records, so nothing may ever modify it in place (clone copies it).
// A list already in the table costs no allocation: the key is built in a
// stack buffer and the lookup does not copy it.
func (s *state) internPolicies(ps []string) []string {
	if len(ps) == 0 {
		return ps
	}
	var buf [256]byte
	key := policySetKey(buf[:0], ps)
	if shared, ok := s.policySets[string(key)]; ok {
		return shared
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = in(p)
	}
	if len(s.policySets) < maxPolicySets {
		s.policySets[string(key)] = out
	}
	return out
}

// policySetKey appends the policySets key of ps to b: each name
// length-prefixed, so no two different lists share a key (a separator
// could occur inside a name).
func policySetKey(b []byte, ps []string) []byte {
	for _, p := range ps {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}
