package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Vault's consistency headers (VAULT-API.md §6.2).
const (
	headerIndex        = "X-Vault-Index"
	headerForward      = "X-Vault-Forward"
	headerInconsistent = "X-Vault-Inconsistent"
	headerConsistent   = "X-Tokend-Consistent"
)

// encodeIndexState renders the X-Vault-Index value the official client
// parses (api.ParseReplicationState):
// base64("v1:<cluster id>:<index>:0:<hex hmac-sha256(key, state)>").
func encodeIndexState(clusterID string, key []byte, index uint64) string {
	// Every write answers with a new index: one allocation (the result),
	// and a pooled keyed HMAC instead of hmac.New's two pads per call.
	var buf [256]byte
	st := append(buf[:0], "v1:"...)
	st = append(st, clusterID...)
	st = append(st, ':')
	st = strconv.AppendUint(st, index, 10)
	st = append(st, ":0"...)
	sum := indexMACFor(key).sum(st)
	st = append(st, ':')
	st = hex.AppendEncode(st, sum[:])
	return base64.StdEncoding.EncodeToString(st)
}

// indexMAC is a pool of HMACs keyed with one index key (X-Vault-Index and
// the forwarded client address stamp, role.go, both use it).
type indexMAC struct {
	key  []byte
	pool sync.Pool // of hash.Hash
}

// indexMACs is the pool of the index key last used (a cluster has one).
var indexMACs atomic.Pointer[indexMAC]

// sum is the HMAC of b under m's key, from a pooled hash.
func (m *indexMAC) sum(b []byte) [sha256.Size]byte {
	mac := m.pool.Get().(hash.Hash)
	mac.Reset()
	mac.Write(b)
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	m.pool.Put(mac)
	return sum
}

func indexMACFor(key []byte) *indexMAC {
	if m := indexMACs.Load(); m != nil && bytes.Equal(m.key, key) {
		return m
	}
	m := &indexMAC{key: bytes.Clone(key)}
	m.pool.New = func() any { return hmac.New(sha256.New, m.key) }
	indexMACs.Store(m)
	return m
}

// indexValue is one computed X-Vault-Index header value. Every answer
// given at the same applied index carries the same value, so the HMAC is
// computed once per index instead of once per response.
type indexValue struct {
	id    string
	key   []byte
	index uint64
	// value is the header's value list, shared by every answer that
	// carries it: net/http only reads header values, nothing here appends
	// to or modifies them in place.
	value []string
}

// indexHeader returns the X-Vault-Index value list of index under the
// cluster identity (id, key), computed at most once per index.
func (s *server) indexHeader(id string, key []byte, index uint64) []string {
	if v := s.lastIndex.Load(); v != nil && v.index == index && v.id == id && bytes.Equal(v.key, key) {
		return v.value
	}
	v := &indexValue{id: id, key: bytes.Clone(key), index: index, value: []string{encodeIndexState(id, key, index)}}
	s.lastIndex.Store(v)
	return v.value
}

var errBadIndexState = errors.New("invalid X-Vault-Index header")

// requiredIndex parses every X-Vault-Index value (a header may be repeated,
// and a value may hold several comma-separated states) and returns the
// highest index required for this cluster. States of other clusters are
// ignored; a malformed state or one of this cluster with a bad HMAC is an error.
func requiredIndex(values []string, clusterID string, key []byte) (uint64, error) {
	var need uint64
	for _, v := range values {
		for _, raw := range strings.Split(v, ",") {
			raw = strings.TrimSpace(raw)
			if raw == "" {
				continue
			}
			cooked, err := base64.StdEncoding.DecodeString(raw)
			if err != nil {
				return 0, errBadIndexState
			}
			s := string(cooked)
			last := strings.LastIndexByte(s, ':')
			if last < 0 {
				return 0, errBadIndexState
			}
			state, macHex := s[:last], s[last+1:]
			pieces := strings.Split(state, ":")
			if len(pieces) != 4 || pieces[0] != "v1" || pieces[1] == "" {
				return 0, errBadIndexState
			}
			if pieces[1] != clusterID {
				continue
			}
			sum, err := hex.DecodeString(macHex)
			if err != nil {
				return 0, errBadIndexState
			}
			mac := hmac.New(sha256.New, key)
			mac.Write([]byte(state))
			if !hmac.Equal(mac.Sum(nil), sum) {
				return 0, errBadIndexState
			}
			idx, err := strconv.ParseUint(pieces[2], 10, 64)
			if err != nil {
				return 0, errBadIndexState
			}
			if _, err := strconv.ParseUint(pieces[3], 10, 64); err != nil {
				return 0, errBadIndexState
			}
			need = max(need, idx)
		}
	}
	return need, nil
}
