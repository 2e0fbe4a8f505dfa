package fsm

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// Snapshot format identifiers written in the header line.
const (
	SnapshotFormat  = "tokend-fsm"
	SnapshotVersion = 1
)

// Snapshot is a point-in-time copy of the state, taken quickly under the
// FSM's read lock (it copies pointers to immutable token records) and
// written later, outside any lock, by WriteTo.
//
// The stream is JSON lines: a header {"format","version","applied_index"},
// one "meta" record, then one "policy" record per ACL policy (name order),
// one "role" record per token role (name order), one "batch_key" record per
// batch-token key (ID order), one "token" record per token (hash order),
// and an "end" record with the counts (so a truncated stream is detected).
//
// Compatibility: the policy, role and batch_key kinds, the meta field
// batch_primary and the end fields policies/roles/batch_keys were added
// within format version 1 without changing anything that was there before.
// A snapshot written before they existed has none of them and restores as
// an empty policy set, no roles and an empty keyring; an absent end count
// means zero, and the writer omits zero counts, so the snapshot of a state
// without them is byte-identical to the old format. A binary older than
// these kinds rejects a snapshot that has them ("unknown kind") instead of
// silently dropping replicated state.
//
// Secrecy: batch_key records hold the batch-token keyring (cluster secret
// state, as Vault keeps its barrier keyring) and meta holds the index key;
// snapshots must be stored like the raft log. No token ID is ever written.
type Snapshot struct {
	applied      uint64
	initialized  bool
	clusterID    string
	indexKey     []byte
	tokens       []*Token
	policies     []*policyRecord
	roles        []*Role
	batchKeys    []*BatchKey
	batchPrimary uint32
	gossipKeys   gossipKeyring

	sortOnce sync.Once
}

type snapHeader struct {
	Format       string `json:"format"`
	Version      int    `json:"version"`
	AppliedIndex uint64 `json:"applied_index"`
}

type snapRecord struct {
	Kind         string         `json:"kind"`
	Initialized  bool           `json:"initialized,omitempty"`
	ClusterID    string         `json:"cluster_id,omitempty"`
	IndexKey     []byte         `json:"index_key,omitempty"`
	BatchPrimary uint32         `json:"batch_primary,omitempty"`
	GossipKeys   *gossipKeyring `json:"gossip_keyring,omitempty"`
	Policy       *policyRecord  `json:"policy,omitempty"`
	Role         *Role          `json:"role,omitempty"`
	BatchKey     *BatchKey      `json:"batch_key,omitempty"`
	Token        *Token         `json:"token,omitempty"`
	Count        *int           `json:"count,omitempty"`
	Policies     *int           `json:"policies,omitempty"`
	Roles        *int           `json:"roles,omitempty"`
	BatchKeys    *int           `json:"batch_keys,omitempty"`
}

const (
	recordMeta     = "meta"
	recordPolicy   = "policy"
	recordRole     = "role"
	recordBatchKey = "batch_key"
	recordToken    = "token"
	recordEnd      = "end"
)

// nonZero returns &n, or nil for 0 (an absent count means zero).
func nonZero(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}

// countIs reports whether an optional end-record count matches n.
func countIs(c *int, n int) bool {
	if c == nil {
		return n == 0
	}
	return *c == n
}

// Snapshot takes a point-in-time copy of the state and its applied index.
func (f *FSM) Snapshot() (*Snapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := &Snapshot{
		applied:     f.applied,
		initialized: f.st.initialized,
		clusterID:   f.st.clusterID,
		indexKey:    slices.Clone(f.st.indexKey),
		tokens:      make([]*Token, 0, len(f.st.tokens)),

		batchPrimary: f.st.batchPrimary,
		gossipKeys:   f.st.gossipKeys,
	}
	for _, t := range f.st.tokens {
		s.tokens = append(s.tokens, t)
	}
	// The records are immutable: copying pointers is a point-in-time copy.
	for _, p := range f.st.policies {
		s.policies = append(s.policies, p)
	}
	for _, r := range f.st.roles {
		s.roles = append(s.roles, r)
	}
	for _, k := range f.st.batchKeys {
		s.batchKeys = append(s.batchKeys, k)
	}
	return s, nil
}

// AppliedIndex is the raft index the snapshot was taken at.
func (s *Snapshot) AppliedIndex() uint64 { return s.applied }

// Len is the number of tokens in the snapshot.
func (s *Snapshot) Len() int { return len(s.tokens) }

// WriteTo writes the snapshot stream to w. It may be called more than once.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	hdr, err := json.Marshal(snapHeader{Format: SnapshotFormat, Version: SnapshotVersion, AppliedIndex: s.applied})
	if err != nil {
		return 0, err
	}
	bw.Write(hdr)
	bw.WriteByte('\n')
	if err := s.writeBody(bw); err != nil {
		return cw.n, err
	}
	err = bw.Flush()
	return cw.n, err
}

// writeBody writes every record after the header: the canonical form of the
// state that Hash digests. Determinism: every kind in key order, maps
// encoded with sorted keys by encoding/json.
func (s *Snapshot) writeBody(w *bufio.Writer) error {
	s.sortOnce.Do(func() {
		slices.SortFunc(s.tokens, func(a, b *Token) int { return strings.Compare(a.Hash, b.Hash) })
		slices.SortFunc(s.policies, func(a, b *policyRecord) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(s.roles, func(a, b *Role) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(s.batchKeys, func(a, b *BatchKey) int { return cmp.Compare(a.ID, b.ID) })
	})
	write := func(r snapRecord) error {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		w.Write(b)
		return w.WriteByte('\n')
	}
	meta := snapRecord{Kind: recordMeta, Initialized: s.initialized, ClusterID: s.clusterID, IndexKey: s.indexKey, BatchPrimary: s.batchPrimary}
	if s.gossipKeys.Version > 0 {
		// Secrecy: gossip keys go into the snapshot (SetGossipKeyring).
		meta.GossipKeys = &s.gossipKeys
	}
	if err := write(meta); err != nil {
		return err
	}
	for _, p := range s.policies {
		if err := write(snapRecord{Kind: recordPolicy, Policy: p}); err != nil {
			return err
		}
	}
	for _, r := range s.roles {
		if err := write(snapRecord{Kind: recordRole, Role: r}); err != nil {
			return err
		}
	}
	for _, k := range s.batchKeys {
		// Secrecy: key material goes into the snapshot (see Snapshot).
		if err := write(snapRecord{Kind: recordBatchKey, BatchKey: k}); err != nil {
			return err
		}
	}
	for _, t := range s.tokens {
		if err := write(snapRecord{Kind: recordToken, Token: t}); err != nil {
			return err
		}
	}
	n := len(s.tokens)
	return write(snapRecord{Kind: recordEnd, Count: &n,
		Policies: nonZero(len(s.policies)), Roles: nonZero(len(s.roles)), BatchKeys: nonZero(len(s.batchKeys))})
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Hash returns a deterministic digest (hex SHA-256) of the whole state,
// excluding the applied index: two nodes that applied the same log have the
// same Hash.
func (f *FSM) Hash() string {
	s, _ := f.Snapshot()
	h := sha256.New()
	bw := bufio.NewWriterSize(h, 64<<10)
	if err := s.writeBody(bw); err != nil {
		// Marshalling Token cannot fail; reaching here is a programmer error.
		panic(fmt.Sprintf("fsm: hash state: %v", err))
	}
	bw.Flush()
	return hex.EncodeToString(h.Sum(nil))
}

// Restore replaces the whole state (and the applied index) with the
// snapshot read from r. The new state is built and checked aside and swapped
// in under the write lock, so readers never see a half-restored store; on
// any error (unknown format or version, malformed or truncated stream,
// duplicate keys, dangling parents, parent cycles) the state is untouched.
func (f *FSM) Restore(r io.Reader) error {
	st, applied, err := readSnapshot(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	// The policy set may change arbitrarily: move the local version past
	// every value readers have seen, so no cache entry survives.
	st.policyGen = f.st.policyGen + 1
	f.st, f.applied = st, applied
	f.publish()
	f.mu.Unlock()
	return nil
}

func badSnapshot(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrBadSnapshot)
}

func readSnapshot(r io.Reader) (*state, uint64, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	var hdr snapHeader
	if err := dec.Decode(&hdr); err != nil {
		return nil, 0, badSnapshot("read header")
	}
	if hdr.Format != SnapshotFormat {
		return nil, 0, badSnapshot("unknown snapshot format %q", hdr.Format)
	}
	if hdr.Version != SnapshotVersion {
		return nil, 0, badSnapshot("unknown %s version %d", SnapshotFormat, hdr.Version)
	}

	st := newState()
	sawMeta := false
	for n := 0; ; n++ {
		var rec snapRecord
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, 0, badSnapshot("truncated after %d records", n)
			}
			// Secrecy: no body bytes in the error.
			return nil, 0, badSnapshot("record %d does not decode", n)
		}
		switch rec.Kind {
		case recordMeta:
			if sawMeta || n != 0 {
				return nil, 0, badSnapshot("record %d: unexpected meta record", n)
			}
			sawMeta = true
			st.initialized, st.clusterID, st.indexKey = rec.Initialized, rec.ClusterID, rec.IndexKey
			st.batchPrimary = rec.BatchPrimary
			if g := rec.GossipKeys; g != nil {
				if g.Version == 0 || validGossipKeys(g.Keys) != nil {
					return nil, 0, badSnapshot("record %d: invalid gossip keyring", n)
				}
				st.gossipKeys = *g
			}
		case recordPolicy:
			p := rec.Policy
			switch {
			case !sawMeta:
				return nil, 0, badSnapshot("record %d: policy before meta", n)
			case p == nil || p.Name == "" || p.Name == PolicyRoot:
				return nil, 0, badSnapshot("record %d: invalid policy record", n)
			case st.policies[p.Name] != nil:
				return nil, 0, badSnapshot("record %d: duplicate policy %q", n, p.Name)
			}
			st.policies[p.Name] = p
		case recordRole:
			r := rec.Role
			switch {
			case !sawMeta:
				return nil, 0, badSnapshot("record %d: role before meta", n)
			case r == nil || r.Name == "":
				return nil, 0, badSnapshot("record %d: invalid role record", n)
			case st.roles[r.Name] != nil:
				return nil, 0, badSnapshot("record %d: duplicate role %q", n, r.Name)
			}
			st.roles[r.Name] = r
		case recordBatchKey:
			k := rec.BatchKey
			switch {
			case !sawMeta:
				return nil, 0, badSnapshot("record %d: batch key before meta", n)
			case k == nil || k.ID == 0 || len(k.Key) != BatchKeySize:
				// Secrecy: never quote key material.
				return nil, 0, badSnapshot("record %d: invalid batch key record", n)
			case st.batchKeys[k.ID] != nil:
				return nil, 0, badSnapshot("record %d: duplicate batch key %d", n, k.ID)
			}
			st.batchKeys[k.ID] = k
		case recordToken:
			if !sawMeta {
				return nil, 0, badSnapshot("record %d: token before meta", n)
			}
			if rec.Token == nil {
				return nil, 0, badSnapshot("record %d: empty token record", n)
			}
			t := rec.Token
			if err := st.checkNewToken("restore", t); err != nil {
				return nil, 0, badSnapshot("record %d: %v", n, err)
			}
			st.insert(t)
		case recordEnd:
			if !sawMeta || rec.Count == nil || *rec.Count != len(st.tokens) {
				return nil, 0, badSnapshot("record %d: end record does not match %d tokens", n, len(st.tokens))
			}
			if !countIs(rec.Policies, len(st.policies)) || !countIs(rec.Roles, len(st.roles)) || !countIs(rec.BatchKeys, len(st.batchKeys)) {
				return nil, 0, badSnapshot("record %d: end record does not match %d policies, %d roles, %d batch keys",
					n, len(st.policies), len(st.roles), len(st.batchKeys))
			}
			if _, ok := st.batchKeys[st.batchPrimary]; ok != (st.batchPrimary != 0) || (st.batchPrimary == 0 && len(st.batchKeys) != 0) {
				return nil, 0, badSnapshot("batch key primary %d does not match the keyring", st.batchPrimary)
			}
			var extra json.RawMessage
			if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
				return nil, 0, badSnapshot("data after end record")
			}
			if err := st.checkTree(); err != nil {
				return nil, 0, err
			}
			return st, hdr.AppliedIndex, nil
		default:
			return nil, 0, badSnapshot("record %d: unknown kind %q", n, rec.Kind)
		}
	}
}

// checkTree verifies that every parent exists and that parent links form no
// cycle (Apply can never create either; a snapshot might carry them).
func (s *state) checkTree() error {
	const (
		walking = 1
		done    = 2
	)
	mark := make(map[string]uint8, len(s.tokens))
	var path []string
	for h := range s.tokens {
		path = path[:0]
		for cur := h; mark[cur] != done; {
			if mark[cur] == walking {
				return badSnapshot("token %s: parent cycle", shortHash(cur))
			}
			mark[cur] = walking
			path = append(path, cur)
			p := s.tokens[cur].Parent
			if p == "" {
				break
			}
			if _, ok := s.tokens[p]; !ok {
				return badSnapshot("token %s: parent not in snapshot", shortHash(cur))
			}
			cur = p
		}
		for _, x := range path {
			mark[x] = done
		}
	}
	return nil
}
