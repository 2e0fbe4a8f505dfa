package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"sync"
)

// Prefix starts every hashed value, as in Vault's audit log.
const Prefix = "hmac-sha256:"

// keyLabel is the message DeriveKey MACs with the cluster's index key.
const keyLabel = "tokend-audit"

// DeriveKey returns the audit HMAC key of a cluster: HMAC-SHA256 keyed with
// its replicated index key over "tokend-audit". It never returns indexKey
// itself, so an audit hash reveals nothing about X-Vault-Index MACs.
func DeriveKey(indexKey []byte) []byte {
	m := hmac.New(sha256.New, indexKey)
	m.Write([]byte(keyLabel))
	return m.Sum(nil)
}

// Hasher hashes secrets with one audit key. It is safe for concurrent use.
type Hasher struct {
	pool sync.Pool // of keyed hash.Hash, reset before use
}

// NewHasher returns a Hasher for key (use DeriveKey).
func NewHasher(key []byte) *Hasher {
	k := append([]byte(nil), key...)
	h := &Hasher{}
	h.pool.New = func() any { return hmac.New(sha256.New, k) }
	return h
}

// Hash returns "hmac-sha256:" + lowercase hex HMAC-SHA256 of s, or "" for
// an empty s (nothing to hide, and it keeps "no token" visible).
func (h *Hasher) Hash(s string) string {
	if s == "" {
		return ""
	}
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	m.Write([]byte(s))
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	h.pool.Put(m)
	out := make([]byte, len(Prefix)+2*sha256.Size)
	copy(out, Prefix)
	hex.Encode(out[len(Prefix):], sum[:])
	return string(out)
}

// plainKeys are the top-level data keys whose string values are kept
// readable: names, durations, types and flags that never carry a secret.
// Every other string (token, id, accessor, client_token, root_token, input,
// keys, display_name, meta values, …) is hashed, at any depth; strings
// nested inside a map or list under any key are always hashed unless the
// key itself is a plain key holding a list of names (policies).
var plainKeys = map[string]bool{
	"policies": true, "token_policies": true, "identity_policies": true,
	"allowed_policies": true, "disallowed_policies": true,
	"ttl": true, "creation_ttl": true, "explicit_max_ttl": true, "period": true,
	"increment": true, "lease": true, "num_uses": true, "renewable": true,
	"type": true, "token_type": true, "no_parent": true, "no_default_policy": true,
	"orphan": true, "role_name": true, "name": true, "path": true, "paths": true,
	"capabilities": true, "creation_time": true, "expire_time": true,
	"issue_time": true, "last_renewal_time": true, "last_renewal": true,
	"hash": true, "version": true, "cluster_name": true, "initialized": true,
	"format": true,
}

// Redact returns a copy of data with every secret string replaced by
// h.Hash: strings under a plainKeys key (at the top level) stay, every
// other string at any depth is hashed. Numbers, booleans and null are kept.
// Values of other types are first turned into their JSON form. data is not
// modified; nil gives nil.
func Redact(data map[string]any, h *Hasher) map[string]any {
	if data == nil {
		return nil
	}
	out := make(map[string]any, len(data))
	for k, v := range data {
		out[k] = redactValue(v, h, plainKeys[k])
	}
	return out
}

// RedactValue is Redact for any JSON-shaped value (e.g. a bare response
// body): objects are redacted as by Redact, anything else is hashed whole.
func RedactValue(v any, h *Hasher) any {
	if m, ok := jsonShape(v).(map[string]any); ok {
		return Redact(m, h)
	}
	return redactValue(v, h, false)
}

func redactValue(v any, h *Hasher, plain bool) any {
	switch x := v.(type) {
	case nil, bool, json.Number, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64:
		return x
	case string:
		if plain {
			return x
		}
		return h.Hash(x)
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = redactValue(s, h, plain)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = redactValue(e, h, plain)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, s := range x {
			out[k] = redactValue(s, h, false)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = redactValue(e, h, false)
		}
		return out
	}
	// Structs, typed slices, time.Time, …: redact their JSON form.
	return redactValue(jsonShape(v), h, plain)
}

// jsonShape converts v to the generic form encoding/json decodes into
// (map[string]any, []any, string, json.Number, bool, nil). A value that
// cannot be marshalled becomes nil: never its text.
func jsonShape(v any) any {
	switch v.(type) {
	case nil, bool, string, json.Number, map[string]any, []any:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	if err := jsonUnmarshalNumber(b, &out); err != nil {
		return nil
	}
	return out
}
