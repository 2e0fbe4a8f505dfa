package fsm

import "errors"

// This file is the contract between fsm and the packages above it (cluster,
// httpapi). Change it only additively: other packages are written against it.

// Type identifies a command in the replicated log. Values are never reused or
// renumbered; the high bit marks a command an older node may skip.
type Type uint8

// Command types. Never renumber; retire a value by commenting it out.
const (
	TypeCreateToken     Type = 1
	TypeRenewToken      Type = 2
	TypeRevokeTree      Type = 3
	TypeRevokeOrphan    Type = 4
	TypeRevokeAccessor  Type = 5
	TypeUseToken        Type = 6
	TypeReapExpired     Type = 7
	TypeInitRoot        Type = 8
	TypeSetClusterIdent Type = 9

	// Skippable marks a command type an older node may ignore.
	Skippable Type = 0x80
)

// TokenTypeService is the only stored token type in the core.
const TokenTypeService = "service"

// Token is the stored record of one token. Fields are additive and optional
// in the encoding; a new dialect adds its own fields (or an Ext entry) without
// changing the meaning of existing ones, so old logs and snapshots still load.
//
// Times are Unix nanoseconds (0 = unset); durations are whole seconds.
type Token struct {
	// Hash is the hex SHA-256 of the plaintext token ID: the primary key. The
	// plaintext never enters the state machine.
	Hash     string `json:"hash"`
	Accessor string `json:"accessor"`
	// Parent is the Hash of the parent token, "" for an orphan.
	Parent      string            `json:"parent,omitempty"`
	Policies    []string          `json:"policies,omitempty"`
	Meta        map[string]string `json:"meta,omitempty"`
	DisplayName string            `json:"display_name,omitempty"`
	// Path is the creation path, e.g. "auth/token/create".
	Path string `json:"path,omitempty"`
	// NumUses is the remaining number of uses: 0 unlimited, -1 exhausted.
	NumUses int `json:"num_uses,omitempty"`

	CreationTime int64 `json:"creation_time"`
	// CreationTTL is the TTL granted at creation (seconds, 0 = never expires).
	CreationTTL int64 `json:"creation_ttl,omitempty"`
	// TTL is the TTL granted at the last issue or renewal (seconds); renew
	// without increment re-grants it.
	TTL            int64 `json:"ttl,omitempty"`
	ExplicitMaxTTL int64 `json:"explicit_max_ttl,omitempty"`
	Period         int64 `json:"period,omitempty"`
	// ExpireTime is when the token stops being valid; 0 = never.
	ExpireTime int64 `json:"expire_time,omitempty"`
	// IssueTime is when the lease was issued (= CreationTime for service tokens).
	IssueTime       int64 `json:"issue_time,omitempty"`
	LastRenewalTime int64 `json:"last_renewal_time,omitempty"`
	Renewable       bool  `json:"renewable,omitempty"`
	// Type is "service" (batch tokens are never stored).
	Type       string   `json:"type,omitempty"`
	Role       string   `json:"role,omitempty"`
	EntityID   string   `json:"entity_id,omitempty"`
	BoundCIDRs []string `json:"bound_cidrs,omitempty"`

	// Dialect names the API the token was created through ("vault" when
	// empty); Ext carries per-dialect records (e.g. "keystone": {...}) as
	// opaque JSON so later dialects extend the record without a new version.
	Dialect string            `json:"dialect,omitempty"`
	Ext     map[string][]byte `json:"ext,omitempty"`
}

// IsRoot reports whether the token holds the root policy.
func (t *Token) IsRoot() bool {
	for _, p := range t.Policies {
		if p == "root" {
			return true
		}
	}
	return false
}

// ExpiredAt reports whether the token's own lifetime has ended at now (Unix ns).
func (t *Token) ExpiredAt(now int64) bool {
	return t.ExpireTime != 0 && now >= t.ExpireTime
}

// Command is one replicated state change. Every command is data only and
// carries everything Apply needs: the proposer stamps Now and generates IDs.
type Command interface {
	CommandType() Type
}

// CreateToken stores a new token. Apply rejects it if the hash or accessor
// already exists, or if Token.Parent is set and the parent (or any ancestor)
// is missing or expired at Now.
type CreateToken struct {
	Token Token `json:"token"`
	Now   int64 `json:"now"`
}

// RenewToken extends a token's lease using Vault's CalculateTTL rules:
// newTTL from Increment (or the token's last TTL), capped by Period,
// ExplicitMaxTTL and MaxTTL (the system max, seconds), measured from Now.
type RenewToken struct {
	Hash      string `json:"hash,omitempty"`
	Accessor  string `json:"accessor,omitempty"` // used when Hash is empty
	Increment int64  `json:"increment"`
	MaxTTL    int64  `json:"max_ttl"`
	Now       int64  `json:"now"`
}

// RevokeTree revokes a token and all its descendants, atomically. An unknown
// hash is not an error (Result.Revoked == 0).
type RevokeTree struct {
	Hash string `json:"hash"`
	Now  int64  `json:"now"`
}

// RevokeOrphan revokes one token; its direct children become orphans.
type RevokeOrphan struct {
	Hash string `json:"hash"`
	Now  int64  `json:"now"`
}

// RevokeAccessor revokes the tree of the token with this accessor.
type RevokeAccessor struct {
	Accessor string `json:"accessor"`
	Now      int64  `json:"now"`
}

// UseToken consumes one use of a limited-use token. On the last use the token
// is marked exhausted (NumUses -1) and its tree is revoked in the same command;
// Result.Token holds the token as it was after the decrement.
type UseToken struct {
	Hash string `json:"hash"`
	Now  int64  `json:"now"`
}

// ReapExpired revokes (with their subtrees) up to Limit tokens whose
// ExpireTime <= Now, oldest first.
type ReapExpired struct {
	Now   int64 `json:"now"`
	Limit int   `json:"limit"`
}

// InitRoot stores the initial root token once; a second InitRoot fails with
// ErrAlreadyInitialized.
type InitRoot struct {
	Token Token `json:"token"`
	Now   int64 `json:"now"`
}

// SetClusterIdent records the cluster's identity once (later ones are
// ignored): its ID and the key that authenticates X-Vault-Index headers.
type SetClusterIdent struct {
	ClusterID string `json:"cluster_id"`
	IndexKey  []byte `json:"index_key"`
}

// CommandType implements Command.
func (CreateToken) CommandType() Type { return TypeCreateToken }

// CommandType implements Command.
func (RenewToken) CommandType() Type { return TypeRenewToken }

// CommandType implements Command.
func (RevokeTree) CommandType() Type { return TypeRevokeTree }

// CommandType implements Command.
func (RevokeOrphan) CommandType() Type { return TypeRevokeOrphan }

// CommandType implements Command.
func (RevokeAccessor) CommandType() Type { return TypeRevokeAccessor }

// CommandType implements Command.
func (UseToken) CommandType() Type { return TypeUseToken }

// CommandType implements Command.
func (ReapExpired) CommandType() Type { return TypeReapExpired }

// CommandType implements Command.
func (InitRoot) CommandType() Type { return TypeInitRoot }

// CommandType implements Command.
func (SetClusterIdent) CommandType() Type { return TypeSetClusterIdent }

// Result is what Apply returns for one command.
type Result struct {
	// Err is a typed error (one of the Err* sentinels, wrapped); the state is
	// unchanged when it is set.
	Err error
	// Token is the created/renewed/used token after the command.
	Token *Token
	// Revoked counts the tokens removed by the command.
	Revoked int
	// Warnings are Vault-style warnings (e.g. TTL capped at the max TTL).
	Warnings []string
}

// Sentinel errors returned (wrapped) in Result.Err.
var (
	ErrTokenNotFound      = errors.New("token not found")
	ErrParentNotFound     = errors.New("parent token not found")
	ErrTokenExists        = errors.New("token already exists")
	ErrAccessorExists     = errors.New("accessor already exists")
	ErrAlreadyInitialized = errors.New("already initialized")
	ErrNotRenewable       = errors.New("lease is not renewable")
	ErrLeaseExpired       = errors.New("lease expired")
	ErrPastMaxTTL         = errors.New("past the max TTL, cannot renew")
	ErrInvalidLease       = errors.New("invalid lease ID")
	ErrInvalidCommand     = errors.New("invalid command")
)

// Reader is the read-only view of the state that the HTTP layer uses. Every
// method is safe for concurrent use, never blocks on raft, and returns copies.
type Reader interface {
	// Token returns the token with this hash if it is stored.
	Token(hash string) (Token, bool)
	// TokenByAccessor returns the token with this accessor if it is stored.
	TokenByAccessor(accessor string) (Token, bool)
	// Valid returns the token if it is stored, not exhausted, not expired at
	// now (Unix ns) and no ancestor is expired at now.
	Valid(hash string, now int64) (Token, bool)
	// Accessors lists every stored accessor, sorted.
	Accessors() []string
	// Children lists the hashes of a token's direct children, sorted.
	Children(hash string) []string
	// Initialized reports whether InitRoot has been applied.
	Initialized() bool
	// ClusterIdent returns the cluster ID and index key ("" / nil before set).
	ClusterIdent() (id string, indexKey []byte)
	// NextExpiry returns the earliest ExpireTime of any stored token (0 if none).
	NextExpiry() int64
	// Len returns the number of stored tokens.
	Len() int
}
