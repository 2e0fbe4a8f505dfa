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
	TypeSetPolicy       Type = 10
	TypeDeletePolicy    Type = 11
	TypeSetRole         Type = 12
	TypeDeleteRole      Type = 13
	TypeRevokePrefix    Type = 14
	TypeRotateBatchKey  Type = 15
	TypePruneBatchKeys  Type = 16
	TypeTidy            Type = 17
	// TypeSetGossipKeyring (gossipkey.go) is not skippable: a node that
	// cannot apply it would keep gossiping with keys the others drop.
	TypeSetGossipKeyring Type = 18
	// TypeRemovePeer (peers.go) is not skippable: a node that ignored it
	// would, as leader, add the removed server back as a voter.
	TypeRemovePeer Type = 19
	// TypeBatch (batch.go) is not skippable: its commands are token
	// writes every node must apply.
	TypeBatch Type = 20

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
	// Hash is the token hash of the plaintext token ID (Hasher.Hash: hex
	// HMAC-SHA256 under the cluster's token hash key): the primary key. The
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
// is missing or expired at Now, or if Token.Role is set and no such role is
// stored (ErrRoleNotFound: a role deleted while the request was in flight
// issues nothing). The role check was added with roles; no entry written
// before them carries a Role, so replaying an old log is unaffected.
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
	// ByRole (set by proposers since token roles exist; additive): for a
	// token created from a role, the renewal uses that role's current
	// TokenPeriod and TokenExplicitMaxTTL instead of the token's own values
	// (Vault's authRenew: role edits take effect at the next renewal), and
	// fails with ErrRoleNotFound when the role is no longer stored. Without
	// it (entries written before roles) the token's own values are used.
	ByRole bool `json:"by_role,omitempty"`
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
//
// DefaultPolicyText, when set, stores the "default" ACL policy with this raw
// text in the same command (atomically with the root token), unless a
// "default" policy is already stored; the layer above seeds Vault's stock
// default policy this way.
type InitRoot struct {
	Token             Token  `json:"token"`
	Now               int64  `json:"now"`
	DefaultPolicyText string `json:"default_policy_text,omitempty"`
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
func (SetPolicy) CommandType() Type { return TypeSetPolicy }

// CommandType implements Command.
func (DeletePolicy) CommandType() Type { return TypeDeletePolicy }

// CommandType implements Command.
func (SetRole) CommandType() Type { return TypeSetRole }

// CommandType implements Command.
func (DeleteRole) CommandType() Type { return TypeDeleteRole }

// CommandType implements Command.
func (RevokePrefix) CommandType() Type { return TypeRevokePrefix }

// CommandType implements Command.
func (RotateBatchKey) CommandType() Type { return TypeRotateBatchKey }

// CommandType implements Command.
func (PruneBatchKeys) CommandType() Type { return TypePruneBatchKeys }

// CommandType implements Command.
func (Tidy) CommandType() Type { return TypeTidy }

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
	// Pruned counts the batch-token keys removed by PruneBatchKeys.
	Pruned int
	// Tidy is the report of the repairs a Tidy command performed.
	Tidy *TidyReport
	// Batch holds the result of each command of a Batch entry, in order
	// (the Batch itself never fails as a whole).
	Batch []Result
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

	// ErrRoleNotFound: CreateToken names a role that is not stored.
	ErrRoleNotFound = errors.New("role not found")
	// ErrPolicyReadOnly: the "root" policy cannot be set or deleted.
	ErrPolicyReadOnly = errors.New("policy is read-only")
	// ErrCannotDeleteDefault: the "default" policy can be edited, not deleted.
	ErrCannotDeleteDefault = errors.New("cannot delete default policy")
	// ErrBatchKeyExists: RotateBatchKey named a key ID that is already in
	// the keyring with different key material (or no longer primary).
	ErrBatchKeyExists = errors.New("batch key ID already exists")
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

	// Policy returns the raw text of a stored ACL policy. The synthetic
	// "root" policy is never stored (the caller handles it).
	Policy(name string) (text string, ok bool)
	// PolicyNames lists the stored ACL policy names, sorted ("root" is not
	// among them).
	PolicyNames() []string
	// PolicyVersion is a cheap counter that changes whenever any stored
	// policy may have changed (SetPolicy, DeletePolicy, InitRoot with a
	// default policy, Restore). It is local to this FSM value and never
	// decreases; it is not comparable between nodes. To cache parsed
	// policies, read PolicyVersion before reading the texts and key the
	// cache on it.
	PolicyVersion() uint64
	// Role returns a stored token role.
	Role(name string) (Role, bool)
	// RoleNames lists the stored role names, sorted.
	RoleNames() []string
	// BatchKeys returns the batch-token keyring: the primary key ID (0 when
	// there is none) and every kept key by ID (copies).
	BatchKeys() (primary uint32, keys map[uint32][]byte)
	// BatchKey returns one key of the batch-token keyring (a copy).
	BatchKey(id uint32) ([]byte, bool)
	// PrimaryBatchKey returns the key new batch tokens are sealed with.
	PrimaryBatchKey() (id uint32, key []byte, ok bool)
	// Check walks every index against the primary token map and reports
	// what a Tidy command would repair; it changes nothing.
	Check() TidyReport
	// Digest fingerprints the whole replicated state at its applied index
	// (see FSM.Digest), for comparing nodes.
	Digest() Digest
}

// --- Issue 3: policies, roles, prefix revocation, batch keys, tidy. ---

// SetPolicy stores (creates or replaces) an ACL policy's raw text. Name is
// already normalised (trimmed, lower-cased) by the caller and the text has
// been parsed and validated above the fsm; "root" is rejected with
// ErrPolicyReadOnly, an empty name with ErrInvalidCommand.
type SetPolicy struct {
	Name string `json:"name"`
	Text string `json:"text"`
	Now  int64  `json:"now"`
}

// DeletePolicy removes an ACL policy. "default" fails with
// ErrCannotDeleteDefault, "root" with ErrPolicyReadOnly; a missing policy is
// not an error.
type DeletePolicy struct {
	Name string `json:"name"`
}

// Role is a stored token role (Vault's auth/token/roles/:name). The fsm
// stores what the HTTP layer validated and resolved; it only rejects an empty
// Name. Durations are whole seconds. List fields keep the difference between
// nil (never set; Vault reads it back as null) and empty.
type Role struct {
	Name                   string   `json:"name"`
	AllowedPolicies        []string `json:"allowed_policies"`
	DisallowedPolicies     []string `json:"disallowed_policies"`
	AllowedPoliciesGlob    []string `json:"allowed_policies_glob"`
	DisallowedPoliciesGlob []string `json:"disallowed_policies_glob"`
	AllowedEntityAliases   []string `json:"allowed_entity_aliases"`
	Orphan                 bool     `json:"orphan"`
	Renewable              bool     `json:"renewable"`
	PathSuffix             string   `json:"path_suffix,omitempty"`
	TokenPeriod            int64    `json:"token_period,omitempty"`
	TokenExplicitMaxTTL    int64    `json:"token_explicit_max_ttl,omitempty"`
	// TokenType is "service", "batch", "default-service" or "default-batch".
	TokenType            string   `json:"token_type,omitempty"`
	TokenBoundCIDRs      []string `json:"token_bound_cidrs,omitempty"`
	TokenNoDefaultPolicy bool     `json:"token_no_default_policy,omitempty"`
	TokenNumUses         int      `json:"token_num_uses,omitempty"`
	// Period, ExplicitMaxTTL and BoundCIDRs are the deprecated field values,
	// kept separately as Vault does (setting the token_* name zeroes them).
	Period         int64    `json:"period,omitempty"`
	ExplicitMaxTTL int64    `json:"explicit_max_ttl,omitempty"`
	BoundCIDRs     []string `json:"bound_cidrs,omitempty"`
}

// SetRole stores (creates or replaces) a token role. Tokens already issued
// from the role keep their Role name and are not changed.
type SetRole struct {
	Role Role `json:"role"`
}

// DeleteRole removes a token role; a missing role is not an error. Tokens
// already issued from it keep their Role name.
type DeleteRole struct {
	Name string `json:"name"`
}

// RevokePrefix revokes, in one command, every token whose creation Path
// matches Prefix segment-wise, together with their subtrees; Result.Revoked
// counts every token removed.
//
// Matching rule: trailing "/" are trimmed from Prefix; a token matches when
// its Path equals the trimmed prefix or starts with the trimmed prefix
// followed by "/". So "auth/token/create/r" matches "auth/token/create/r"
// and "auth/token/create/r/suffix" but not "auth/token/create/rx". (Vault
// matches lease IDs by raw string prefix, but token lease IDs end in
// "/h<hmac>", so a prefix that names a role already matches whole segments;
// a prefix ending inside a segment, e.g. "auth/token/create-or" for
// create-orphan tokens, matches nothing here.) An empty prefix is rejected
// with ErrInvalidCommand. Tokens with an empty Path never match.
type RevokePrefix struct {
	Prefix string `json:"prefix"`
	Now    int64  `json:"now"`
}

// BatchKeySize is the length of a batch-token key (AES-256 / ChaCha20).
const BatchKeySize = 32

// BatchKey is one key of the batch-token keyring. The key material is
// cluster secret state: it is replicated through the log and written in
// snapshots (as Vault keeps its barrier keyring), never logged.
type BatchKey struct {
	ID  uint32 `json:"id"`
	Key []byte `json:"key"`
	// CreatedAt is when the key was added (Unix ns, the command's Now).
	CreatedAt int64 `json:"created_at,omitempty"`
	// RetiredAt is when it stopped being primary (0 while primary).
	RetiredAt int64 `json:"retired_at,omitempty"`
}

// RotateBatchKey adds a key (generated by the proposer) to the batch-token
// keyring and makes it primary; the previous primary is kept for validation
// with RetiredAt = Now. KeyID must be non-zero and Key BatchKeySize bytes
// (else ErrInvalidCommand). Re-applying the command for the key that is
// already primary with the same material is a no-op (a retried proposal);
// any other reuse of an ID fails with ErrBatchKeyExists.
type RotateBatchKey struct {
	KeyID uint32 `json:"key_id"`
	Key   []byte `json:"key"`
	Now   int64  `json:"now"`
}

// PruneBatchKeys removes every non-primary key whose RetiredAt is before
// Before. The proposer sets Before = now - (longest batch token TTL), so no
// unexpired batch token loses its key. The primary is never removed;
// Result.Pruned counts the keys removed.
type PruneBatchKeys struct {
	Before int64 `json:"before"`
}

// Tidy performs, inside Apply, exactly the repairs Check reports, and
// returns the report in Result.Tidy. It repairs derived indexes (accessor,
// parent → children, expiry, path) to agree with the primary token map, and
// turns tokens whose parent is missing into orphans, as Vault's tidy does.
type Tidy struct {
	Now int64 `json:"now"`
}

// MaxTidyRepairLines caps TidyReport.Repairs; further repairs are counted
// in RepairsOmitted.
const MaxTidyRepairLines = 1000

// TidyReport counts what Check found (and Tidy repaired). Descriptions name
// tokens by accessor or by the first 8 hex digits of their hash.
type TidyReport struct {
	// Tokens is the number of stored tokens checked.
	Tokens int `json:"tokens"`
	// AccessorsDangling: accessor entries pointing at no stored token (removed).
	AccessorsDangling int `json:"accessors_dangling"`
	// AccessorsMismatched: accessor entries pointing at a token with another accessor (removed).
	AccessorsMismatched int `json:"accessors_mismatched"`
	// AccessorsMissing: tokens whose accessor was not indexed (added).
	AccessorsMissing int `json:"accessors_missing"`
	// ChildrenDangling: parent → child entries whose child is not stored (removed).
	ChildrenDangling int `json:"children_dangling"`
	// ChildrenMismatched: parent → child entries whose child names another
	// parent, or whose parent is missing (removed).
	ChildrenMismatched int `json:"children_mismatched"`
	// ChildrenMissing: tokens missing from their parent's children (added).
	ChildrenMissing int `json:"children_missing"`
	// Orphaned: tokens whose parent is not stored; they become orphans.
	Orphaned int `json:"orphaned"`
	// ExpiryMissing / ExpiryExtra: expiry index entries added / removed.
	ExpiryMissing int `json:"expiry_missing"`
	ExpiryExtra   int `json:"expiry_extra"`
	// PathMissing / PathExtra: path index entries added / removed.
	PathMissing int `json:"path_missing"`
	PathExtra   int `json:"path_extra"`
	// Repairs describes each repair, sorted, at most MaxTidyRepairLines.
	Repairs        []string `json:"repairs,omitempty"`
	RepairsOmitted int      `json:"repairs_omitted,omitempty"`
}

// Total is the number of repairs in the report.
func (r TidyReport) Total() int {
	return r.AccessorsDangling + r.AccessorsMismatched + r.AccessorsMissing +
		r.ChildrenDangling + r.ChildrenMismatched + r.ChildrenMissing + r.Orphaned +
		r.ExpiryMissing + r.ExpiryExtra + r.PathMissing + r.PathExtra
}
