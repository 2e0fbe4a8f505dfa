package fsm

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"maps"
	"slices"
	"sync"
)

// MinHashKeyLen is the shortest token hash key NewHasher accepts: 32
// bytes, the output size of SHA-256 (RFC 2104 recommends at least L).
const MinHashKeyLen = 32

// MaxHashKeyLen is the longest token hash key NewHasher accepts: one
// SHA-256 block; HMAC would hash a longer key down first anyway.
const MaxHashKeyLen = 64

// Hasher computes token hashes, the keys under which tokens are stored:
// the lowercase hex HMAC-SHA256 of the plaintext token ID under the
// cluster's token hash key. The key is never part of the state, a command
// or a snapshot (secrecy: someone holding the data dir can neither recover
// a token ID nor test a guessed one without it). Every node of a cluster
// must use the same key. A Hasher is safe for concurrent use.
type Hasher struct {
	pool sync.Pool // *hashState
}

// hashState is one reusable HMAC with scratch space, so that Hash does not
// allocate beyond its result string.
type hashState struct {
	mac hash.Hash // keyed HMAC-SHA256; Reset restores the precomputed inner/outer pads
	in  []byte    // the ID being hashed (hash.Hash.Write takes []byte)
	sum [sha256.Size]byte
	hex [sha256.Size * 2]byte
}

// NewHasher returns a Hasher keyed with key (MinHashKeyLen to MaxHashKeyLen
// bytes). The key is copied.
func NewHasher(key []byte) (*Hasher, error) {
	if len(key) < MinHashKeyLen || len(key) > MaxHashKeyLen {
		return nil, fmt.Errorf("token hash key must be %d to %d bytes (got %d)", MinHashKeyLen, MaxHashKeyLen, len(key))
	}
	k := bytes.Clone(key)
	h := &Hasher{}
	h.pool.New = func() any {
		return &hashState{mac: hmac.New(sha256.New, k), in: make([]byte, 0, 64)}
	}
	return h, nil
}

// Hash returns the token hash of a plaintext token ID (64 lowercase hex
// digits). The plaintext itself never enters the state machine.
func (h *Hasher) Hash(id string) string {
	st := h.pool.Get().(*hashState)
	st.mac.Reset()
	st.in = append(st.in[:0], id...)
	st.mac.Write(st.in)
	st.mac.Sum(st.sum[:0])
	hex.Encode(st.hex[:], st.sum[:])
	out := string(st.hex[:])
	// Secrecy: do not keep the last token ID in pooled memory.
	clear(st.in)
	if cap(st.in) > 1024 {
		st.in = make([]byte, 0, 64) // an outsized ID must not pin memory
	}
	h.pool.Put(st)
	return out
}

// KeyCheck returns a fingerprint of the key: HMAC of a fixed label, safe
// to publish (it reveals nothing about the key or any token) and equal on
// two nodes exactly when their keys are equal. Cluster members compare it
// so that a node with a different key never joins.
func (h *Hasher) KeyCheck() string {
	// The NUL byte keeps the label apart from every token ID (IDs are
	// printable), so the fingerprint is never a stored token's hash.
	return h.Hash("\x00tokend token hash key check v1")[:16]
}

// validHash reports whether h looks like Hasher.Hash output (64 lowercase hex
// digits). Secrecy: rejecting anything else keeps a plaintext token ID that
// was passed by mistake out of the log and the state.
func validHash(h string) bool {
	_, ok := keyOf(h)
	return ok
}

// shortHash is the prefix of a token hash that may appear in errors and logs.
func shortHash(h string) string {
	if len(h) > 8 {
		return h[:8]
	}
	return h
}

// clone returns a deep copy of t, so that callers can never alias the
// (immutable) records held by the state.
func (t *Token) clone() Token {
	c := *t
	c.Policies = slices.Clone(t.Policies)
	c.BoundCIDRs = slices.Clone(t.BoundCIDRs)
	c.Meta = maps.Clone(t.Meta)
	if t.Ext != nil {
		c.Ext = make(map[string][]byte, len(t.Ext))
		for k, v := range t.Ext {
			c.Ext[k] = slices.Clone(v)
		}
	}
	return c
}
