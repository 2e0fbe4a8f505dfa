package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"
)

// t0 is the base time of the tests (Unix ns); sec and hour are durations in ns.
const (
	t0   = int64(1_700_000_000) * int64(time.Second)
	sec  = int64(time.Second)
	hour = 3600 * sec
)

func mustHasher(key []byte) *Hasher {
	h, err := NewHasher(key)
	if err != nil {
		panic(err)
	}
	return h
}

// h is the stored hash of the test token called name. The state machine
// takes any 64-hex-digit hash; plain SHA-256 keeps the golden files (written
// before hashes were keyed) byte-identical.
func h(name string) string {
	sum := sha256.Sum256([]byte("tok-" + name))
	return hex.EncodeToString(sum[:])
}

// acc is the accessor of the test token called name.
func acc(name string) string { return "acc-" + name }

// tok builds a renewable, expiring (1h from t0) service token.
func tok(name, parent string) Token {
	t := Token{
		Hash:         h(name),
		Accessor:     acc(name),
		Policies:     []string{"default"},
		Path:         "auth/token/create",
		CreationTime: t0,
		IssueTime:    t0,
		CreationTTL:  3600,
		TTL:          3600,
		ExpireTime:   t0 + hour,
		Renewable:    true,
		Type:         TokenTypeService,
	}
	if parent != "" {
		t.Parent = h(parent)
	}
	return t
}

// with returns t modified by fn (table literals stay short).
func with(t Token, fn func(*Token)) Token {
	fn(&t)
	return t
}

func create(name, parent string) Command { return CreateToken{Token: tok(name, parent), Now: t0} }

// applyCmd encodes c and applies it at the FSM's next index, as raft would.
func applyCmd(tb testing.TB, f *FSM, c Command) Result {
	tb.Helper()
	b, err := Encode(c)
	if err != nil {
		tb.Fatalf("encode %T: %v", c, err)
	}
	return f.Apply(f.LastApplied()+1, b)
}

// mustApply applies c and fails the test if it is rejected.
func mustApply(tb testing.TB, f *FSM, cmds ...Command) {
	tb.Helper()
	for _, c := range cmds {
		if r := applyCmd(tb, f, c); r.Err != nil {
			tb.Fatalf("apply %T: %v", c, r.Err)
		}
	}
}

// insertChain stores n tokens c0 ← c1 ← … directly (bypassing Apply's
// O(depth) parent check, which would make building a deep chain quadratic).
func insertChain(f *FSM, prefix string, root string, n int) []string {
	hashes := make([]string, 0, n)
	parent := root
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s%d", prefix, i)
		t := tok(name, "")
		t.Parent = parent
		f.st.insert(&t)
		hashes = append(hashes, t.Hash)
		parent = t.Hash
	}
	return hashes
}

// insertWide stores n direct children of parent directly.
func insertWide(f *FSM, prefix string, parent string, n int) {
	for i := 0; i < n; i++ {
		t := tok(fmt.Sprintf("%s%d", prefix, i), "")
		t.Parent = parent
		f.st.insert(&t)
	}
}

// tokenMap returns every stored token by hash (test helper).
func (s *state) tokenMap() map[string]Token {
	out := make(map[string]Token, s.tokenCount())
	s.recs.each(func(r *rec) bool {
		out[r.hash.String()] = s.recs.token(r)
		return true
	})
	return out
}

// checkInvariants verifies that the indexes agree with the primary state and
// that the token tree is well formed (every parent stored, no cycle, no
// exhausted token left behind).
func checkInvariants(f *FSM) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.st
	if err := checkStore(s.recs); err != nil {
		return err
	}
	tokens := s.tokenMap()
	expiring := 0
	for hash, t := range tokens {
		k, _ := keyOf(hash)
		if !s.accessors.is(t.Accessor, k) {
			return fmt.Errorf("accessor %s does not map to its token", t.Accessor)
		}
		if t.NumUses < 0 {
			return fmt.Errorf("exhausted token %s still stored", t.Accessor)
		}
		if t.Parent != "" {
			if _, ok := tokens[t.Parent]; !ok {
				return fmt.Errorf("token %s outlives its parent", t.Accessor)
			}
			p, _ := keyOf(t.Parent)
			if _, ok := s.children[p][k]; !ok {
				return fmt.Errorf("token %s missing from its parent's children", t.Accessor)
			}
		}
		if t.ExpireTime != 0 {
			expiring++
			if !s.expiry.Has(expiryItem{t.ExpireTime, k}) {
				return fmt.Errorf("token %s missing from expiry index", t.Accessor)
			}
		}
	}
	if s.accessors.len() != len(tokens) {
		return fmt.Errorf("%d accessors for %d tokens", s.accessors.len(), len(tokens))
	}
	var bad error
	s.accessors.each(func(a string, k key) {
		if t, ok := tokens[k.String()]; !ok || t.Accessor != a {
			bad = fmt.Errorf("accessor %s maps to a missing or different token", a)
		}
	})
	if bad != nil {
		return bad
	}
	for p, set := range s.children {
		if len(set) == 0 {
			return fmt.Errorf("empty children set for %s", short(p))
		}
		if _, ok := tokens[p.String()]; !ok {
			return fmt.Errorf("children index for missing parent %s", short(p))
		}
		for c := range set {
			if t, ok := tokens[c.String()]; !ok || t.Parent != p.String() {
				return fmt.Errorf("stale child %s of %s", short(c), short(p))
			}
		}
	}
	if s.expiry.Len() != expiring {
		return fmt.Errorf("expiry index has %d entries for %d expiring tokens", s.expiry.Len(), expiring)
	}
	s.expiry.Ascend(func(it expiryItem) bool {
		if t, ok := tokens[it.hash.String()]; !ok || t.ExpireTime != it.at {
			bad = fmt.Errorf("stale expiry entry for %s", short(it.hash))
			return false
		}
		return true
	})
	if bad != nil {
		return bad
	}
	if err := checkPathIndex(s); err != nil {
		return err
	}
	if err := checkReplicatedRecords(s); err != nil {
		return err
	}
	if err := s.checkTree(); err != nil {
		return err
	}
	// Cross-check: on a state that passes every check above, Check (the
	// tidy walk) must find nothing to repair.
	if r := s.check().report; r.Total() != 0 || len(r.Repairs) != 0 {
		return fmt.Errorf("Check reports repairs on a consistent state: %+v", r)
	}
	return nil
}

// checkStore verifies the record store's own bookkeeping: every slot is
// live and in slots under its own hash, or on the free list, never both;
// shape reference counts equal the recs naming each shape; the shape table
// finds every live shape under its key; long accessors exist exactly for
// the recs that need them.
func checkStore(rs *records) error {
	total := len(rs.chunks) * chunkRecs
	use := make([]int, total) // 0 unused, 1 live, 2 free
	for k, i := range rs.slots {
		r := rs.at(i)
		if r.flags&recLive == 0 || r.hash != k {
			return fmt.Errorf("slot %d for %s holds %s (live %v)", i, short(k), short(r.hash), r.flags&recLive != 0)
		}
		use[i] = 1
	}
	for _, i := range rs.free {
		if use[i] != 0 || rs.at(i).flags&recLive != 0 {
			return fmt.Errorf("free slot %d is in use or listed twice", i)
		}
		use[i] = 2
	}
	if used := len(rs.slots) + len(rs.free); used > total || (total > 0 && used <= total-chunkRecs) {
		return fmt.Errorf("%d slots used in %d chunks", used, len(rs.chunks))
	}
	refs := make([]int32, len(rs.shapes))
	long := 0
	var bad error
	rs.each(func(r *rec) bool {
		refs[r.shape]++
		if r.accLen == accLong {
			long++
			if _, ok := rs.longAcc[r.hash]; !ok {
				bad = fmt.Errorf("long accessor of %s missing", short(r.hash))
				return false
			}
		}
		return true
	})
	if bad != nil {
		return bad
	}
	if long != len(rs.longAcc) {
		return fmt.Errorf("%d long accessors stored for %d recs", len(rs.longAcc), long)
	}
	live := 0
	for id, sh := range rs.shapes {
		if refs[id] != rs.shapeRefs[id] {
			return fmt.Errorf("shape %d: %d refs counted, %d recorded", id, refs[id], rs.shapeRefs[id])
		}
		if sh == nil {
			continue
		}
		live++
		if got, ok := rs.shapeIDs[sh.key]; !ok || got != uint32(id) {
			return fmt.Errorf("shape %d not found under its key", id)
		}
	}
	if live != len(rs.shapeIDs) || live+len(rs.freeShapes) != len(rs.shapes) {
		return fmt.Errorf("%d live shapes, %d keys, %d free of %d", live, len(rs.shapeIDs), len(rs.freeShapes), len(rs.shapes))
	}
	return nil
}

// checkPathIndex verifies that the path index holds exactly the tokens with
// a creation path.
func checkPathIndex(s *state) error {
	tokens := s.tokenMap()
	withPath := 0
	for hash, t := range tokens {
		if t.Path == "" {
			continue
		}
		withPath++
		k, _ := keyOf(hash)
		if !s.paths.Has(pathItem{t.Path, k}) {
			return fmt.Errorf("token %s missing from path index", t.Accessor)
		}
	}
	if s.paths.Len() != withPath {
		return fmt.Errorf("path index has %d entries for %d tokens with a path", s.paths.Len(), withPath)
	}
	var bad error
	s.paths.Ascend(func(it pathItem) bool {
		if t, ok := tokens[it.hash.String()]; !ok || t.Path != it.path {
			bad = fmt.Errorf("stale path entry for %s", short(it.hash))
			return false
		}
		return true
	})
	return bad
}

// checkReplicatedRecords verifies policies, roles and the batch keyring.
func checkReplicatedRecords(s *state) error {
	for name, p := range s.policies {
		if name == "" || name == PolicyRoot || p.Name != name {
			return fmt.Errorf("bad policy record %q", name)
		}
	}
	for name, r := range s.roles {
		if name == "" || r.Name != name {
			return fmt.Errorf("bad role record %q", name)
		}
	}
	if (s.batchPrimary == 0) != (len(s.batchKeys) == 0) {
		return fmt.Errorf("batch primary %d with %d keys", s.batchPrimary, len(s.batchKeys))
	}
	if s.batchPrimary != 0 {
		p, ok := s.batchKeys[s.batchPrimary]
		if !ok || p.RetiredAt != 0 {
			return fmt.Errorf("batch primary %d missing or retired", s.batchPrimary)
		}
	}
	for id, k := range s.batchKeys {
		if id == 0 || k.ID != id || len(k.Key) != BatchKeySize {
			return fmt.Errorf("bad batch key record %d", id)
		}
	}
	return nil
}
