package fsm

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// Snapshot format identifiers written in the header line. Restore reads
// every version listed in snapshotVersions; WriteTo writes SnapshotVersion.
const (
	SnapshotFormat  = "tokend-fsm"
	SnapshotVersion = 2
)

// Snapshot is a point-in-time copy of the state, taken quickly under the
// FSM's writer lock (a frozen view of the copy-on-write token store and
// pointers to the other, immutable records) and written later, outside any
// lock, by WriteTo.
//
// Every version starts with a JSON header line {"format","version",
// "applied_index"}. Version 1 (JSON lines) is described in snapshot_v1.go;
// Restore still reads it. Version 2, written since 1,000,000-token
// snapshots had to be written and restored in seconds, keeps the same
// records in the same order — one meta, the policies (name order), the roles
// (name order), the batch keys (ID order), the tokens (hash order), one end
// record with the counts (so a truncated stream is detected) — each framed
// as [kind byte][uvarint body length][body]. Token bodies are binary
// (tagged fields, see token_codec.go); the few other records keep their JSON
// bodies. The header also carries the token count ("tokens") so Restore can
// size its maps up front.
//
// Compatibility: version 1 streams restore exactly as before. A binary that
// knows only version 1 rejects a version-2 snapshot ("unknown version")
// instead of misreading it, so during a rolling upgrade a snapshot written
// by an upgraded node only installs on upgraded nodes.
//
// Secrecy: batch_key records hold the batch-token keyring (cluster secret
// state, as Vault keeps its barrier keyring) and meta holds the index key;
// snapshots must be stored like the raft log. No token ID is ever written.
type Snapshot struct {
	applied      uint64
	initialized  bool
	clusterID    string
	indexKey     []byte
	recs         frozenRecords
	tokens       []*rec // recs in hash order, filled by sortRecords
	policies     []*policyRecord
	roles        []*Role
	batchKeys    []*BatchKey
	batchPrimary uint32
	gossipKeys   gossipKeyring
	removedPeers []PeerTombstone

	sortOnce sync.Once
}

type snapHeader struct {
	Format       string `json:"format"`
	Version      int    `json:"version"`
	AppliedIndex uint64 `json:"applied_index"`
	// Tokens is the token count (version 2; a sizing hint, the end record
	// is what is checked).
	Tokens int `json:"tokens,omitempty"`
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

	// RemovedPeers (meta record) are the removed-peer tombstones (peers.go).
	RemovedPeers []PeerTombstone `json:"removed_peers,omitempty"`
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
// It holds the writer lock (so it sees no command half-applied; raft calls
// it between applies anyway), not mu: readers are never blocked by it.
func (f *FSM) Snapshot() (*Snapshot, error) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return f.snapshotLocked(), nil
}

// snapshotLocked is Snapshot; the caller holds wmu.
func (f *FSM) snapshotLocked() *Snapshot {
	s := &Snapshot{
		applied:     f.applied,
		initialized: f.st.initialized,
		clusterID:   f.st.clusterID,
		indexKey:    slices.Clone(f.st.indexKey),
		recs:        f.st.recs.freeze(),

		batchPrimary: f.st.batchPrimary,
		gossipKeys:   f.st.gossipKeys,
		removedPeers: f.st.removedPeers,
	}
	// These records are immutable: copying pointers is a point-in-time copy.
	for _, p := range f.st.policies {
		s.policies = append(s.policies, p)
	}
	for _, r := range f.st.roles {
		s.roles = append(s.roles, r)
	}
	for _, k := range f.st.batchKeys {
		s.batchKeys = append(s.batchKeys, k)
	}
	return s
}

// AppliedIndex is the raft index the snapshot was taken at.
func (s *Snapshot) AppliedIndex() uint64 { return s.applied }

// Len is the number of tokens in the snapshot.
func (s *Snapshot) Len() int { return s.recs.n }

// WriteTo writes the snapshot stream (version 2) to w. It may be called
// more than once.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 256<<10)
	hdr, err := json.Marshal(snapHeader{Format: SnapshotFormat, Version: SnapshotVersion, AppliedIndex: s.applied, Tokens: s.recs.n})
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

// sortRecords puts every kind in key order (once per snapshot).
func (s *Snapshot) sortRecords() {
	s.sortOnce.Do(func() {
		s.tokens = s.recs.sorted()
		slices.SortFunc(s.policies, func(a, b *policyRecord) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(s.roles, func(a, b *Role) int { return strings.Compare(a.Name, b.Name) })
		slices.SortFunc(s.batchKeys, func(a, b *BatchKey) int { return cmp.Compare(a.ID, b.ID) })
	})
}

// Version-2 record kinds (the first byte of each frame).
const (
	frameMeta     = 'M'
	framePolicy   = 'P'
	frameRole     = 'R'
	frameBatchKey = 'K'
	frameToken    = 'T'
	frameEnd      = 'E'
)

// maxFrame bounds one version-2 record body, so a corrupt length cannot make
// Restore allocate without limit (a token body is a few hundred bytes).
const maxFrame = 16 << 20

// writeBody writes every record after the header in version 2: the
// canonical form of the state that Hash digests. Determinism: every kind in
// key order, maps encoded with sorted keys.
func (s *Snapshot) writeBody(w *bufio.Writer) error {
	s.sortRecords()
	var lenBuf [binary.MaxVarintLen64]byte
	frame := func(kind byte, body []byte) {
		w.WriteByte(kind)
		w.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(body)))])
		w.Write(body)
	}
	writeJSON := func(kind byte, r snapRecord) error {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		frame(kind, b)
		return nil
	}
	meta := snapRecord{Kind: recordMeta, Initialized: s.initialized, ClusterID: s.clusterID, IndexKey: s.indexKey, BatchPrimary: s.batchPrimary}
	if s.gossipKeys.Version > 0 {
		// Secrecy: gossip keys go into the snapshot (SetGossipKeyring).
		meta.GossipKeys = &s.gossipKeys
	}
	meta.RemovedPeers = s.removedPeers
	if err := writeJSON(frameMeta, meta); err != nil {
		return err
	}
	for _, p := range s.policies {
		if err := writeJSON(framePolicy, snapRecord{Kind: recordPolicy, Policy: p}); err != nil {
			return err
		}
	}
	for _, r := range s.roles {
		if err := writeJSON(frameRole, snapRecord{Kind: recordRole, Role: r}); err != nil {
			return err
		}
	}
	for _, k := range s.batchKeys {
		// Secrecy: key material goes into the snapshot (see Snapshot).
		if err := writeJSON(frameBatchKey, snapRecord{Kind: recordBatchKey, BatchKey: k}); err != nil {
			return err
		}
	}
	var buf []byte
	for _, r := range s.tokens {
		t := s.recs.token(r)
		buf = appendToken(buf[:0], &t)
		frame(frameToken, buf)
	}
	n := len(s.tokens)
	if err := writeJSON(frameEnd, snapRecord{Kind: recordEnd, Count: &n,
		Policies: nonZero(len(s.policies)), Roles: nonZero(len(s.roles)), BatchKeys: nonZero(len(s.batchKeys))}); err != nil {
		return err
	}
	return nil
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

// Hash returns a deterministic digest (hex SHA-256) of the records a
// snapshot holds, excluding the applied index: two nodes that applied the
// same log have the same Hash. Digest also covers the accessor index and
// reports the applied index it was taken at.
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
	f.wmu.Lock()
	defer f.wmu.Unlock()
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
	br := bufio.NewReaderSize(r, 256<<10)
	line, err := br.ReadSlice('\n')
	if err != nil {
		return nil, 0, badSnapshot("read header")
	}
	var hdr snapHeader
	if err := json.Unmarshal(line, &hdr); err != nil {
		return nil, 0, badSnapshot("read header")
	}
	if hdr.Format != SnapshotFormat {
		return nil, 0, badSnapshot("unknown snapshot format %q", hdr.Format)
	}
	rs := newRestorer(hdr.Tokens)
	switch hdr.Version {
	case 1:
		err = rs.readV1(br)
	case 2:
		err = rs.readV2Paused(br)
	default:
		return nil, 0, badSnapshot("unknown %s version %d", SnapshotFormat, hdr.Version)
	}
	if err != nil {
		return nil, 0, err
	}
	return rs.st, hdr.AppliedIndex, nil
}

// restorer builds a state from snapshot records, checking each as it comes;
// both format versions feed it the same records.
type restorer struct {
	st      *state
	n       int // records so far
	sawMeta bool
	// perPath counts the tokens of each creation path, to size the path
	// index's sets before they are filled.
	perPath map[string]int
}

// maxSizeHint caps the header's token count used to size maps up front:
// the header is not checked against the records until the end, so a corrupt
// count must not make Restore allocate gigabytes (larger states still
// restore, the maps just grow).
const maxSizeHint = 1 << 20

func newRestorer(tokens int) *restorer {
	tokens = min(max(tokens, 0), maxSizeHint)
	return &restorer{st: newStateSized(tokens), perPath: make(map[string]int)}
}

func (rs *restorer) meta(rec *snapRecord) error {
	if rs.sawMeta || rs.n != 0 {
		return badSnapshot("record %d: unexpected meta record", rs.n)
	}
	rs.sawMeta = true
	st := rs.st
	st.initialized, st.clusterID, st.indexKey = rec.Initialized, rec.ClusterID, rec.IndexKey
	st.batchPrimary = rec.BatchPrimary
	if g := rec.GossipKeys; g != nil {
		if g.Version == 0 || validGossipKeys(g.Keys) != nil {
			return badSnapshot("record %d: invalid gossip keyring", rs.n)
		}
		st.gossipKeys = *g
	}
	if err := validTombstones(rec.RemovedPeers); err != nil {
		return badSnapshot("record %d: %v", rs.n, err)
	}
	st.removedPeers = rec.RemovedPeers
	return nil
}

func (rs *restorer) policy(p *policyRecord) error {
	switch {
	case !rs.sawMeta:
		return badSnapshot("record %d: policy before meta", rs.n)
	case p == nil || p.Name == "" || p.Name == PolicyRoot:
		return badSnapshot("record %d: invalid policy record", rs.n)
	case rs.st.policies[p.Name] != nil:
		return badSnapshot("record %d: duplicate policy %q", rs.n, p.Name)
	}
	rs.st.policies[p.Name] = p
	return nil
}

func (rs *restorer) role(r *Role) error {
	switch {
	case !rs.sawMeta:
		return badSnapshot("record %d: role before meta", rs.n)
	case r == nil || r.Name == "":
		return badSnapshot("record %d: invalid role record", rs.n)
	case rs.st.roles[r.Name] != nil:
		return badSnapshot("record %d: duplicate role %q", rs.n, r.Name)
	}
	rs.st.roles[r.Name] = r
	return nil
}

func (rs *restorer) batchKey(k *BatchKey) error {
	switch {
	case !rs.sawMeta:
		return badSnapshot("record %d: batch key before meta", rs.n)
	case k == nil || k.ID == 0 || len(k.Key) != BatchKeySize:
		// Secrecy: never quote key material.
		return badSnapshot("record %d: invalid batch key record", rs.n)
	case rs.st.batchKeys[k.ID] != nil:
		return badSnapshot("record %d: duplicate batch key %d", rs.n, k.ID)
	}
	rs.st.batchKeys[k.ID] = k
	return nil
}

// token stores one token record (t is not retained).
func (rs *restorer) token(t *Token) error {
	if !rs.sawMeta {
		return badSnapshot("record %d: token before meta", rs.n)
	}
	if t == nil {
		return badSnapshot("record %d: empty token record", rs.n)
	}
	if err := checkTokenFields("restore", t); err != nil {
		return badSnapshot("record %d: %v", rs.n, err)
	}
	if t.Parent != "" && !validHash(t.Parent) {
		return badSnapshot("record %d: token %s: parent not in snapshot", rs.n, shortHash(t.Hash))
	}
	st := rs.st
	k, _ := keyOf(t.Hash)
	if !st.recs.putNew(k, t) {
		return badSnapshot("record %d: restore %s: %v", rs.n, shortHash(t.Hash), ErrTokenExists)
	}
	if !st.accessors.setNew(t.Accessor, k) {
		return badSnapshot("record %d: restore %s: %v", rs.n, t.Accessor, ErrAccessorExists)
	}
	if t.Path != "" {
		rs.perPath[t.Path]++
	}
	return nil
}

// end checks the end record; the caller checks that nothing follows it.
func (rs *restorer) end(rec *snapRecord) error {
	st := rs.st
	if !rs.sawMeta || rec.Count == nil || *rec.Count != st.tokenCount() {
		return badSnapshot("record %d: end record does not match %d tokens", rs.n, st.tokenCount())
	}
	if !countIs(rec.Policies, len(st.policies)) || !countIs(rec.Roles, len(st.roles)) || !countIs(rec.BatchKeys, len(st.batchKeys)) {
		return badSnapshot("record %d: end record does not match %d policies, %d roles, %d batch keys",
			rs.n, len(st.policies), len(st.roles), len(st.batchKeys))
	}
	if _, ok := st.batchKeys[st.batchPrimary]; ok != (st.batchPrimary != 0) || (st.batchPrimary == 0 && len(st.batchKeys) != 0) {
		return badSnapshot("batch key primary %d does not match the keyring", st.batchPrimary)
	}
	return st.indexRestored(rs.perPath)
}

// readV2Paused is readV2 with the garbage collector paused: a version-2
// restore allocates little garbage (see pauseGC).
func (rs *restorer) readV2Paused(br *bufio.Reader) error {
	defer pauseGC()()
	return rs.readV2(br)
}

// readV2 reads the framed records of version 2.
func (rs *restorer) readV2(br *bufio.Reader) error {
	var body []byte
	dec := &tokenDecoder{strs: make(map[string]string)}
	for ; ; rs.n++ {
		kind, err := br.ReadByte()
		if err != nil {
			return badSnapshot("truncated after %d records", rs.n)
		}
		size, err := binary.ReadUvarint(br)
		if err != nil || size > maxFrame {
			return badSnapshot("record %d: bad length", rs.n)
		}
		if uint64(cap(body)) < size {
			body = make([]byte, size)
		}
		body = body[:size]
		if _, err := io.ReadFull(br, body); err != nil {
			return badSnapshot("truncated after %d records", rs.n)
		}
		if kind == frameToken {
			t, err := dec.decode(body)
			if err != nil {
				// Secrecy: no body bytes in the error.
				return badSnapshot("record %d does not decode", rs.n)
			}
			if err := rs.token(t); err != nil {
				return err
			}
			continue
		}
		var rec snapRecord
		if err := json.Unmarshal(body, &rec); err != nil {
			return badSnapshot("record %d does not decode", rs.n)
		}
		switch {
		case kind == frameMeta && rec.Kind == recordMeta:
			err = rs.meta(&rec)
		case kind == framePolicy && rec.Kind == recordPolicy:
			err = rs.policy(rec.Policy)
		case kind == frameRole && rec.Kind == recordRole:
			err = rs.role(rec.Role)
		case kind == frameBatchKey && rec.Kind == recordBatchKey:
			err = rs.batchKey(rec.BatchKey)
		case kind == frameEnd && rec.Kind == recordEnd:
			if err := rs.end(&rec); err != nil {
				return err
			}
			if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
				return badSnapshot("data after end record")
			}
			return nil
		default:
			return badSnapshot("record %d: unknown kind %q", rs.n, kind)
		}
		if err != nil {
			return err
		}
	}
}

// checkTree verifies that every parent exists and that parent links form no
// cycle (Apply can never create either; a snapshot might carry them).
// Restore does the same in indexRestored; the tests check live states with
// it.
func (s *state) checkTree() error {
	// Only a token whose parent has a parent can be on a cycle.
	var deep []key
	var err error
	s.recs.each(func(r *rec) bool {
		if !r.hasParent() {
			return true
		}
		p, ok := s.recs.get(r.parent)
		if !ok {
			err = badSnapshot("token %s: parent not in snapshot", short(r.hash))
			return false
		}
		if p.hasParent() {
			deep = append(deep, r.hash)
		}
		return true
	})
	if err != nil {
		return err
	}
	return s.checkCycles(deep)
}

// checkCycles reports a parent cycle through any token of deep.
func (s *state) checkCycles(deep []key) error {
	const (
		walking = 1
		done    = 2
	)
	mark := make(map[key]uint8, len(deep))
	var path []key
	for _, k := range deep {
		path = path[:0]
		for cur := k; mark[cur] != done; {
			if mark[cur] == walking {
				return badSnapshot("token %s: parent cycle", short(cur))
			}
			mark[cur] = walking
			path = append(path, cur)
			r, ok := s.recs.get(cur)
			if !ok || !r.hasParent() {
				break
			}
			cur = r.parent
		}
		for _, x := range path {
			mark[x] = done
		}
	}
	return nil
}
