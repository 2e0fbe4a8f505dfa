package fsm

import (
	"cmp"
	"maps"
	"slices"

	"github.com/google/btree"
)

// expiryItem orders tokens by expiry, then hash (a total order, so iteration
// is deterministic).
type expiryItem struct {
	at   int64
	hash key
}

func expiryLess(a, b expiryItem) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return compareKeys(a.hash, b.hash) < 0
}

// pathItem is one entry of the path index: a token's creation path and
// hash (see pathIndex).
type pathItem struct {
	path string
	hash key
}

// policyRecord is one stored ACL policy (raw text; parsed above the fsm).
type policyRecord struct {
	Name      string `json:"name"`
	Text      string `json:"text"`
	UpdatedAt int64  `json:"updated_at,omitempty"`
}

// state is the whole replicated state plus its derived indexes.
//
// Token records live in recs (records.go), copy-on-write for snapshots;
// every *policyRecord, *Role and *BatchKey stored here is immutable once
// inserted: a change stores a new record. That lets Snapshot take a
// point-in-time view under the lock and encode it later without racing
// Apply. No structure that grows with the token count holds a pointer per
// token (see records.go).
type state struct {
	recs      *records                  // hash → token (primary)
	accessors *accessorIndex            // accessor → hash
	children  map[key]map[key]struct{}  // parent → children (never an empty set)
	expiry    *btree.BTreeG[expiryItem] // tokens with ExpireTime != 0
	paths     *pathIndex                // tokens with Path != ""

	initialized bool
	clusterID   string
	indexKey    []byte

	policies     map[string]*policyRecord // name → policy (never "root")
	roles        map[string]*Role         // name → role
	batchKeys    map[uint32]*BatchKey     // ID → key
	batchPrimary uint32                   // 0 = no key yet; else a key in batchKeys
	gossipKeys   gossipKeyring            // replicated gossip keyring (gossipkey.go); replaced whole, never mutated
	removedPeers []PeerTombstone          // removed raft servers (peers.go); replaced whole, never mutated

	// policyGen counts policy changes. It is local (not replicated, not in
	// snapshots): FSM.PolicyVersion exposes it for caching parsed policies.
	policyGen uint64
}

func newState() *state { return newStateSized(0) }

// newStateSized is newState with the token maps sized for n tokens.
func newStateSized(n int) *state {
	return &state{
		recs:      newRecords(n),
		accessors: newAccessorIndex(n),
		children:  make(map[key]map[key]struct{}),
		expiry:    btree.NewG(32, expiryLess),
		paths:     newPathIndex(),
		policies:  make(map[string]*policyRecord),
		roles:     make(map[string]*Role),
		batchKeys: make(map[uint32]*BatchKey),
	}
}

// tokenCount is the number of stored tokens.
func (s *state) tokenCount() int { return s.recs.len() }

// lookup returns the stored rec of a token hash (false for an unknown or
// malformed hash).
func (s *state) lookup(hash string) (*rec, bool) {
	k, ok := keyOf(hash)
	if !ok {
		return nil, false
	}
	return s.recs.get(k)
}

// insert stores t and indexes it. The caller has checked the fields and
// uniqueness; t is not retained.
func (s *state) insert(t *Token) {
	s.recs.put(t)
	k, _ := keyOf(t.Hash)
	s.accessors.set(t.Accessor, k)
	if t.Parent != "" {
		p, _ := keyOf(t.Parent)
		s.indexChild(p, k)
	}
	if t.ExpireTime != 0 {
		s.expiry.ReplaceOrInsert(expiryItem{t.ExpireTime, k})
	}
	if t.Path != "" {
		s.paths.ReplaceOrInsert(pathItem{in(t.Path), k})
	}
}

// indexChild adds child to parent's children set.
func (s *state) indexChild(parent, child key) {
	set := s.children[parent]
	if set == nil {
		set = make(map[key]struct{})
		s.children[parent] = set
	}
	set[child] = struct{}{}
}

// indexRestored finishes a restore: every token is in the store and the
// accessor index already, perPath counts them per creation path. It checks
// the parents (every one stored, no cycle) and builds the children, expiry
// and path indexes, walking the store's slab (stream order) rather than
// its map.
func (s *state) indexRestored(perPath map[string]int) error {
	if err := s.checkTree(); err != nil {
		return err
	}
	// Size each path's hash set up front: a million tokens share a handful
	// of paths, and growing one set to a million entries rehashes it
	// twenty times.
	for path, n := range perPath {
		s.paths.reserve(path, n)
	}
	expiring := make([]expiryItem, 0, s.tokenCount())
	lastShape := ^uint32(0)
	var lastSet map[key]struct{}
	s.recs.each(func(r *rec) bool {
		if r.hasParent() {
			s.indexChild(r.parent, r.hash)
		}
		if r.expireTime != 0 {
			expiring = append(expiring, expiryItem{r.expireTime, r.hash})
		}
		// A stream holds long runs of one shape (so one path).
		if r.shape != lastShape {
			lastShape, lastSet = r.shape, nil
			if path := s.recs.shapes[r.shape].path; path != "" {
				lastSet = s.paths.byPath[path]
			}
		}
		if lastSet != nil {
			lastSet[r.hash] = struct{}{} // hashes are unique: a new entry
			s.paths.n++
		}
		return true
	})
	// Inserting in key order always descends the btree's rightmost path,
	// which stays in cache: far cheaper than a million random inserts.
	slices.SortFunc(expiring, func(a, b expiryItem) int {
		if a.at != b.at {
			return cmp.Compare(a.at, b.at)
		}
		return compareKeys(a.hash, b.hash)
	})
	for _, it := range expiring {
		s.expiry.ReplaceOrInsert(it)
	}
	return nil
}

// replace stores t over the stored record old of the same token (same
// hash, accessor, parent and path; only expiry and other plain fields may
// differ).
func (s *state) replace(old, t *Token) {
	k, _ := keyOf(t.Hash)
	if old.ExpireTime != 0 {
		s.expiry.Delete(expiryItem{old.ExpireTime, k})
	}
	if t.ExpireTime != 0 {
		s.expiry.ReplaceOrInsert(expiryItem{t.ExpireTime, k})
	}
	s.recs.put(t)
}

// remove deletes one token and its index entries. Its own children entry is
// dropped too; the caller either removes the children as well or has
// re-parented them.
func (s *state) remove(k key) {
	r, ok := s.recs.get(k)
	if !ok {
		return
	}
	if acc := s.recs.accessor(r); s.accessors.is(acc, k) {
		s.accessors.del(acc)
	}
	if r.hasParent() {
		if set := s.children[r.parent]; set != nil {
			delete(set, k)
			if len(set) == 0 {
				delete(s.children, r.parent)
			}
		}
	}
	delete(s.children, k)
	if r.expireTime != 0 {
		s.expiry.Delete(expiryItem{r.expireTime, k})
	}
	if path := s.recs.shapes[r.shape].path; path != "" {
		s.paths.Delete(pathItem{path, k})
	}
	s.recs.del(k)
}

// subtree returns root and all its descendants, parents before children.
func (s *state) subtree(root key) []key {
	return s.appendSubtree(root, make(map[key]struct{}), nil)
}

// appendSubtree appends root and its descendants that are not yet in seen
// to out, parents before children, and adds them to seen. A root that is
// not stored or already seen adds nothing. Iterative and cycle-safe: no
// recursion depth limit, each token once.
func (s *state) appendSubtree(root key, seen map[key]struct{}, out []key) []key {
	if !s.recs.has(root) {
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
			if r, ok := s.recs.get(c); !ok || !r.hasParent() || r.parent != out[i] {
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
func (f *FSM) revoke(roots []key) int {
	s := f.st // read without mu: Apply is the only writer
	seen := make(map[key]struct{})
	var order []key
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
			for _, k := range order {
				s.remove(k)
			}
		})
		return n
	}
	f.section(func(*state) { f.pend = &pending{doomed: seen, left: n} })
	for i := 0; i < n; i += f.chunk {
		part := order[i:min(i+f.chunk, n)]
		f.section(func(s *state) {
			for _, k := range part {
				s.remove(k)
			}
			f.pend.left -= len(part)
		})
	}
	return n
}

// revokeHash is revoke of one root given as a token hash (a malformed hash
// names no token).
func (f *FSM) revokeHash(hash string) int {
	k, ok := keyOf(hash)
	if !ok {
		return 0
	}
	return f.revoke([]key{k})
}

// validAt reports whether r and every ancestor are present, not exhausted
// and not expired at now. The walk is iterative and bounded by the number of
// stored tokens, so a (corrupt) cycle cannot loop forever.
func (s *state) validAt(r *rec, now int64) bool {
	for steps := 0; steps <= s.recs.len(); steps++ {
		if r.numUses < 0 || r.expiredAt(now) {
			return false
		}
		if !r.hasParent() {
			return true
		}
		p, ok := s.recs.get(r.parent)
		if !ok {
			return false
		}
		r = p
	}
	return false
}

// ancestorsValidAt reports whether every ancestor of r (not r itself) is
// present and valid at now.
func (s *state) ancestorsValidAt(r *rec, now int64) bool {
	if !r.hasParent() {
		return true
	}
	p, ok := s.recs.get(r.parent)
	return ok && s.validAt(p, now)
}

// sortedChildren lists a token's direct children, sorted.
func (s *state) sortedChildren(k key) []key {
	set := s.children[k]
	if len(set) == 0 {
		return nil
	}
	out := make([]key, 0, len(set))
	for c := range set {
		out = append(out, c)
	}
	slices.SortFunc(out, compareKeys)
	return out
}

// accessorIndex maps accessors to token hashes without a pointer per
// entry: accessors up to accInline bytes (all that proposers make) are
// fixed-size keys; longer ones go to a string-keyed map.
type accessorIndex struct {
	short map[accKey]key
	long  map[string]key
}

// accKey is an accessor of at most accInline bytes, with its length.
type accKey struct {
	n uint8
	b [accInline]byte
}

func newAccessorIndex(n int) *accessorIndex {
	return &accessorIndex{short: make(map[accKey]key, n), long: make(map[string]key)}
}

func toAccKey(acc string) (accKey, bool) {
	var a accKey
	if len(acc) > accInline {
		return a, false
	}
	a.n = uint8(copy(a.b[:], acc))
	return a, true
}

func (a accKey) String() string { return string(a.b[:a.n]) }

// get returns the hash acc maps to.
func (ai *accessorIndex) get(acc string) (key, bool) {
	if ak, ok := toAccKey(acc); ok {
		k, ok := ai.short[ak]
		return k, ok
	}
	k, ok := ai.long[acc]
	return k, ok
}

// is reports whether acc maps to k.
func (ai *accessorIndex) is(acc string, k key) bool {
	got, ok := ai.get(acc)
	return ok && got == k
}

func (ai *accessorIndex) set(acc string, k key) {
	if ak, ok := toAccKey(acc); ok {
		ai.short[ak] = k
		return
	}
	ai.long[acc] = k
}

// setNew adds acc → k and reports false when acc was indexed already (a
// restore's fast path: one map operation; the index is then corrupt and
// the caller must discard it).
func (ai *accessorIndex) setNew(acc string, k key) bool {
	n := ai.len()
	ai.set(acc, k)
	return ai.len() > n
}

func (ai *accessorIndex) del(acc string) {
	if ak, ok := toAccKey(acc); ok {
		delete(ai.short, ak)
		return
	}
	delete(ai.long, acc)
}

func (ai *accessorIndex) len() int { return len(ai.short) + len(ai.long) }

// each calls fn for every entry, in map order.
func (ai *accessorIndex) each(fn func(acc string, k key)) {
	for a, k := range ai.short {
		fn(a.String(), k)
	}
	for a, k := range ai.long {
		fn(a, k)
	}
}

// clone copies the index (a point-in-time copy for Digest).
func (ai *accessorIndex) clone() *accessorIndex {
	return &accessorIndex{short: maps.Clone(ai.short), long: maps.Clone(ai.long)}
}
