package fsm

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// FSM is the replicated token state machine. Apply is called by one
// goroutine (raft's FSM goroutine) in log order; every reader method is safe
// for concurrent use and returns copies.
//
// Locks, in order: wmu, then mu. wmu serialises the writers (Apply, Restore,
// CorruptIndexForTest) and is held for a whole command; Snapshot and Check
// take it too, to see a settled state. mu guards the state against readers:
// readers hold it for reading, and a writer holds it for writing only while
// it edits the state. Small commands edit under one hold of mu; large ones
// (revocations of many tokens, orphaning many children, tidy) compute what
// to change without mu — Apply is the only writer, so reading the state
// unlocked is safe for it — then publish a pending overlay that makes the
// command's final state visible to readers at once, and edit the maps in
// chunks of at most chunk tokens per hold of mu (see pending). So a reader
// never waits for the writer longer than one small critical section. The
// state behind st is replaced whole by Restore, never edited from outside
// Apply.
type FSM struct {
	wmu sync.Mutex

	mu      sync.RWMutex
	st      *state
	applied uint64
	// pend is the overlay of the large command being applied (nil when
	// none); guarded by mu.
	pend *pending
	// chunk bounds the tokens one critical section of a large command
	// edits (defaultChunk; tests make it small).
	chunk int
	// afterSection, when set (tests only), runs after each critical
	// section of a large command, outside mu.
	afterSection func()

	// policyVersion mirrors st.policyGen for lock-free reads; it is stored
	// under mu after every Apply and Restore.
	policyVersion atomic.Uint64
	// ident mirrors st's cluster identity for lock-free reads (every request
	// reads it for X-Vault-Index): stored under mu after every Apply and
	// Restore; nil until a SetClusterIdent was applied.
	ident atomic.Pointer[clusterIdent]
}

// clusterIdent is an immutable copy of the cluster identity.
type clusterIdent struct {
	id  string
	key []byte
}

// defaultChunk is how many tokens one critical section of a large command
// edits: a few hundred map and btree removals, so readers queued behind the
// writer wait for that and never for the whole command
// (BenchmarkRevokeTree100k reports the longest section observed).
const defaultChunk = 256

// pending is the overlay readers apply while a large command is being
// applied in chunks. It is built without the lock, published in one
// critical section (from then on every reader sees the command's final
// state), and cleared in the last one, together with the applied index.
//
// Its sets are never changed after publication.
type pending struct {
	// doomed holds every token the command removes: readers treat a doomed
	// token as absent, whether or not its record is still stored.
	doomed map[key]struct{}
	// left counts the doomed tokens still stored (Len subtracts it).
	left int
	// orphans holds the children a RevokeOrphan turns into orphans:
	// readers see them with no parent before their records are replaced.
	orphans map[key]struct{}
}

// visible returns the stored token as readers may see it: absent when it is
// doomed, and with orphan set when its parent link is being cut (the caller
// shows it with no parent). The caller holds mu for reading.
func (f *FSM) visible(k key) (r *rec, orphan, ok bool) {
	r, ok = f.st.recs.get(k)
	if !ok {
		return nil, false, false
	}
	if p := f.pend; p != nil {
		if _, gone := p.doomed[k]; gone {
			return nil, false, false
		}
		if _, o := p.orphans[k]; o && r.hasParent() {
			return r, true, true
		}
	}
	return r, false, true
}

// visibleCopy is visible as a Token copy for the caller; hash is k as the
// caller has it ("" when it has not).
func (f *FSM) visibleCopy(k key, hash string) (Token, bool) {
	r, orphan, ok := f.visible(k)
	if !ok {
		return Token{}, false
	}
	t := recToken(r, f.st.recs.shapes, f.st.recs.longAcc, hash)
	c := t.clone()
	if orphan {
		c.Parent = ""
	}
	return c, true
}

// validVisible is state.validAt as readers see the state (pending overlay
// applied): the token and every ancestor visible, not exhausted, not
// expired at now. Bounded by the number of stored tokens, like validAt. The
// caller holds mu for reading.
func (f *FSM) validVisible(k key, now int64) bool {
	r, orphan, ok := f.visible(k)
	for steps := 0; ok && steps <= f.st.recs.len(); steps++ {
		if r.numUses < 0 || r.expiredAt(now) {
			return false
		}
		if !r.hasParent() || orphan {
			return true
		}
		r, orphan, ok = f.visible(r.parent)
	}
	return false
}

// section runs fn as one critical section of a large command.
func (f *FSM) section(fn func(s *state)) {
	f.mu.Lock()
	fn(f.st)
	f.mu.Unlock()
	if f.afterSection != nil {
		f.afterSection()
	}
}

// publish refreshes the lock-free mirrors of st; the caller holds mu.
func (f *FSM) publish() {
	f.policyVersion.Store(f.st.policyGen)
	if f.st.clusterID == "" {
		f.ident.Store(nil)
	} else if cur := f.ident.Load(); cur == nil || cur.id != f.st.clusterID {
		f.ident.Store(&clusterIdent{id: f.st.clusterID, key: slices.Clone(f.st.indexKey)})
	}
}

var _ Reader = (*FSM)(nil)

// New returns an empty state machine.
func New() *FSM {
	return &FSM{st: newState(), chunk: defaultChunk}
}

// Apply decodes and applies one committed log entry at the given raft index.
// A rejected command returns Result.Err and changes nothing (except the last
// applied index). An unknown type with the Skippable bit is ignored.
//
// Apply panics when a committed entry cannot be decoded or has an unknown
// non-skippable type: diverging silently from the other nodes is worse than
// stopping. The panic names type, index and length, never the body.
func (f *FSM) Apply(index uint64, entry []byte) Result {
	c, err := Decode(entry)
	if err != nil {
		t := typeOf(entry)
		if _, known := registry[t]; !known && len(entry) >= 2 && t&Skippable != 0 {
			f.wmu.Lock()
			defer f.wmu.Unlock()
			f.mu.Lock()
			f.applied = index
			f.mu.Unlock()
			return Result{}
		}
		// Secrecy: err carries only type/version/length, never body bytes.
		panic(fmt.Sprintf("fsm: cannot apply committed entry: type=%d index=%d len=%d: %v", uint8(t), index, len(entry), err))
	}
	r := registry[c.CommandType()]

	f.wmu.Lock()
	defer f.wmu.Unlock()
	if r.large != nil {
		res := r.large(f, c)
		// The last critical section: the overlay goes, the index moves.
		f.mu.Lock()
		f.pend = nil
		f.applied = index
		f.publish()
		f.mu.Unlock()
		return res
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	res := r.apply(f.st, c)
	f.applied = index
	f.publish()
	return res
}

// LastApplied returns the raft index of the last entry applied (or restored).
func (f *FSM) LastApplied() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.applied
}

// Token implements Reader.
func (f *FSM) Token(hash string) (Token, bool) {
	k, ok := keyOf(hash)
	if !ok {
		return Token{}, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.visibleCopy(k, hash)
}

// TokenByAccessor implements Reader.
func (f *FSM) TokenByAccessor(accessor string) (Token, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	k, ok := f.st.accessors.get(accessor)
	if !ok {
		return Token{}, false
	}
	// Not accessor itself: a corrupt index entry may name another token.
	return f.visibleCopy(k, "")
}

// Valid implements Reader: the token is stored, not exhausted, not expired
// at now, and neither is any ancestor. The ancestor walk is iterative and
// cycle-safe; its cost is the token's depth.
func (f *FSM) Valid(hash string, now int64) (Token, bool) {
	k, ok := keyOf(hash)
	if !ok {
		return Token{}, false
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	if !f.validVisible(k, now) {
		return Token{}, false
	}
	return f.visibleCopy(k, hash)
}

// Accessors implements Reader.
func (f *FSM) Accessors() []string {
	f.mu.RLock()
	out := make([]string, 0, f.st.accessors.len())
	f.st.accessors.each(func(a string, k key) {
		if f.pend != nil {
			if _, gone := f.pend.doomed[k]; gone {
				return
			}
		}
		out = append(out, a)
	})
	f.mu.RUnlock()
	slices.Sort(out)
	return out
}

// Children implements Reader.
func (f *FSM) Children(hash string) []string {
	k, ok := keyOf(hash)
	if !ok {
		return nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	p := f.pend
	if p != nil {
		if _, gone := p.doomed[k]; gone {
			return nil
		}
	}
	var out []string
	for _, c := range f.st.sortedChildren(k) {
		if p != nil {
			if _, gone := p.doomed[c]; gone {
				continue
			}
		}
		out = append(out, c.String())
	}
	return out
}

// Initialized implements Reader.
func (f *FSM) Initialized() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.initialized
}

// ClusterIdent implements Reader.
func (f *FSM) ClusterIdent() (id string, indexKey []byte) {
	// Lock-free: readers never queue behind Apply's write lock for this.
	ci := f.ident.Load()
	if ci == nil {
		return "", nil
	}
	return ci.id, slices.Clone(ci.key)
}

// NextExpiry implements Reader.
func (f *FSM) NextExpiry() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.pend == nil || len(f.pend.doomed) == 0 {
		if it, ok := f.st.expiry.Min(); ok {
			return it.at
		}
		return 0
	}
	var at int64
	f.st.expiry.Ascend(func(it expiryItem) bool {
		if _, gone := f.pend.doomed[it.hash]; gone {
			return true
		}
		at = it.at
		return false
	})
	return at
}

// Len implements Reader.
func (f *FSM) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if f.pend != nil {
		return f.st.tokenCount() - f.pend.left
	}
	return f.st.tokenCount()
}
