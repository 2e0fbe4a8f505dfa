package fsm

import (
	"cmp"
	"slices"
	"strings"

	"github.com/google/btree"
)

// expiryItem orders tokens by expiry, then hash (a total order, so iteration
// is deterministic).
type expiryItem struct {
	at   int64
	hash string
}

func expiryLess(a, b expiryItem) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.hash < b.hash
}

// pathItem is one entry of the path index: a token's creation path and
// hash (see pathIndex).
type pathItem struct {
	path string
	hash string
}

// policyRecord is one stored ACL policy (raw text; parsed above the fsm).
type policyRecord struct {
	Name      string `json:"name"`
	Text      string `json:"text"`
	UpdatedAt int64  `json:"updated_at,omitempty"`
}

// state is the whole replicated state plus its derived indexes.
//
// Every *Token, *policyRecord, *Role and *BatchKey stored here is immutable
// once inserted: a change stores a new record. That lets Snapshot copy
// pointers under the lock and encode them later without racing Apply.
type state struct {
	tokens    map[string]*Token              // hash → token (primary)
	accessors map[string]string              // accessor → hash
	children  map[string]map[string]struct{} // parent hash → child hashes (never an empty set)
	expiry    *btree.BTreeG[expiryItem]      // tokens with ExpireTime != 0
	paths     *pathIndex                     // tokens with Path != ""

	initialized bool
	clusterID   string
	indexKey    []byte

	policies     map[string]*policyRecord // name → policy (never "root")
	roles        map[string]*Role         // name → role
	batchKeys    map[uint32]*BatchKey     // ID → key
	batchPrimary uint32                   // 0 = no key yet; else a key in batchKeys
	gossipKeys   gossipKeyring            // replicated gossip keyring (gossipkey.go); replaced whole, never mutated
	removedPeers []PeerTombstone          // removed raft servers (peers.go); replaced whole, never mutated

	// policySets shares identical policy lists between token records (see
	// internPolicies); local, derived from nothing replicated.
	policySets map[string][]string

	// policyGen counts policy changes. It is local (not replicated, not in
	// snapshots): FSM.PolicyVersion exposes it for caching parsed policies.
	policyGen uint64
}

func newState() *state {
	return &state{
		tokens:    make(map[string]*Token),
		accessors: make(map[string]string),
		children:  make(map[string]map[string]struct{}),
		expiry:    btree.NewG(32, expiryLess),
		paths:     newPathIndex(),
		policies:  make(map[string]*policyRecord),
		roles:     make(map[string]*Role),
		batchKeys: make(map[uint32]*BatchKey),

		policySets: make(map[string][]string),
	}
}

// insert stores t and indexes it. The caller has checked uniqueness; t is a
// new record, now owned by the state (insert interns its strings).
func (s *state) insert(t *Token) {
	s.internToken(t)
	s.tokens[t.Hash] = t
	s.accessors[t.Accessor] = t.Hash
	s.indexChild(t)
	if t.ExpireTime != 0 {
		s.expiry.ReplaceOrInsert(expiryItem{t.ExpireTime, t.Hash})
	}
	if t.Path != "" {
		s.paths.ReplaceOrInsert(pathItem{t.Path, t.Hash})
	}
}

// indexChild adds t to its parent's children set.
func (s *state) indexChild(t *Token) {
	if t.Parent != "" {
		set := s.children[t.Parent]
		if set == nil {
			set = make(map[string]struct{})
			s.children[t.Parent] = set
		}
		set[t.Hash] = struct{}{}
	}
}

// indexRestored finishes a restore: order lists every stored token (in
// the token map and the accessor index already), perPath counts them per
// creation path. It links and checks the parents (linkParents,
// checkCycles) and builds the children, expiry and path indexes, walking
// order (a slice) rather than the map.
func (s *state) indexRestored(order []*Token, perPath map[string]int) error {
	deep, err := s.linkParents(order)
	if err != nil {
		return err
	}
	if err := s.checkCycles(deep); err != nil {
		return err
	}
	// Size each path's hash set up front: a million tokens share a handful
	// of paths, and growing one set to a million entries rehashes it
	// twenty times.
	for path, n := range perPath {
		s.paths.reserve(path, n)
	}
	expiring := make([]expiryItem, 0, len(order))
	var lastPath string
	var lastSet map[string]struct{}
	for _, t := range order {
		s.indexChild(t)
		if t.ExpireTime != 0 {
			expiring = append(expiring, expiryItem{t.ExpireTime, t.Hash})
		}
		if t.Path != "" {
			// Paths are shared strings and a stream holds long runs of
			// one path: the comparison is a pointer check.
			if t.Path != lastPath {
				lastPath, lastSet = t.Path, s.paths.byPath[t.Path]
			}
			lastSet[t.Hash] = struct{}{} // hashes are unique: a new entry
			s.paths.n++
		}
	}
	// Inserting in key order always descends the btree's rightmost path,
	// which stays in cache: far cheaper than a million random inserts.
	slices.SortFunc(expiring, func(a, b expiryItem) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return strings.Compare(a.hash, b.hash)
	})
	for _, it := range expiring {
		s.expiry.ReplaceOrInsert(it)
	}
	return nil
}

// replace swaps the stored record for a token with the same hash, accessor,
// parent and path (only expiry and other plain fields may differ).
func (s *state) replace(old, t *Token) {
	if old.ExpireTime != 0 {
		s.expiry.Delete(expiryItem{old.ExpireTime, old.Hash})
	}
	if t.ExpireTime != 0 {
		s.expiry.ReplaceOrInsert(expiryItem{t.ExpireTime, t.Hash})
	}
	s.tokens[t.Hash] = t
}

// remove deletes one token and its index entries. Its own children entry is
// dropped too; the caller either removes the children as well or has
// re-parented them.
func (s *state) remove(hash string) {
	t, ok := s.tokens[hash]
	if !ok {
		return
	}
	delete(s.tokens, hash)
	if s.accessors[t.Accessor] == hash {
		delete(s.accessors, t.Accessor)
	}
	if t.Parent != "" {
		if set := s.children[t.Parent]; set != nil {
			delete(set, hash)
			if len(set) == 0 {
				delete(s.children, t.Parent)
			}
		}
	}
	delete(s.children, hash)
	if t.ExpireTime != 0 {
		s.expiry.Delete(expiryItem{t.ExpireTime, hash})
	}
	if t.Path != "" {
		s.paths.Delete(pathItem{t.Path, hash})
	}
}

// subtree returns root and all its descendants, parents before children.
func (s *state) subtree(root string) []string {
	return s.appendSubtree(root, make(map[string]struct{}), nil)
}

// appendSubtree appends root and its descendants that are not yet in seen
// to out, parents before children, and adds them to seen. A root that is
// not stored or already seen adds nothing. Iterative and cycle-safe: no
// recursion depth limit, each token once.
func (s *state) appendSubtree(root string, seen map[string]struct{}, out []string) []string {
	if _, ok := s.tokens[root]; !ok {
		return out
	}
	if _, dup := seen[root]; dup {
		return out
	}
	seen[root] = struct{}{}
	start := len(out)
	out = append(out, root)
	for i := start; i < len(out); i++ {
		for c := range s.children[out[i]] {
			if _, dup := seen[c]; dup {
				continue
			}
			if t, ok := s.tokens[c]; !ok || t.Parent != out[i] {
				// A dangling or mismatched index entry (only a corrupt
				// index has one, see Tidy) is not a descendant: the
				// primary records decide what a revoke removes.
				continue
			}
			seen[c] = struct{}{}
			out = append(out, c)
		}
	}
	return out
}

// revoke removes the union of the subtrees of roots (missing roots add
// nothing) and returns how many tokens it removed; the count and the final
// state are those of revoking each root's tree in turn. Determinism: the
// set removed does not depend on map order, only the order of removal does,
// and removal order is unobservable.
//
// It runs as a large command (see FSM): the set is computed without mu; a
// set of up to f.chunk tokens goes in one section; a larger one is first
// published as doomed — from then on no reader sees any of its tokens,
// which is exactly the final state — and then removed in chunks.
func (f *FSM) revoke(roots []string) int {
	s := f.st // read without mu: Apply is the only writer
	seen := make(map[string]struct{})
	var order []string
	for _, r := range roots {
		order = s.appendSubtree(r, seen, order)
	}
	n := len(order)
	if n == 0 {
		return 0
	}
	// Children before parents, as Vault does; any order gives the same state.
	slices.Reverse(order)
	if n <= f.chunk {
		f.section(func(s *state) {
			for _, h := range order {
				s.remove(h)
			}
		})
		return n
	}
	f.section(func(*state) { f.pend = &pending{doomed: seen, left: n} })
	for i := 0; i < n; i += f.chunk {
		part := order[i:min(i+f.chunk, n)]
		f.section(func(s *state) {
			for _, h := range part {
				s.remove(h)
			}
			f.pend.left -= len(part)
		})
	}
	return n
}

// validAt reports whether t and every ancestor are present, not exhausted
// and not expired at now. The walk is iterative and bounded by the number of
// stored tokens, so a (corrupt) cycle cannot loop forever.
func (s *state) validAt(t *Token, now int64) bool {
	for steps := 0; steps <= len(s.tokens); steps++ {
		if t.NumUses < 0 || t.ExpiredAt(now) {
			return false
		}
		if t.Parent == "" {
			return true
		}
		p, ok := s.tokens[t.Parent]
		if !ok {
			return false
		}
		t = p
	}
	return false
}

// ancestorsValidAt reports whether every ancestor of t (not t itself) is
// present and valid at now.
func (s *state) ancestorsValidAt(t *Token, now int64) bool {
	if t.Parent == "" {
		return true
	}
	p, ok := s.tokens[t.Parent]
	return ok && s.validAt(p, now)
}

// sortedChildren lists a token's direct children, sorted.
func (s *state) sortedChildren(hash string) []string {
	set := s.children[hash]
	if len(set) == 0 {
		return nil
	}
	out := make([]string, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}
