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

// checkInvariants verifies that the indexes agree with the primary state and
// that the token tree is well formed (every parent stored, no cycle, no
// exhausted token left behind).
func checkInvariants(f *FSM) error {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := f.st
	expiring := 0
	for hash, t := range s.tokens {
		if t.Hash != hash {
			return fmt.Errorf("token under %s has hash %s", shortHash(hash), shortHash(t.Hash))
		}
		if s.accessors[t.Accessor] != hash {
			return fmt.Errorf("accessor %s does not map to its token", t.Accessor)
		}
		if t.NumUses < 0 {
			return fmt.Errorf("exhausted token %s still stored", t.Accessor)
		}
		if t.Parent != "" {
			if _, ok := s.tokens[t.Parent]; !ok {
				return fmt.Errorf("token %s outlives its parent", t.Accessor)
			}
			if _, ok := s.children[t.Parent][hash]; !ok {
				return fmt.Errorf("token %s missing from its parent's children", t.Accessor)
			}
		}
		if t.ExpireTime != 0 {
			expiring++
			if !s.expiry.Has(expiryItem{t.ExpireTime, hash}) {
				return fmt.Errorf("token %s missing from expiry index", t.Accessor)
			}
		}
	}
	if len(s.accessors) != len(s.tokens) {
		return fmt.Errorf("%d accessors for %d tokens", len(s.accessors), len(s.tokens))
	}
	for a, hash := range s.accessors {
		if t, ok := s.tokens[hash]; !ok || t.Accessor != a {
			return fmt.Errorf("accessor %s maps to a missing or different token", a)
		}
	}
	for p, set := range s.children {
		if len(set) == 0 {
			return fmt.Errorf("empty children set for %s", shortHash(p))
		}
		if _, ok := s.tokens[p]; !ok {
			return fmt.Errorf("children index for missing parent %s", shortHash(p))
		}
		for c := range set {
			if t, ok := s.tokens[c]; !ok || t.Parent != p {
				return fmt.Errorf("stale child %s of %s", shortHash(c), shortHash(p))
			}
		}
	}
	if s.expiry.Len() != expiring {
		return fmt.Errorf("expiry index has %d entries for %d expiring tokens", s.expiry.Len(), expiring)
	}
	var bad error
	s.expiry.Ascend(func(it expiryItem) bool {
		if t, ok := s.tokens[it.hash]; !ok || t.ExpireTime != it.at {
			bad = fmt.Errorf("stale expiry entry for %s", shortHash(it.hash))
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

// checkPathIndex verifies that the path index holds exactly the tokens with
// a creation path.
func checkPathIndex(s *state) error {
	withPath := 0
	for hash, t := range s.tokens {
		if t.Path == "" {
			continue
		}
		withPath++
		if !s.paths.Has(pathItem{t.Path, hash}) {
			return fmt.Errorf("token %s missing from path index", t.Accessor)
		}
	}
	if s.paths.Len() != withPath {
		return fmt.Errorf("path index has %d entries for %d tokens with a path", s.paths.Len(), withPath)
	}
	var bad error
	s.paths.Ascend(func(it pathItem) bool {
		if t, ok := s.tokens[it.hash]; !ok || t.Path != it.path {
			bad = fmt.Errorf("stale path entry for %s", shortHash(it.hash))
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
