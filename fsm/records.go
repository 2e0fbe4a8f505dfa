package fsm

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"slices"
)

// The token store holds no pointer per token. A million tokens held as
// map[string]*Token plus string-keyed indexes were about twenty pointers
// and three objects per token, and the garbage collector marked all of
// them every cycle: at 1,000,000 tokens marking ran 40% of the time and
// lookup-self/s fell to 0.69 of its rate at 10,000. Here a token is a
// fixed-size rec in a slab of chunks, found through map[key]uint32; the
// indexes are keyed by the binary hash; the values that repeat across
// tokens (policies, path, type, meta, ...) live in a shared, interned shape
// that a rec names by number. Neither the maps nor the chunks contain a
// pointer, so the collector never scans them.

// key is a token hash in binary: the 32 HMAC-SHA256 bytes that Token.Hash
// spells as 64 lowercase hex digits. Byte order equals hex order.
type key [32]byte

// keyOf parses a token hash (64 lowercase hex digits); ok is false for
// anything else. One table lookup per digit: it runs several times per
// token of a restore.
func keyOf(hash string) (k key, ok bool) {
	if len(hash) != 2*len(k) {
		return k, false
	}
	bad := byte(0)
	for i := range k {
		hi, lo := hexVal[hash[2*i]], hexVal[hash[2*i+1]]
		bad |= hi | lo
		k[i] = hi<<4 | lo&0x0f
	}
	return k, bad&0x80 == 0
}

// hexVal maps a lowercase hex digit to its value and every other byte to
// 0xff (the high bit marks it invalid).
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c - '0'
	}
	for c := byte('a'); c <= 'f'; c++ {
		t[c] = c - 'a' + 10
	}
	return t
}()

// String is the hex token hash.
func (k key) String() string { return hex.EncodeToString(k[:]) }

func compareKeys(a, b key) int { return bytes.Compare(a[:], b[:]) }

// accInline is the longest accessor stored inside a rec; longer ones (no
// proposer makes them, but a command may carry one) live in
// records.longAcc.
const accInline = 32

// accLong in rec.accLen marks an accessor kept in records.longAcc.
const accLong = 0xff

// rec flags.
const (
	recLive      = 1 << iota // the slot holds a token
	recHasParent             // parent is set
	recRenewable
)

// rec is one stored token without its shared parts. Times are Unix
// nanoseconds, durations seconds, as in Token.
type rec struct {
	hash    key
	parent  key // when flags&recHasParent
	acc     [accInline]byte
	accLen  uint8
	flags   uint8
	shape   uint32 // index into records.shapes
	numUses int64

	creationTime, creationTTL, ttl, explicitMaxTTL, period int64
	expireTime, issueTime, lastRenewalTime                 int64
}

func (r *rec) hasParent() bool { return r.flags&recHasParent != 0 }

// expiredAt is Token.ExpiredAt.
func (r *rec) expiredAt(now int64) bool { return r.expireTime != 0 && now >= r.expireTime }

// shape is the part of a token that many tokens share. It is immutable once
// interned; a rec names it by its index in records.shapes.
type shape struct {
	policies    []string
	meta        map[string]string
	displayName string
	path        string
	typ         string
	role        string
	entityID    string
	boundCIDRs  []string
	dialect     string
	ext         map[string][]byte
	key         string // its appendShapeKey encoding, its key in records.shapeIDs
}

// chunkRecs is the number of recs per chunk: a chunk is copied whole on
// its first write after a snapshot, so it stays small (45 KiB).
const chunkRecs = 256

// recChunk is one slab of recs. A chunk is written in place only while no
// snapshot holds it: epoch says which snapshot generation it belongs to.
type recChunk struct {
	epoch uint64
	recs  [chunkRecs]rec
}

// records is the token store. Apply is its only writer; readers read it
// under FSM.mu.
//
// Snapshots: frozen() copies the chunk list, the shape list and the long
// accessors and moves epoch on; from then on the first write to a chunk of
// an older epoch copies the chunk (copy on write), so the frozen view never
// changes. Shapes are immutable, and a freed shape number is only reused
// in the live list.
type records struct {
	slots  map[key]uint32 // hash → slot
	chunks []*recChunk
	free   []uint32 // slots of removed tokens, reused first
	epoch  uint64

	shapes     []*shape          // shape number → shape (nil when free)
	shapeRefs  []int32           // recs naming each shape
	shapeIDs   map[string]uint32 // shapeKey → shape number
	freeShapes []uint32

	longAcc map[key]string // accessors longer than accInline
}

func newRecords(sizeHint int) *records {
	return &records{slots: make(map[key]uint32, sizeHint), shapeIDs: make(map[string]uint32), longAcc: make(map[key]string)}
}

// len is the number of stored tokens.
func (rs *records) len() int { return len(rs.slots) }

// at returns the rec in slot i, for reading.
func (rs *records) at(i uint32) *rec { return &rs.chunks[i/chunkRecs].recs[i%chunkRecs] }

// get returns the stored rec for k, for reading.
func (rs *records) get(k key) (*rec, bool) {
	i, ok := rs.slots[k]
	if !ok {
		return nil, false
	}
	return rs.at(i), true
}

// has reports whether k is stored.
func (rs *records) has(k key) bool {
	_, ok := rs.slots[k]
	return ok
}

// writable returns slot i for writing, first copying its chunk when a
// snapshot holds it.
func (rs *records) writable(i uint32) *rec {
	c := rs.chunks[i/chunkRecs]
	if c.epoch != rs.epoch {
		cp := *c
		cp.epoch = rs.epoch
		c = &cp
		rs.chunks[i/chunkRecs] = c
	}
	return &c.recs[i%chunkRecs]
}

// put stores t, replacing the record with the same hash if there is one.
// It touches no index.
func (rs *records) put(t *Token) {
	k, ok := keyOf(t.Hash)
	if !ok {
		// The callers checked the hash (checkTokenFields); reaching here
		// is a programmer error.
		panic("fsm: put: not a token hash")
	}
	r := rs.build(k, t)
	i, exists := rs.slots[k]
	if exists {
		rs.releaseShape(rs.at(i).shape)
	} else {
		i = rs.newSlot()
		rs.slots[k] = i
	}
	*rs.writable(i) = r
}

// putNew stores t, whose hash is k, as a new record; a restore's fast path
// (one map operation). It reports false when k was stored already: the
// store is then corrupt and the caller must discard it.
func (rs *records) putNew(k key, t *Token) bool {
	r := rs.build(k, t)
	i := rs.newSlot()
	n := len(rs.slots)
	rs.slots[k] = i
	if len(rs.slots) == n {
		return false
	}
	*rs.writable(i) = r
	return true
}

// build makes the rec of t (hash k), interning its shape.
func (rs *records) build(k key, t *Token) rec {
	var r rec
	r.hash = k
	if t.Parent != "" {
		p, ok := keyOf(t.Parent)
		if !ok {
			panic("fsm: put: parent is not a token hash")
		}
		r.parent, r.flags = p, recHasParent
	}
	r.flags |= recLive
	if t.Renewable {
		r.flags |= recRenewable
	}
	if len(t.Accessor) <= accInline {
		r.accLen = uint8(copy(r.acc[:], t.Accessor))
		delete(rs.longAcc, k)
	} else {
		r.accLen = accLong
		rs.longAcc[k] = t.Accessor
	}
	r.numUses = int64(t.NumUses)
	r.creationTime, r.creationTTL, r.ttl = t.CreationTime, t.CreationTTL, t.TTL
	r.explicitMaxTTL, r.period, r.expireTime = t.ExplicitMaxTTL, t.Period, t.ExpireTime
	r.issueTime, r.lastRenewalTime = t.IssueTime, t.LastRenewalTime
	r.shape = rs.internShape(t)
	return r
}

// newSlot returns a free slot, growing the slab when there is none.
func (rs *records) newSlot() uint32 {
	if n := len(rs.free); n > 0 {
		i := rs.free[n-1]
		rs.free = rs.free[:n-1]
		return i
	}
	n := uint32(len(rs.chunks)) * chunkRecs
	used := uint32(len(rs.slots) + len(rs.free))
	if used == n {
		rs.chunks = append(rs.chunks, &recChunk{epoch: rs.epoch})
	}
	return used
}

// del removes the token k (a no-op when absent).
func (rs *records) del(k key) {
	i, ok := rs.slots[k]
	if !ok {
		return
	}
	r := rs.writable(i)
	rs.releaseShape(r.shape)
	if r.accLen == accLong {
		delete(rs.longAcc, k)
	}
	*r = rec{}
	delete(rs.slots, k)
	rs.free = append(rs.free, i)
}

// setParent replaces the parent of the stored token k (nil: none).
func (rs *records) setParent(k key, parent *key) {
	i, ok := rs.slots[k]
	if !ok {
		return
	}
	r := rs.writable(i)
	if parent == nil {
		r.parent, r.flags = key{}, r.flags&^recHasParent
	} else {
		r.parent, r.flags = *parent, r.flags|recHasParent
	}
}

// each calls fn for every stored rec, in slot order (not a replicated
// order: callers that produce results sort), until fn returns false.
func (rs *records) each(fn func(*rec) bool) {
	for _, c := range rs.chunks {
		for i := range c.recs {
			if c.recs[i].flags&recLive != 0 && !fn(&c.recs[i]) {
				return
			}
		}
	}
}

// accessor returns r's accessor.
func (rs *records) accessor(r *rec) string { return recAccessor(r, rs.longAcc) }

func recAccessor(r *rec, long map[key]string) string {
	if r.accLen == accLong {
		return long[r.hash]
	}
	return string(r.acc[:r.accLen])
}

// token returns r as a Token. The shape's lists and maps are shared with
// the store: callers that hand it out clone it.
func (rs *records) token(r *rec) Token { return recToken(r, rs.shapes, rs.longAcc, "") }

// recToken builds r as a Token; hash, when not "", is r's hash as the
// caller already has it (saving an allocation on the read path).
func recToken(r *rec, shapes []*shape, long map[key]string, hash string) Token {
	if hash == "" {
		hash = r.hash.String()
	}
	sh := shapes[r.shape]
	t := Token{
		Hash:            hash,
		Accessor:        recAccessor(r, long),
		Policies:        sh.policies,
		Meta:            sh.meta,
		DisplayName:     sh.displayName,
		Path:            sh.path,
		NumUses:         int(r.numUses),
		CreationTime:    r.creationTime,
		CreationTTL:     r.creationTTL,
		TTL:             r.ttl,
		ExplicitMaxTTL:  r.explicitMaxTTL,
		Period:          r.period,
		ExpireTime:      r.expireTime,
		IssueTime:       r.issueTime,
		LastRenewalTime: r.lastRenewalTime,
		Renewable:       r.flags&recRenewable != 0,
		Type:            sh.typ,
		Role:            sh.role,
		EntityID:        sh.entityID,
		BoundCIDRs:      sh.boundCIDRs,
		Dialect:         sh.dialect,
		Ext:             sh.ext,
	}
	if r.hasParent() {
		t.Parent = r.parent.String()
	}
	return t
}

// internShape returns the number of the shape of t, adding it (or a
// reference to it) to the table.
func (rs *records) internShape(t *Token) uint32 {
	var buf [256]byte
	sk := appendShapeKey(buf[:0], t)
	if id, ok := rs.shapeIDs[string(sk)]; ok { // no allocation for the lookup
		rs.shapeRefs[id]++
		return id
	}
	sh := &shape{
		policies:    internList(t.Policies),
		displayName: in(t.DisplayName),
		path:        in(t.Path),
		typ:         in(t.Type),
		role:        in(t.Role),
		entityID:    in(t.EntityID),
		boundCIDRs:  internList(t.BoundCIDRs),
		dialect:     in(t.Dialect),
		key:         string(sk),
	}
	if len(t.Meta) > 0 {
		sh.meta = make(map[string]string, len(t.Meta))
		for k, v := range t.Meta {
			sh.meta[in(k)] = v
		}
	}
	if len(t.Ext) > 0 {
		sh.ext = make(map[string][]byte, len(t.Ext))
		for k, v := range t.Ext {
			sh.ext[k] = slices.Clone(v)
		}
	}
	var id uint32
	if n := len(rs.freeShapes); n > 0 {
		id = rs.freeShapes[n-1]
		rs.freeShapes = rs.freeShapes[:n-1]
		rs.shapes[id], rs.shapeRefs[id] = sh, 1
	} else {
		id = uint32(len(rs.shapes))
		rs.shapes = append(rs.shapes, sh)
		rs.shapeRefs = append(rs.shapeRefs, 1)
	}
	rs.shapeIDs[sh.key] = id
	return id
}

// releaseShape drops one reference to shape id, freeing it with the last.
func (rs *records) releaseShape(id uint32) {
	rs.shapeRefs[id]--
	if rs.shapeRefs[id] > 0 {
		return
	}
	delete(rs.shapeIDs, rs.shapes[id].key)
	rs.shapes[id] = nil
	rs.freeShapes = append(rs.freeShapes, id)
}

// appendShapeKey appends the canonical encoding of t's shared fields (the
// token encoding of those fields alone: maps in key order, so equal shapes
// have equal keys and different ones different keys).
func appendShapeKey(b []byte, t *Token) []byte {
	return appendToken(b, &Token{
		Policies: t.Policies, Meta: t.Meta, DisplayName: t.DisplayName, Path: t.Path, Type: t.Type,
		Role: t.Role, EntityID: t.EntityID, BoundCIDRs: t.BoundCIDRs, Dialect: t.Dialect, Ext: t.Ext,
	})
}

// internList returns a copy of l with interned strings (nil when empty).
func internList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = in(s)
	}
	return out
}

// frozenRecords is a point-in-time view of the store (see records).
type frozenRecords struct {
	chunks  []*recChunk
	shapes  []*shape
	longAcc map[key]string
	n       int
}

// freeze returns a view that later writes do not change.
func (rs *records) freeze() frozenRecords {
	rs.epoch++
	long := make(map[key]string, len(rs.longAcc))
	for k, v := range rs.longAcc {
		long[k] = v
	}
	return frozenRecords{chunks: slices.Clone(rs.chunks), shapes: slices.Clone(rs.shapes), longAcc: long, n: len(rs.slots)}
}

// sorted returns the view's recs in hash order. Comparing recs directly
// follows a pointer per comparison, a cache miss each at a million tokens;
// each rec is paired with the first 8 bytes of its hash instead, and whole
// hashes are compared only on a tie (hashes are uniform: rare).
func (fr *frozenRecords) sorted() []*rec {
	type keyed struct {
		prefix uint64
		r      *rec
	}
	ks := make([]keyed, 0, fr.n)
	for _, c := range fr.chunks {
		for i := range c.recs {
			if r := &c.recs[i]; r.flags&recLive != 0 {
				ks = append(ks, keyed{binary.BigEndian.Uint64(r.hash[:8]), r})
			}
		}
	}
	slices.SortFunc(ks, func(a, b keyed) int {
		if c := cmp.Compare(a.prefix, b.prefix); c != 0 {
			return c
		}
		return compareKeys(a.r.hash, b.r.hash)
	})
	out := make([]*rec, len(ks))
	for i, k := range ks {
		out[i] = k.r
	}
	return out
}

// token is records.token on the view.
func (fr *frozenRecords) token(r *rec) Token { return recToken(r, fr.shapes, fr.longAcc, "") }
