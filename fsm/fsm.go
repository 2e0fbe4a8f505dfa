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
// Lock order: mu is the only lock. Apply and Restore hold it for writing;
// readers and Snapshot hold it for reading. The state behind st is replaced
// whole by Restore, never edited from outside Apply.
type FSM struct {
	mu      sync.RWMutex
	st      *state
	applied uint64

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
	return &FSM{st: newState()}
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
		var t Type
		if len(entry) > 0 {
			t = Type(entry[0])
		}
		if _, known := registry[t]; !known && len(entry) >= 2 && t&Skippable != 0 {
			f.mu.Lock()
			f.applied = index
			f.mu.Unlock()
			return Result{}
		}
		// Secrecy: err carries only type/version/length, never body bytes.
		panic(fmt.Sprintf("fsm: cannot apply committed entry: type=%d index=%d len=%d: %v", uint8(t), index, len(entry), err))
	}
	r := registry[c.CommandType()]

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
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.st.tokens[hash]
	if !ok {
		return Token{}, false
	}
	return t.clone(), true
}

// TokenByAccessor implements Reader.
func (f *FSM) TokenByAccessor(accessor string) (Token, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.st.tokens[f.st.accessors[accessor]]
	if !ok {
		return Token{}, false
	}
	return t.clone(), true
}

// Valid implements Reader: the token is stored, not exhausted, not expired
// at now, and neither is any ancestor. The ancestor walk is iterative and
// cycle-safe; its cost is the token's depth.
func (f *FSM) Valid(hash string, now int64) (Token, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.st.tokens[hash]
	if !ok || !f.st.validAt(t, now) {
		return Token{}, false
	}
	return t.clone(), true
}

// Accessors implements Reader.
func (f *FSM) Accessors() []string {
	f.mu.RLock()
	out := make([]string, 0, len(f.st.accessors))
	for a := range f.st.accessors {
		out = append(out, a)
	}
	f.mu.RUnlock()
	slices.Sort(out)
	return out
}

// Children implements Reader.
func (f *FSM) Children(hash string) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.sortedChildren(hash)
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
	if it, ok := f.st.expiry.Min(); ok {
		return it.at
	}
	return 0
}

// Len implements Reader.
func (f *FSM) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.st.tokens)
}
