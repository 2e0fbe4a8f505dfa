package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi/batch"
)

// Batch tokens (VAULT-API.md §2.11). A batch token is never stored: the
// token string is the whole entry sealed with the cluster's batch keyring
// (httpapi/batch), and the keyring is replicated state (fsm RotateBatchKey,
// PruneBatchKeys). Consequences, all enforced in this file:
//
//   - Creating one writes nothing, so it is served on any node, like a
//     read (read gates included), once that node holds a primary key
//     (localBatchCreate). The first batch create of a cluster is forwarded
//     to the leader, which seeds the keyring (primaryBatchKey).
//   - Validating one is a local read: open it with any key still in the
//     keyring, check its own expiry and that its parent (if any) is a valid
//     stored token (validBatch). Revoking the parent, or its expiry,
//     invalidates it at once on every node, through the same fences as the
//     parent itself.
//   - It has no accessor, no num_uses, no period, no explicit max TTL; it is
//     never renewable, revocable or a parent, and never root.
//
// The plaintext of a batch token, like any token ID, never reaches a log or
// a command: the request log names the route pattern and an empty accessor,
// and r.Token.Hash of a batch caller is only ever used to identify it.

// Error strings of batch tokens (Vault's token_store.go).
const (
	msgBatchNoChildren = "batch tokens cannot create more tokens"
	msgBatchRoot       = "batch tokens cannot be root tokens"
	msgBatchRenew      = "batch tokens cannot be renewed"
	msgBatchRevoke     = "batch tokens cannot be revoked"
	// Vault silently drops a custom ID on a batch token; tokend refuses it
	// rather than hand back a token that differs from the one asked for.
	msgBatchCustomID = "batch tokens cannot have a custom token ID"
)

// Token types as Vault names them on create requests and roles.
const (
	tokenTypeBatch          = "batch"
	tokenTypeDefaultService = "default-service"
	tokenTypeDefaultBatch   = "default-batch"
	tokenTypeDefault        = "default"
)

// rotateAttempts bounds the retries of a rotation that raced another one
// for the same new key ID.
const rotateAttempts = 5

// isBatchTokenID reports whether a presented token is a batch token. Stored
// tokens never have this prefix: generated IDs start with "hvs." and custom
// IDs may not contain '.'.
func isBatchTokenID(id string) bool {
	return strings.HasPrefix(id, batch.Prefix)
}

// isBatch reports whether t is the view of a batch token (validBatch).
func isBatch(t *fsm.Token) bool {
	return t != nil && t.Type == tokenTypeBatch
}

// resolveTokenType is Vault's choice of token type on create (handleCreateCommon):
// requested is the request's "type" field ("" when absent), role the role of
// create/{role_name} (nil for none). A role of type service or batch forces
// its type; default-batch makes batch the default; default-service (and the
// legacy "default" or "") leaves the request's choice. The result is
// "service" or "batch".
func resolveTokenType(requested string, role *fsm.Role) (string, error) {
	if role != nil {
		switch role.TokenType {
		case "", tokenTypeDefault, tokenTypeDefaultService:
		case tokenTypeDefaultBatch:
			if requested == "" {
				requested = tokenTypeBatch
			}
		case fsm.TokenTypeService, tokenTypeBatch:
			requested = role.TokenType
		default:
			return "", badRequest(fmt.Sprintf("role being used for token creation contains invalid token type %q", role.TokenType))
		}
	}
	switch requested {
	case "", fsm.TokenTypeService:
		return fsm.TokenTypeService, nil
	case tokenTypeBatch:
		return tokenTypeBatch, nil
	}
	return "", badRequest("invalid 'token_type' value")
}

// checkBatchSpec applies Vault's limits on batch tokens to a resolved create
// request (VAULT-API.md §1.2, §2.11).
func checkBatchSpec(spec *tokenSpec) error {
	switch {
	case spec.ExplicitMaxTTL != 0:
		return badRequest(`batch tokens cannot have "explicit_max_ttl" set`)
	case spec.NumUses != 0:
		return badRequest(`batch tokens cannot have "num_uses" set`)
	case spec.Period != 0:
		return badRequest(`batch tokens cannot have "period" set`)
	case spec.ID != "":
		return badRequest(msgBatchCustomID)
	}
	for _, p := range spec.Policies {
		if p == "root" {
			return badRequest(msgBatchRoot)
		}
	}
	return nil
}

// issueBatch seals spec as a batch token and renders the create response.
// It proposes nothing once the keyring has a primary key, so it runs on any
// node; the parent (the caller, unless spec is an orphan) was validated
// locally by the adapter. The token's TTL is spec.TTL capped at what is left
// of the parent's lifetime (and its ancestors'): a batch token dies with its
// parent, and says so in its TTL.
func (s *server) issueBatch(ctx context.Context, r *Request, spec tokenSpec) (*Response, error) {
	if isBatch(r.Token) {
		return nil, badRequest(msgBatchNoChildren)
	}
	if err := checkBatchSpec(&spec); err != nil {
		return nil, err
	}
	st := s.node.State()
	created := r.Now.Unix()
	ttl := spec.TTL
	warnings := spec.Warnings
	if !spec.Orphan && spec.ParentHash != "" {
		end, ok := s.lifetimeEnd(st, r, spec.ParentHash)
		if !ok {
			return nil, badRequest("parent token lookup failed: no parent found")
		}
		if end != 0 {
			left := end/int64(time.Second) - created // whole seconds, rounded down
			if left <= 0 {
				return nil, badRequest("parent token lookup failed: no parent found")
			}
			if ttl == 0 || ttl > left {
				if ttl != 0 {
					warnings = append(warnings, fmt.Sprintf("TTL of %q exceeded the parent token's remaining lifetime of %q; TTL value is capped accordingly",
						time.Duration(ttl)*time.Second, time.Duration(left)*time.Second))
				}
				ttl = left
			}
		}
	} else {
		spec.ParentHash = ""
	}
	keyID, key, err := s.primaryBatchKey(ctx, r)
	if err != nil {
		return nil, err
	}
	token, err := batch.Seal(keyID, key, batch.Entry{
		Policies:     spec.Policies,
		Meta:         spec.Meta,
		DisplayName:  spec.DisplayName,
		Path:         spec.Path,
		Role:         spec.Role,
		ParentHash:   spec.ParentHash,
		CreationTime: created,
		TTL:          ttl,
		EntityID:     spec.EntityID,
		BoundCIDRs:   spec.BoundCIDRs,
	}, rand.Reader)
	if err != nil {
		if errors.Is(err, batch.ErrTooLarge) {
			return nil, badRequest("batch token too large: reduce meta, policies or bound CIDRs")
		}
		return nil, err
	}
	return &Response{
		Auth: &Auth{
			ClientToken:   token,
			Accessor:      "",
			Policies:      spec.Policies,
			TokenPolicies: spec.Policies,
			Metadata:      spec.Meta,
			LeaseDuration: ttl,
			Renewable:     false,
			EntityID:      spec.EntityID,
			TokenType:     tokenTypeBatch,
			Orphan:        spec.ParentHash == "",
			NumUses:       0,
		},
		Warnings: warnings,
	}, nil
}

// lifetimeEnd returns when the token with this hash stops being valid on its
// own or through an ancestor (Unix ns, 0 = never), and whether it is valid
// now. The caller's own token is usually the parent; ancestors are read
// from the local state.
func (s *server) lifetimeEnd(st fsm.Reader, r *Request, hash string) (int64, bool) {
	var t fsm.Token
	if r.Token != nil && r.Token.Hash == hash && !isBatch(r.Token) {
		t = *r.Token
	} else {
		var ok bool
		if t, ok = st.Valid(hash, r.Now.UnixNano()); !ok {
			return 0, false
		}
	}
	end := t.ExpireTime
	// Valid already checked every ancestor; the walk only collects the
	// earliest expiry. A missing ancestor ends it (the fsm then treats the
	// token as an orphan-to-be; validation still checks the parent).
	for seen := 0; t.Parent != "" && seen < 1<<16; seen++ {
		p, ok := st.Token(t.Parent)
		if !ok {
			break
		}
		if p.ExpireTime != 0 && (end == 0 || p.ExpireTime < end) {
			end = p.ExpireTime
		}
		t = p
	}
	return end, true
}

// primaryBatchKey returns the key new batch tokens are sealed with. When
// the keyring is empty (a fresh cluster), the leader seeds it with a random
// key; a follower never gets here without a key (localBatchCreate forwards
// such creates), and would answer 503 if it did.
func (s *server) primaryBatchKey(ctx context.Context, r *Request) (uint32, []byte, error) {
	st := s.node.State()
	if id, key, ok := st.PrimaryBatchKey(); ok {
		return id, key, nil
	}
	// Seeding races with other seeders and with sys/rotate: any primary
	// that exists afterwards is as good as ours.
	if _, err := s.rotateBatchKey(ctx, r); err != nil && !errors.Is(err, fsm.ErrBatchKeyExists) {
		return 0, nil, err
	}
	if id, key, ok := st.PrimaryBatchKey(); ok {
		return id, key, nil
	}
	return 0, nil, errors.New("batch key ring has no primary key after seeding")
}

// rotateBatchKey proposes a new random primary key with the next key ID and
// returns that ID. A concurrent rotation that took the same ID makes it try
// again with a fresh one.
func (s *server) rotateBatchKey(ctx context.Context, r *Request) (uint32, error) {
	var err error
	for range rotateAttempts {
		_, keys := s.node.State().BatchKeys()
		var next uint32
		for id := range keys {
			next = max(next, id)
		}
		next++
		if next == 0 {
			return 0, errors.New("batch key ring: key IDs exhausted")
		}
		key := make([]byte, fsm.BatchKeySize)
		if _, err := rand.Read(key); err != nil {
			return 0, fmt.Errorf("read random: %w", err)
		}
		var res fsm.Result
		res, err = s.propose(ctx, r, fsm.RotateBatchKey{KeyID: next, Key: key, Now: r.Now.UnixNano()})
		clear(key)
		if err != nil {
			return 0, err
		}
		if err = res.Err; err == nil {
			s.log.Info("batch key rotated", "key_id", next)
			return next, nil
		}
		if !errors.Is(err, fsm.ErrBatchKeyExists) {
			return 0, err
		}
	}
	return 0, err
}

// pruneBatchKeys removes the keys retired longer than the system max TTL
// ago: every batch token sealed with them has expired (a batch token's TTL
// never exceeds the max TTL), so no valid token loses its key.
func (s *server) pruneBatchKeys(ctx context.Context, r *Request) (int, error) {
	before := r.Now.Add(-s.opts.MaxTTL).UnixNano()
	res, err := s.propose(ctx, r, fsm.PruneBatchKeys{Before: before})
	if err != nil {
		return 0, err
	}
	if res.Err != nil {
		return 0, res.Err
	}
	if res.Pruned > 0 {
		s.log.Info("batch keys pruned", "count", res.Pruned)
	}
	return res.Pruned, nil
}

// validBatch authenticates a presented batch token at now and returns the
// token view handlers see. Every failure is the same "no": bad encoding,
// unknown or pruned key, forgery, expiry, a parent that is revoked, expired
// or exhausted.
func (s *server) validBatch(id string, now time.Time) (fsm.Token, bool) {
	st := s.node.State()
	_, keys := st.BatchKeys()
	if len(keys) == 0 {
		return fsm.Token{}, false
	}
	e, err := batch.Open(id, keys)
	if err != nil || e.ExpiredAt(now) {
		return fsm.Token{}, false
	}
	if e.ParentHash != "" {
		// The parent is checked on every use, as Vault does: revoking it (or
		// its expiry) invalidates the batch token everywhere at once.
		if _, ok := st.Valid(e.ParentHash, now.UnixNano()); !ok {
			return fsm.Token{}, false
		}
	}
	return batchTokenView(s.hasher.Hash(id), e), true
}

// batchTokenView is the fsm.Token handlers see for a batch caller. Hash
// identifies the token (the token hash of its ID) but names nothing stored;
// no handler may propose a command with it (they refuse batch tokens
// first: isBatch).
func batchTokenView(hash string, e batch.Entry) fsm.Token {
	created := e.CreationTime * int64(time.Second)
	t := fsm.Token{
		Hash:         hash,
		Parent:       e.ParentHash,
		Policies:     e.Policies,
		Meta:         e.Meta,
		DisplayName:  e.DisplayName,
		Path:         e.Path,
		CreationTime: created,
		CreationTTL:  e.TTL,
		TTL:          e.TTL,
		IssueTime:    created,
		Type:         tokenTypeBatch,
		Role:         e.Role,
		EntityID:     e.EntityID,
		BoundCIDRs:   e.BoundCIDRs,
	}
	if e.TTL > 0 {
		t.ExpireTime = (e.CreationTime + e.TTL) * int64(time.Second)
	}
	return t
}

// createRoutePaths are the routes whose forwarding depends on the type of
// token they create.
var createRoutePaths = map[string]bool{
	"/v1/auth/token/create":             true,
	"/v1/auth/token/create-orphan":      true,
	"/v1/auth/token/create/{role_name}": true,
}

// localBatchCreate reports whether the request is a create that resolves to
// a batch token and this node can serve it without the leader: it already
// holds a primary batch key. It peeks at the body's "type" and at the
// role's token_type with resolveTokenType, the function createToken uses,
// so the two cannot disagree; anything unclear (a body that does not decode,
// an unknown role, no key yet) says no, and the leader answers as for any
// write.
func (s *server) localBatchCreate(c *call, route *Route, pathVals map[string]string) bool {
	if route == nil || (c.op != "POST" && c.op != "PUT") || !createRoutePaths[route.Path] {
		return false
	}
	_, viaRole := pathVals["role_name"]
	if !viaRole && !bytes.Contains(c.body, []byte(tokenTypeBatch)) {
		// Cannot ask for a batch token (an escaped spelling merely goes to
		// the leader): spare service creates a second decoding.
		return false
	}
	st := s.node.State()
	if _, _, ok := st.PrimaryBatchKey(); !ok {
		return false
	}
	raw, err := decodeBody(c.r.Header.Get("Content-Type"), c.body)
	if err != nil {
		return false
	}
	requested := ""
	if v, ok := raw["type"]; ok {
		if requested, ok = v.(string); !ok {
			return false
		}
	}
	var role *fsm.Role
	if name, ok := pathVals["role_name"]; ok {
		rl, found := st.Role(name)
		if !found {
			if rl, found = st.Role(strings.ToLower(name)); !found {
				return false
			}
		}
		role = &rl
	}
	typ, err := resolveTokenType(requested, role)
	return err == nil && typ == tokenTypeBatch
}

// batchRoutes is the route table of the batch keyring's operator endpoints
// (Vault's sys/rotate and sys/key-status, which rotate and describe its
// barrier keyring; tokend's only encryption keyring is the batch one).
func (s *server) batchRoutes() []*Route {
	return []*Route{
		{
			Path: "/v1/sys/rotate", MountType: "system", Fields: Fields{},
			Ops: update(&Op{Handler: s.rotate, Kind: Write,
				Summary: "Rotate the batch-token keyring: a new random primary key (root or sudo)"}),
			Description: "New batch tokens are sealed with the new key; tokens sealed with older keys keep validating " +
				"until their key is pruned, which this call also does for keys retired longer than the system max TTL " +
				"ago (every token they sealed has expired). 204 on success.",
		},
		{
			Path: "/v1/sys/key-status", MountType: "system", Fields: Fields{},
			Ops: Ops{"GET": {Handler: s.keyStatus, Kind: Read,
				Summary: "The batch-token keyring's primary key: term (key ID) and install_time"}},
			Description: "data = {\"term\": <primary key ID, 0 before the first batch token>, \"install_time\": <RFC 3339>, " +
				"\"keys\": <number of keys kept for validation>}.",
		},
	}
}

func (s *server) rotate(ctx context.Context, r *Request) (*Response, error) {
	if !s.sudo(r) {
		return nil, newError(http.StatusForbidden, msgACLDenied)
	}
	if _, err := s.rotateBatchKey(ctx, r); err != nil {
		return nil, err
	}
	if _, err := s.pruneBatchKeys(ctx, r); err != nil {
		return nil, err
	}
	return nil, nil
}

// batchKeyring is implemented by *fsm.FSM: the keyring with timestamps.
type batchKeyring interface {
	BatchKeyring() []fsm.BatchKey
}

func (s *server) keyStatus(_ context.Context, r *Request) (*Response, error) {
	st := s.node.State()
	primary, keys := st.BatchKeys()
	var installed time.Time
	if kr, ok := st.(batchKeyring); ok {
		for _, k := range kr.BatchKeyring() {
			if k.ID == primary {
				installed = time.Unix(0, k.CreatedAt).UTC()
			}
		}
	}
	for id := range keys {
		clear(keys[id])
	}
	return &Response{Data: map[string]any{
		"term":         primary,
		"install_time": installed.Format(time.RFC3339Nano),
		"keys":         len(keys),
	}}, nil
}

// batchRequestError applies Vault's checks of a batch create request's own
// fields, in Vault's order, before anything else is resolved.
func batchRequestError(d *FieldData) error {
	switch {
	case d.Duration("explicit_max_ttl") != 0:
		return badRequest(`batch tokens cannot have "explicit_max_ttl" set`)
	case d.Int("num_uses") != 0:
		return badRequest(`batch tokens cannot have "num_uses" set`)
	case d.Duration("period") != 0:
		return badRequest(`batch tokens cannot have "period" set`)
	}
	return nil
}
