package fsm

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
)

// HashToken returns the lowercase hex SHA-256 of a plaintext token ID: the
// key under which the token is stored. The plaintext itself never enters the
// state machine.
func HashToken(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// validHash reports whether h looks like HashToken output (64 lowercase hex
// digits). Secrecy: rejecting anything else keeps a plaintext token ID that
// was passed by mistake out of the log and the state.
func validHash(h string) bool {
	if len(h) != sha256.Size*2 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
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
