package fsm

import (
	"encoding/binary"
	"errors"
	"slices"
)

// The binary token encoding of snapshot version 2: a sequence of fields,
// each a uvarint key (field number << 1 | wire type) and a value; wire type
// 0 is a varint (zigzag for integers, 0/1 for booleans), 1 is a uvarint
// length and that many bytes. Zero and empty fields are left out. Lists
// repeat their field; maps repeat a field whose bytes are a key and a value,
// each length-prefixed, in key order. A reader skips unknown fields, so
// fields are added like the JSON ones: optional, never renumbered.
//
// Field numbers (never reuse one):
const (
	tfHash            = 1
	tfAccessor        = 2
	tfParent          = 3
	tfPolicy          = 4 // repeated
	tfMeta            = 5 // repeated pair
	tfDisplayName     = 6
	tfPath            = 7
	tfNumUses         = 8
	tfCreationTime    = 9
	tfCreationTTL     = 10
	tfTTL             = 11
	tfExplicitMaxTTL  = 12
	tfPeriod          = 13
	tfExpireTime      = 14
	tfIssueTime       = 15
	tfLastRenewalTime = 16
	tfRenewable       = 17
	tfType            = 18
	tfRole            = 19
	tfEntityID        = 20
	tfBoundCIDR       = 21 // repeated
	tfDialect         = 22
	tfExt             = 23 // repeated pair
)

const (
	wireVarint = 0
	wireBytes  = 1
)

var errBadToken = errors.New("malformed token record")

func appendKey(b []byte, field, wire int) []byte {
	return binary.AppendUvarint(b, uint64(field<<1|wire))
}

func appendStr(b []byte, field int, s string) []byte {
	if s == "" {
		return b
	}
	b = appendKey(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendInt(b []byte, field int, v int64) []byte {
	if v == 0 {
		return b
	}
	b = appendKey(b, field, wireVarint)
	return binary.AppendVarint(b, v)
}

// appendPair appends a map entry: one bytes field holding key and value.
func appendPair(b []byte, field int, k string, v []byte) []byte {
	b = appendKey(b, field, wireBytes)
	b = binary.AppendUvarint(b, uint64(uvarintLen(uint64(len(k)))+len(k)+uvarintLen(uint64(len(v)))+len(v)))
	b = binary.AppendUvarint(b, uint64(len(k)))
	b = append(b, k...)
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// uvarintLen is the length of x's uvarint encoding.
func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}

// appendToken appends the binary encoding of t to b.
func appendToken(b []byte, t *Token) []byte {
	b = appendStr(b, tfHash, t.Hash)
	b = appendStr(b, tfAccessor, t.Accessor)
	b = appendStr(b, tfParent, t.Parent)
	for _, p := range t.Policies {
		// An empty name is kept: the list's length is state.
		b = appendKey(b, tfPolicy, wireBytes)
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	if len(t.Meta) > 0 {
		keys := make([]string, 0, len(t.Meta))
		for k := range t.Meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = appendPair(b, tfMeta, k, []byte(t.Meta[k]))
		}
	}
	b = appendStr(b, tfDisplayName, t.DisplayName)
	b = appendStr(b, tfPath, t.Path)
	b = appendInt(b, tfNumUses, int64(t.NumUses))
	b = appendInt(b, tfCreationTime, t.CreationTime)
	b = appendInt(b, tfCreationTTL, t.CreationTTL)
	b = appendInt(b, tfTTL, t.TTL)
	b = appendInt(b, tfExplicitMaxTTL, t.ExplicitMaxTTL)
	b = appendInt(b, tfPeriod, t.Period)
	b = appendInt(b, tfExpireTime, t.ExpireTime)
	b = appendInt(b, tfIssueTime, t.IssueTime)
	b = appendInt(b, tfLastRenewalTime, t.LastRenewalTime)
	if t.Renewable {
		b = appendInt(b, tfRenewable, 1)
	}
	b = appendStr(b, tfType, t.Type)
	b = appendStr(b, tfRole, t.Role)
	b = appendStr(b, tfEntityID, t.EntityID)
	for _, c := range t.BoundCIDRs {
		b = appendKey(b, tfBoundCIDR, wireBytes)
		b = binary.AppendUvarint(b, uint64(len(c)))
		b = append(b, c...)
	}
	b = appendStr(b, tfDialect, t.Dialect)
	if len(t.Ext) > 0 {
		keys := make([]string, 0, len(t.Ext))
		for k := range t.Ext {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			b = appendPair(b, tfExt, k, t.Ext[k])
		}
	}
	return b
}

// tokenReader walks one encoded token.
type tokenReader struct {
	b   []byte
	err bool
}

func (r *tokenReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *tokenReader) bytes() []byte {
	n := r.uvarint()
	if r.err || n > uint64(len(r.b)) {
		r.err = true
		r.b = nil
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// pair splits a map entry into key and value (both alias b).
func pair(b []byte) ([]byte, []byte, bool) {
	r := tokenReader{b: b}
	k := r.bytes()
	v := r.bytes()
	if r.err || len(r.b) != 0 {
		return nil, nil, false
	}
	return k, v, true
}

// tokenDecoder decodes many tokens (a restore) for records.put, with few
// allocations: a repeated value (policy name, path, display name, meta
// key) is looked up without allocating a copy, which keeps a
// million-token restore from making a million copies of
// "auth/token/create" only to throw them away; the policy list is a
// scratch slice, so a decoded Token is valid only until the next decode
// (put copies what it keeps); and the hash and accessor share one
// allocation.
type tokenDecoder struct {
	strs map[string]string // low-cardinality values seen so far

	pols []string // scratch: the policy names of the token being decoded
	key  []byte   // scratch: hash and accessor bytes
}

// maxDecoderStrings bounds tokenDecoder.strs.
const maxDecoderStrings = 4096

func (d *tokenDecoder) str(v []byte) string {
	if d == nil {
		return string(v)
	}
	if s, ok := d.strs[string(v)]; ok { // no allocation for the lookup
		return s
	}
	s := in(string(v))
	if len(d.strs) < maxDecoderStrings {
		d.strs[s] = s
	}
	return s
}

// decodeToken decodes a token written by appendToken. Lists and maps
// decode as nil when empty, as the JSON encoding (omitempty) does.
func decodeToken(b []byte) (*Token, error) { return (*tokenDecoder)(nil).decode(b) }

// decode is decodeToken sharing strings through d (d may be nil).
func (d *tokenDecoder) decode(b []byte) (*Token, error) {
	t := &Token{}
	var hash, accessor []byte
	if d != nil {
		d.pols = d.pols[:0]
	}
	r := tokenReader{b: b}
	for len(r.b) > 0 && !r.err {
		key := r.uvarint()
		field, wire := int(key>>1), int(key&1)
		if wire == wireVarint {
			v, n := binary.Varint(r.b)
			if n <= 0 {
				return nil, errBadToken
			}
			r.b = r.b[n:]
			switch field {
			case tfNumUses:
				t.NumUses = int(v)
			case tfCreationTime:
				t.CreationTime = v
			case tfCreationTTL:
				t.CreationTTL = v
			case tfTTL:
				t.TTL = v
			case tfExplicitMaxTTL:
				t.ExplicitMaxTTL = v
			case tfPeriod:
				t.Period = v
			case tfExpireTime:
				t.ExpireTime = v
			case tfIssueTime:
				t.IssueTime = v
			case tfLastRenewalTime:
				t.LastRenewalTime = v
			case tfRenewable:
				t.Renewable = v != 0
			}
			continue
		}
		v := r.bytes()
		if r.err {
			return nil, errBadToken
		}
		switch field {
		case tfHash:
			hash = v
		case tfAccessor:
			accessor = v
		case tfParent:
			t.Parent = string(v)
		case tfPolicy:
			if d != nil {
				d.pols = append(d.pols, d.str(v))
			} else {
				t.Policies = append(t.Policies, string(v))
			}
		case tfMeta:
			k, val, ok := pair(v)
			if !ok {
				return nil, errBadToken
			}
			if t.Meta == nil {
				t.Meta = make(map[string]string, 1)
			}
			t.Meta[d.str(k)] = string(val)
		case tfDisplayName:
			t.DisplayName = d.str(v)
		case tfPath:
			t.Path = d.str(v)
		case tfType:
			t.Type = d.str(v)
		case tfRole:
			t.Role = d.str(v)
		case tfEntityID:
			t.EntityID = d.str(v)
		case tfBoundCIDR:
			t.BoundCIDRs = append(t.BoundCIDRs, d.str(v))
		case tfDialect:
			t.Dialect = d.str(v)
		case tfExt:
			k, val, ok := pair(v)
			if !ok {
				return nil, errBadToken
			}
			if t.Ext == nil {
				t.Ext = make(map[string][]byte, 1)
			}
			t.Ext[string(k)] = slices.Clone(val)
		}
	}
	if r.err {
		return nil, errBadToken
	}
	if d == nil {
		t.Hash, t.Accessor = string(hash), string(accessor)
		return t, nil
	}
	d.key = append(append(d.key[:0], hash...), accessor...)
	both := string(d.key)
	t.Hash, t.Accessor = both[:len(hash)], both[len(hash):]
	if len(d.pols) > 0 {
		t.Policies = d.pols
	}
	return t, nil
}
