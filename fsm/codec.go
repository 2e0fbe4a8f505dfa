package fsm

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
)

// decodeFunc decodes one version of a command body.
type decodeFunc func(body []byte) (Command, error)

// applyFunc applies a decoded command to the state. It runs under the FSM's
// write lock and must either change nothing and return an error, or apply
// the whole change.
type applyFunc func(s *state, c Command) Result

// largeFunc applies a command that may touch many tokens. It runs under the
// FSM's writer lock (wmu) but not under mu: it reads the state freely (it is
// the only writer), edits it only inside f.section, and publishes a pending
// overlay first when it edits in more than one section. Like applyFunc it
// either changes nothing and returns an error, or applies the whole change.
type largeFunc func(f *FSM, c Command) Result

// registration is one row of the command table: apply or large is set.
type registration struct {
	name     string
	version  uint8 // version written by Encode
	decoders map[uint8]decodeFunc
	// encode writes the body of version; nil = the JSON of the command.
	encode func(Command) []byte
	apply  applyFunc
	large  largeFunc
}

// registry maps every known command type to its codec and apply function.
// It is filled by init and read-only afterwards.
var registry = map[Type]*registration{}

// register adds a command type whose version 1 body is the JSON of C.
// Registering a type twice is a programmer error and panics at start-up.
func register[C Command](t Type, name string, apply func(s *state, c C) Result) {
	addRegistration(t, &registration{
		name:     name,
		version:  1,
		decoders: map[uint8]decodeFunc{1: decodeJSON[C]},
		apply:    func(s *state, c Command) Result { return apply(s, c.(C)) },
	})
}

// registerLarge is register for a command applied by a largeFunc.
func registerLarge[C Command](t Type, name string, apply func(f *FSM, c C) Result) {
	addRegistration(t, &registration{
		name:     name,
		version:  1,
		decoders: map[uint8]decodeFunc{1: decodeJSON[C]},
		large:    func(f *FSM, c Command) Result { return apply(f, c.(C)) },
	})
}

// addVersion makes version v (decoded by dec, written by enc) the one
// Encode writes for t; every older version keeps decoding.
func addVersion(t Type, v uint8, dec decodeFunc, enc func(Command) []byte) {
	r := registry[t]
	if r == nil || r.decoders[v] != nil || v <= r.version {
		panic(fmt.Sprintf("fsm: bad version %d for command type %d", v, t))
	}
	r.version, r.decoders[v], r.encode = v, dec, enc
}

func addRegistration(t Type, r *registration) {
	if _, dup := registry[t]; dup {
		panic(fmt.Sprintf("fsm: command type %d registered twice", t))
	}
	registry[t] = r
}

func init() {
	register(TypeCreateToken, "create_token", applyCreateToken)
	addVersion(TypeCreateToken, 2, decodeCreateTokenV2, encodeCreateTokenV2)
	register(TypeRenewToken, "renew_token", applyRenewToken)
	registerLarge(TypeRevokeTree, "revoke_tree", applyRevokeTree)
	registerLarge(TypeRevokeOrphan, "revoke_orphan", applyRevokeOrphan)
	registerLarge(TypeRevokeAccessor, "revoke_accessor", applyRevokeAccessor)
	registerLarge(TypeUseToken, "use_token", applyUseToken)
	registerLarge(TypeReapExpired, "reap_expired", applyReapExpired)
	register(TypeInitRoot, "init_root", applyInitRoot)
	register(TypeSetClusterIdent, "set_cluster_ident", applySetClusterIdent)
	register(TypeSetPolicy, "set_policy", applySetPolicy)
	register(TypeDeletePolicy, "delete_policy", applyDeletePolicy)
	register(TypeSetRole, "set_role", applySetRole)
	register(TypeDeleteRole, "delete_role", applyDeleteRole)
	registerLarge(TypeRevokePrefix, "revoke_prefix", applyRevokePrefix)
	register(TypeRotateBatchKey, "rotate_batch_key", applyRotateBatchKey)
	register(TypePruneBatchKeys, "prune_batch_keys", applyPruneBatchKeys)
	registerLarge(TypeTidy, "tidy", applyTidy)
	register(TypeSetGossipKeyring, "set_gossip_keyring", applySetGossipKeyring)
	register(TypeRemovePeer, "remove_peer", applyRemovePeer)
	addRegistration(TypeBatch, &registration{
		name:     "batch",
		version:  1,
		decoders: map[uint8]decodeFunc{1: decodeBatch},
		encode:   encodeBatch,
		large:    func(f *FSM, c Command) Result { return applyBatch(f, c.(Batch)) },
	})
}

// decodeJSON decodes a JSON body into a fresh C. Unknown fields are ignored:
// new fields are additive and optional.
func decodeJSON[C Command](body []byte) (Command, error) {
	var c C
	if err := json.Unmarshal(body, &c); err != nil {
		return nil, err
	}
	return c, nil
}

// CreateToken version 2 (binary): the body is the varint Now, the uvarint
// length of the token and the token in the binary encoding of snapshot
// version 2 (token_codec.go).
// Every node decodes every create; JSON decoding was about a tenth of a
// create's CPU on each node, and the entry is about half the size.
func encodeCreateTokenV2(c Command) []byte {
	var ct *CreateToken
	switch v := c.(type) {
	case CreateToken:
		ct = &v
	case *CreateToken:
		ct = v
	}
	tb := appendToken(make([]byte, 0, 256), &ct.Token)
	b := make([]byte, 0, 2+2*binary.MaxVarintLen64+len(tb))
	b = append(b, byte(TypeCreateToken), 2)
	b = binary.AppendVarint(b, ct.Now)
	b = binary.AppendUvarint(b, uint64(len(tb)))
	return append(b, tb...)
}

func decodeCreateTokenV2(body []byte) (Command, error) {
	now, n := binary.Varint(body)
	if n <= 0 {
		return nil, errBadToken
	}
	body = body[n:]
	// The token's length: a cut entry is malformed, never a shorter token.
	size, n := binary.Uvarint(body)
	if n <= 0 || size != uint64(len(body)-n) {
		return nil, errBadToken
	}
	t, err := decodeToken(body[n:])
	if err != nil {
		return nil, err
	}
	return CreateToken{Token: *t, Now: now}, nil
}

// RegisteredTypes lists every registered command type, ascending.
func RegisteredTypes() []Type {
	ts := make([]Type, 0, len(registry))
	for t := range registry {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
	return ts
}

// TypeName returns the snake_case name of a registered command type (used
// in golden file names and logs), or "type_<n>" for an unknown one.
func TypeName(t Type) string {
	if r, ok := registry[t]; ok {
		return r.name
	}
	return fmt.Sprintf("type_%d", uint8(t))
}

// String implements fmt.Stringer.
func (t Type) String() string { return TypeName(t) }

// Encode returns the log entry for c: [type][version][JSON body].
func Encode(c Command) ([]byte, error) {
	if c == nil {
		return nil, fmt.Errorf("encode nil command: %w", ErrInvalidCommand)
	}
	if v := reflect.ValueOf(c); v.Kind() == reflect.Pointer && v.IsNil() {
		return nil, fmt.Errorf("encode nil %T: %w", c, ErrInvalidCommand)
	}
	t := c.CommandType()
	r, ok := registry[t]
	if !ok {
		return nil, fmt.Errorf("encode type %d: %w", uint8(t), ErrUnknownType)
	}
	if b, ok := c.(Batch); ok {
		if err := validBatch(b); err != nil {
			return nil, err
		}
	}
	if r.encode != nil {
		return r.encode(c), nil
	}
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", r.name, err)
	}
	out := make([]byte, 0, 2+len(body))
	out = append(out, byte(t), r.version)
	return append(out, body...), nil
}

// Decode parses a log entry written by Encode (any version this build still
// reads). Unknown types and versions wrap ErrUnknownType (check the
// Skippable bit of entry[0] to tell whether an older node may ignore it);
// short entries and undecodable bodies wrap ErrMalformedEntry. Error strings
// never contain the body.
func Decode(entry []byte) (Command, error) {
	if len(entry) < 2 {
		return nil, fmt.Errorf("entry of %d bytes: %w", len(entry), ErrMalformedEntry)
	}
	t, v := Type(entry[0]), entry[1]
	r, ok := registry[t]
	if !ok {
		return nil, fmt.Errorf("type %d: %w", uint8(t), ErrUnknownType)
	}
	dec, ok := r.decoders[v]
	if !ok {
		return nil, fmt.Errorf("%s version %d: %w", r.name, v, ErrUnknownType)
	}
	c, err := dec(entry[2:])
	if err != nil {
		// Secrecy: the JSON error may quote body bytes; keep only its class.
		return nil, fmt.Errorf("%s version %d, %d bytes: %w", r.name, v, len(entry), ErrMalformedEntry)
	}
	return c, nil
}
