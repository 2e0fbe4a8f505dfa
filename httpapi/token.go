package httpapi

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/tokend/tokend/fsm"
)

// Field sets shared by several token routes (declared once, reused).
var (
	tokenCreateFields = Fields{
		"id":                {Type: String, Description: "Custom token ID (root only); must not start with 'hvs.'/'s.' nor contain '.'", Sensitive: true},
		"policies":          {Type: StringSlice, Description: "Policies of the new token; defaults to the caller's"},
		"meta":              {Type: Map, Description: "Metadata (string map) stored on the token"},
		"no_parent":         {Type: Bool, Description: "Create an orphan token (root only)"},
		"no_default_policy": {Type: Bool, Description: "Do not attach the default policy"},
		"renewable":         {Type: Bool, Default: true, Description: "Whether the token may be renewed"},
		"ttl":               {Type: Duration, Signed: true, Description: "Initial TTL (seconds or duration string)"},
		"lease":             {Type: String, Description: "Deprecated alias of ttl (Go duration string)"},
		"explicit_max_ttl":  {Type: Duration, Signed: true, Description: "Hard cap on the token's lifetime"},
		"period":            {Type: Duration, Signed: true, Description: "Period of a periodic token (root only)"},
		"display_name":      {Type: String, MaxLen: 1024, Description: "Display name; stored as token- plus the sanitised name"},
		"num_uses":          {Type: Int, Description: "Number of uses (0 = unlimited)"},
		"type":              {Type: String, Description: "Token type: service or batch (default: service, or as the role says)"},
		"entity_alias":      {Type: String, Description: "Entity alias (only with a token role; must match its allowed_entity_aliases)"},
		"format":            {Type: String, Description: "Accepted and ignored (CLI output format)"},
	}
	// tokenCreateRoleFields is tokenCreateFields plus the role name.
	tokenCreateRoleFields = withField(tokenCreateFields, "role_name", &Field{Type: String, Description: "Name of the token role (path)"})
	tokenFields           = Fields{
		"token": {Type: String, Sensitive: true, Description: "Token ID"},
	}
	tokenRequiredFields = Fields{
		"token": {Type: String, Sensitive: true, Required: true, Missing: msgMissingTokenID, Description: "Token ID"},
	}
	accessorFields = Fields{
		"accessor": {Type: String, Required: true, Missing: multiError("missing accessor"), Description: "Accessor of the token"},
	}
	renewFields = Fields{
		"token":     {Type: String, Sensitive: true, Required: true, Missing: msgMissingTokenID, Description: "Token ID to renew"},
		"increment": {Type: Duration, Default: int64(0), Description: "Requested TTL extension (seconds or duration string)"},
	}
	renewSelfFields = Fields{
		"token":     {Type: String, Sensitive: true, Description: "Accepted and ignored (the caller's token is renewed)"},
		"increment": {Type: Duration, Default: int64(0), Description: "Requested TTL extension (seconds or duration string)"},
	}
	renewAccessorFields = Fields{
		"accessor":  {Type: String, Required: true, Missing: multiError("missing accessor"), Description: "Accessor of the token to renew"},
		"increment": {Type: Duration, Default: int64(0), Description: "Requested TTL extension (seconds or duration string)"},
	}
)

// withField returns a copy of fields with one more field.
func withField(fields Fields, name string, f *Field) Fields {
	out := make(Fields, len(fields)+1)
	for k, v := range fields {
		out[k] = v
	}
	out[name] = f
	return out
}

// tokenRoutes is the route table of Vault's token auth backend.
func (s *server) tokenRoutes() []*Route {
	tok := func(path string, fields Fields, ops Ops, desc string) *Route {
		return &Route{Path: "/v1/auth/token/" + path, Fields: fields, Ops: ops, MountType: "token", Description: desc}
	}
	return []*Route{
		tok("accessors", Fields{}, Ops{
			"LIST": {Handler: s.accessors, Kind: Read, Summary: "List the accessors of all tokens (root only; also GET ?list=true)"},
		}, "Returns data.keys, every stored accessor."),
		tok("create", tokenCreateFields, update(&Op{Handler: s.create, Kind: Write, Summary: "Create a child token of the caller"}),
			"Creates a token whose parent is the calling token (unless no_parent). The token ID is returned once, in auth.client_token."),
		tok("create/{role_name}", tokenCreateRoleFields, update(&Op{Handler: s.createWithRole, Kind: Write, Summary: "Create a token from a token role"}),
			"Applies the role (VAULT-API.md §3.4): type, policy lists, orphan, path auth/token/create/<role>[/<suffix>], "+
				"bound CIDRs, period and explicit max TTL (the lesser of request and role), num_uses, entity_alias. Unknown role: 400."),
		tok("create-orphan", tokenCreateFields, update(&Op{Handler: s.createOrphan, Kind: Write, Summary: "Create an orphan token"}),
			"Like create, but the new token has no parent."),
		tok("lookup", tokenFields, Ops{
			"GET":  {Handler: s.lookup, Kind: Read, Summary: "Look up a token given as ?token= (or the caller's)"},
			"POST": {Handler: s.lookup, Kind: Read, Summary: "Look up a token given in the body (or the caller's)"},
			"PUT":  {Handler: s.lookup, Kind: Read, Summary: "Look up a token given in the body (or the caller's)"},
		}, "Unknown, expired or revoked tokens answer 403 bad token."),
		tok("lookup/{token}", tokenFields, Ops{
			"GET": {Handler: s.lookup, Kind: Read, Summary: "Look up the token given in the path"},
		}, "The path value wins over any query value."),
		tok("lookup-self", tokenFields, Ops{
			"GET":  {Handler: s.lookupSelf, Kind: Read, Summary: "Look up the calling token"},
			"POST": {Handler: s.lookupSelf, Kind: Read, Summary: "Look up the calling token (needs update; not in the default policy)"},
			"PUT":  {Handler: s.lookupSelf, Kind: Read, Summary: "Look up the calling token (needs update; not in the default policy)"},
		}, "data.id echoes the token as presented. The token field is ignored."),
		tok("lookup-accessor", accessorFields, update(&Op{Handler: s.lookupAccessor, Kind: Read, Summary: "Look up a token by accessor"}),
			"Same data as lookup, with data.id blanked."),
		tok("renew", renewFields, update(&Op{Handler: s.renew, Kind: Write, Idempotent: true, Summary: "Renew a token"}), ""),
		tok("renew/{token}", renewFields, update(&Op{Handler: s.renew, Kind: Write, Idempotent: true, Summary: "Renew the token given in the path"}), ""),
		tok("renew-self", renewSelfFields, update(&Op{Handler: s.renewSelf, Kind: Write, Idempotent: true, Summary: "Renew the calling token"}), ""),
		tok("renew-accessor", renewAccessorFields, update(&Op{Handler: s.renewAccessor, Kind: Write, Idempotent: true, Summary: "Renew a token by accessor"}),
			"auth.client_token is blanked."),
		tok("revoke", tokenRequiredFields, update(&Op{Handler: s.revoke, Kind: Write, Idempotent: true, Summary: "Revoke a token and all its descendants"}),
			"An unknown token is not an error (204)."),
		tok("revoke-self", Fields{}, update(&Op{Handler: s.revokeSelf, Kind: Write, Summary: "Revoke the calling token and its descendants"}), ""),
		tok("revoke-accessor", accessorFields, update(&Op{Handler: s.revokeAccessor, Kind: Write, Idempotent: true, Summary: "Revoke a token tree by accessor"}),
			"An unknown accessor answers 200 with the warning \"No token found with this accessor\"."),
		tok("revoke-orphan", tokenRequiredFields, update(&Op{Handler: s.revokeOrphan, Kind: Write, Summary: "Revoke a token; its children become orphans (root only)"}), ""),
	}
}

// propose replicates a command on behalf of a request and records its index
// for X-Vault-Index. Node errors are returned; the command's own error is in
// the result.
func (s *server) propose(ctx context.Context, r *Request, c fsm.Command) (fsm.Result, error) {
	res, idx, err := s.node.Propose(ctx, c)
	if err != nil {
		return res, err
	}
	r.index = max(r.index, idx)
	return res, nil
}

func (s *server) accessors(_ context.Context, r *Request) (*Response, error) {
	keys := s.node.State().Accessors()
	if keys == nil {
		keys = []string{}
	}
	return &Response{Data: map[string]any{"keys": keys}}, nil
}

func (s *server) create(ctx context.Context, r *Request) (*Response, error) {
	return s.createToken(ctx, r, false, nil)
}

func (s *server) createOrphan(ctx context.Context, r *Request) (*Response, error) {
	return s.createToken(ctx, r, true, nil)
}

// createWithRole is auth/token/create/:role_name (VAULT-API.md §3.4).
func (s *server) createWithRole(ctx context.Context, r *Request) (*Response, error) {
	name := r.Data.String("role_name")
	if err := validRoleName(name); err != nil {
		return nil, err
	}
	role, ok := s.node.State().Role(name)
	if !ok {
		return nil, badRequest("unknown role " + name)
	}
	return s.createToken(ctx, r, false, &role)
}

// createToken is Vault's handleCreateCommon (VAULT-API.md §1.2, §2.3–2.8,
// §3.4): it validates the request against the caller and the role (nil
// without one), resolves type, policies, parent, CIDRs and TTLs into a
// tokenSpec, and issues it: a service token through raft, or a batch token
// sealed with the keyring (issueBatch, batchtoken.go).
func (s *server) createToken(ctx context.Context, r *Request, orphan bool, role *fsm.Role) (*Response, error) {
	d, parent := r.Data, r.Token
	isRoot := s.sudo(r)
	if isBatch(parent) {
		return nil, badRequest(msgBatchNoChildren)
	}
	if r.LimitedUse {
		return nil, badRequest(msgRestrictedUse)
	}
	numUses := d.Int("num_uses")
	if numUses < 0 {
		return nil, badRequest("number of uses cannot be negative")
	}
	if numUses > 1<<31-1 {
		return nil, badRequest("number of uses is too large")
	}
	entityID := ""
	if alias := d.String("entity_alias"); alias != "" {
		if role == nil {
			return nil, badRequest("'entity_alias' is only allowed in combination with token role")
		}
		eid, err := roleEntityID(role, alias)
		if err != nil {
			return nil, err
		}
		entityID = eid
	}
	// Batch tokens (batchtoken.go): the role's token_type decides or
	// supplies the default.
	tokenType, err := resolveTokenType(d.String("type"), role)
	if err != nil {
		return nil, err
	}
	if tokenType == tokenTypeBatch {
		if err := batchRequestError(d); err != nil {
			return nil, err
		}
	}

	id := d.String("id")
	if id != "" {
		switch {
		case !isRoot:
			return nil, badRequest("root or sudo privileges required to specify token id")
		case strings.HasPrefix(id, "hvs."):
			return nil, badRequest("custom token ID cannot have the 'hvs.' prefix")
		case strings.HasPrefix(id, "s."):
			return nil, badRequest("custom token ID cannot have the 's.' prefix")
		case strings.Contains(id, "."):
			return nil, badRequest("custom token ID cannot have a '.' in the value")
		}
	}
	renewable := d.Bool("renewable")
	path := r.Path
	if role != nil {
		// The role decides: no_parent is ignored, no sudo needed.
		orphan = role.Orphan
		renewable = renewable && role.Renewable
		path = "auth/token/create/" + role.Name
		if role.PathSuffix != "" {
			path += "/" + role.PathSuffix
		}
		if role.TokenNumUses > 0 && (numUses == 0 || int64(role.TokenNumUses) < numUses) {
			numUses = int64(role.TokenNumUses)
		}
	} else if d.Bool("no_parent") && !orphan {
		if !isRoot {
			return nil, badRequest("root or sudo privileges required to create orphan token")
		}
		orphan = true
	}

	ttl := d.Duration("ttl")
	if !d.Has("ttl") || ttl == 0 {
		if lease := d.String("lease"); lease != "" {
			dur, err := time.ParseDuration(lease)
			if err != nil {
				return nil, badRequest("invalid 'lease' value: " + err.Error())
			}
			ttl = int64(dur / time.Second)
		}
	}
	if ttl < 0 {
		return nil, badRequest("ttl must be positive")
	}
	emax := d.Duration("explicit_max_ttl")
	if emax < 0 {
		return nil, badRequest("explicit_max_ttl must be positive")
	}
	period := d.Duration("period")
	if period < 0 {
		return nil, badRequest("period must be positive")
	}
	if period > 0 && !isRoot {
		return nil, badRequest("root or sudo privileges required to create periodic token")
	}

	noDefault := d.Bool("no_default_policy") || (role != nil && role.TokenNoDefaultPolicy)
	var policies, warnings []string
	if role != nil && roleHasPolicyLists(role) {
		if policies, err = rolePolicies(role, parent.Policies, d.Strings("policies"), noDefault); err == nil {
			err = checkAssignable(policies, parent.Policies)
		}
	} else {
		policies, warnings, err = resolvePolicies(parent.Policies, d.Strings("policies"), d.Has("policies"), isRoot, noDefault)
	}
	if err != nil {
		return nil, err
	}
	warnings = append(warnings, s.missingPolicyWarnings(policies)...)
	isRootChild := len(policies) == 1 && policies[0] == "root"

	// The lesser of the request's and the role's period and explicit max
	// TTL (batch tokens have neither). The token keeps the request's own
	// values (lookup shows only those); renewals re-read the role.
	periodToUse, emaxToUse := period, emax
	if role != nil && tokenType != tokenTypeBatch {
		if re := role.TokenExplicitMaxTTL; re != 0 {
			if emaxToUse == 0 {
				emaxToUse = re
			} else {
				emaxToUse = min(emaxToUse, re)
				warnings = append(warnings, fmt.Sprintf("Explicit max TTL specified both during creation call and in role; using the lesser value of %d seconds", emaxToUse))
			}
		}
		if rp := role.TokenPeriod; rp != 0 {
			if periodToUse == 0 {
				periodToUse = rp
			} else {
				periodToUse = min(periodToUse, rp)
				warnings = append(warnings, fmt.Sprintf("Period specified both during creation call and in role; using the lesser value of %d seconds", periodToUse))
			}
		}
	}

	now := r.Now.UnixNano()
	sysMax := int64(s.opts.MaxTTL / time.Second)
	var grant int64
	if periodToUse > 0 || ttl > 0 || !isRootChild {
		backendTTL := ttl
		if backendTTL == 0 {
			backendTTL = int64(s.opts.DefaultTTL / time.Second)
		}
		t, w, err := fsm.CalculateTTL(0, backendTTL, periodToUse, 0, emaxToUse, sysMax, now, now)
		if err != nil {
			return nil, err
		}
		grant, warnings = t, append(warnings, w...)
	}
	if grant == 0 && emaxToUse > 0 {
		grant = emaxToUse
	}
	if isRootChild && grant == 0 && parent.ExpireTime != 0 {
		return nil, badRequest("expiring root tokens cannot create non-expiring root tokens")
	}

	// CIDRs: a role's own (never the parent's); without a role a child
	// inherits its parent's, an orphan has none. The entity: the alias's,
	// else the parent's for a child.
	var cidrs []string
	if role != nil {
		cidrs = slices.Clone(role.TokenBoundCIDRs)
	}
	if !orphan {
		if entityID == "" {
			entityID = parent.EntityID
		}
		if role == nil {
			cidrs = slices.Clone(parent.BoundCIDRs)
		}
	}
	if grant == 0 {
		// A non-expiring (root) token is neither renewable nor CIDR-bound.
		renewable = false
		cidrs = nil
	}
	if len(cidrs) == 0 {
		cidrs = nil
	}

	spec := tokenSpec{
		ID:             id,
		Type:           tokenType,
		Policies:       policies,
		Meta:           d.Map("meta"),
		DisplayName:    displayName(d.String("display_name")),
		Path:           path,
		NumUses:        int(numUses),
		TTL:            grant,
		ExplicitMaxTTL: emax,
		Period:         period,
		Renewable:      renewable,
		Orphan:         orphan,
		EntityID:       entityID,
		BoundCIDRs:     cidrs,
		Warnings:       warnings,
	}
	if role != nil {
		spec.Role = role.Name
	}
	if !orphan {
		spec.ParentHash = parent.Hash
	}
	if spec.Type == tokenTypeBatch {
		return s.issueBatch(ctx, r, spec)
	}
	return s.issueService(ctx, r, spec)
}

// tokenSpec is a token fully resolved from a create request (policies,
// TTLs, parent, path): everything needed to issue it as a service token
// (stored through raft) or as a batch token (sealed, stored nowhere).
type tokenSpec struct {
	ID             string // custom ID; "" generates one
	Type           string // "service" or "batch" (resolved with the role)
	Policies       []string
	Meta           map[string]string
	DisplayName    string
	Path           string
	Role           string
	ParentHash     string // "" for an orphan
	Orphan         bool
	NumUses        int
	TTL            int64 // granted TTL, seconds; 0 never expires
	ExplicitMaxTTL int64
	Period         int64
	Renewable      bool
	EntityID       string
	BoundCIDRs     []string
	Warnings       []string
}

// issueService stores spec as a service token through raft and renders the
// create response.
func (s *server) issueService(ctx context.Context, r *Request, spec tokenSpec) (*Response, error) {
	id := spec.ID
	if id == "" {
		var err error
		if id, err = newTokenID(); err != nil {
			return nil, err
		}
	}
	acc, err := newAccessor()
	if err != nil {
		return nil, err
	}
	now := r.Now.UnixNano()
	t := fsm.Token{
		Hash:           s.hasher.Hash(id),
		Accessor:       acc,
		Parent:         spec.ParentHash,
		Policies:       spec.Policies,
		Meta:           spec.Meta,
		DisplayName:    spec.DisplayName,
		Path:           spec.Path,
		NumUses:        spec.NumUses,
		CreationTime:   now,
		CreationTTL:    spec.TTL,
		TTL:            spec.TTL,
		ExplicitMaxTTL: spec.ExplicitMaxTTL,
		Period:         spec.Period,
		IssueTime:      now,
		Renewable:      spec.Renewable,
		Type:           fsm.TokenTypeService,
		Role:           spec.Role,
		EntityID:       spec.EntityID,
		BoundCIDRs:     spec.BoundCIDRs,
	}
	if spec.TTL > 0 {
		t.ExpireTime = now + spec.TTL*int64(time.Second)
	}
	res, err := s.propose(ctx, r, fsm.CreateToken{Token: t, Now: now})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		if errors.Is(res.Err, fsm.ErrTokenExists) {
			return nil, badRequest("cannot create a token with a duplicate ID")
		}
		if errors.Is(res.Err, fsm.ErrRoleNotFound) {
			// The role was deleted while the request was in flight.
			return nil, badRequest("unknown role " + spec.Role)
		}
		return nil, res.Err
	}
	return &Response{
		Auth: &Auth{
			ClientToken:   id,
			Accessor:      acc,
			Policies:      spec.Policies,
			TokenPolicies: spec.Policies,
			Metadata:      t.Meta,
			LeaseDuration: spec.TTL,
			Renewable:     spec.Renewable && spec.TTL > 0,
			EntityID:      spec.EntityID,
			TokenType:     fsm.TokenTypeService,
			Orphan:        spec.Orphan,
			NumUses:       spec.NumUses,
		},
		Warnings: append(spec.Warnings, res.Warnings...),
	}, nil
}

// sanitizePolicies trims, lower-cases, drops empty names, de-duplicates and
// sorts; a list holding "root" collapses to ["root"] (policyutil).
func sanitizePolicies(in []string) []string {
	out := make([]string, 0, len(in))
	for _, p := range in {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if p == "root" {
			return []string{"root"}
		}
		out = append(out, p)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// resolvePolicies applies VAULT-API.md §2.4 for a create without a role.
func resolvePolicies(parentPolicies, requested []string, given, isRoot, noDefault bool) ([]string, []string, error) {
	parent := sanitizePolicies(parentPolicies)
	req := sanitizePolicies(requested)
	for _, p := range req {
		if p == "response-wrapping" || p == "control-group" {
			return nil, nil, badRequest(fmt.Sprintf("cannot assign policy %q", p))
		}
	}
	var out []string
	switch {
	case !given || len(req) == 0:
		out = slices.Clone(parent)
	case !isRoot:
		for _, p := range req {
			if p != "default" && !slices.Contains(parent, p) {
				return nil, nil, badRequest("child policies must be subset of parent")
			}
		}
		out = slices.Clone(req)
		if slices.Contains(parent, "default") && !noDefault {
			out = append(out, "default")
		}
	default:
		out = slices.Clone(req)
		if !noDefault {
			out = append(out, "default")
		}
	}
	if noDefault {
		out = slices.DeleteFunc(out, func(p string) bool { return p == "default" })
	}
	out = sanitizePolicies(out)
	// Sudo is not enough to mint a root token: the parent must be root.
	if slices.Contains(out, "root") && !slices.Contains(parent, "root") {
		return nil, nil, badRequest("root tokens may not be created without parent token being root")
	}
	// "Policy … does not exist" warnings need the policy store: the caller
	// adds them (s.missingPolicyWarnings, policy.go).
	return out, nil, nil
}

// displayName is VAULT-API.md §2.8: "token-" + name with every character
// outside [a-zA-Z0-9-] replaced by "-", one trailing "-" trimmed.
func displayName(name string) string {
	if name == "" {
		return "token"
	}
	b := []byte("token-" + name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return strings.TrimSuffix(string(b), "-")
}

// lookupData renders Vault's lookup object (VAULT-API.md §1.4) for t as
// seen at now; id is what data.id shows.
func lookupData(t *fsm.Token, id string, now time.Time) map[string]any {
	policies := t.Policies
	if policies == nil {
		policies = []string{}
	}
	var meta any
	if t.Meta != nil {
		meta = t.Meta
	}
	d := map[string]any{
		"id":               id,
		"accessor":         t.Accessor,
		"policies":         policies,
		"path":             t.Path,
		"meta":             meta,
		"display_name":     t.DisplayName,
		"num_uses":         t.NumUses,
		"orphan":           t.Parent == "",
		"creation_time":    t.CreationTime / int64(time.Second),
		"creation_ttl":     t.CreationTTL,
		"expire_time":      nil,
		"ttl":              int64(0),
		"explicit_max_ttl": t.ExplicitMaxTTL,
		"entity_id":        t.EntityID,
		"type":             tokenType(t),
	}
	if t.ExpireTime != 0 {
		exp := time.Unix(0, t.ExpireTime).UTC()
		d["expire_time"] = exp.Format(time.RFC3339Nano)
		d["ttl"] = max(int64(exp.Sub(now).Round(time.Second)/time.Second), 0)
		// Only tokens with a lease have these (a TTL-0 root token has none).
		d["renewable"] = t.Renewable
		issue := t.IssueTime
		if issue == 0 {
			issue = t.CreationTime
		}
		d["issue_time"] = time.Unix(0, issue).UTC().Format(time.RFC3339Nano)
	}
	if t.Period > 0 {
		d["period"] = t.Period
	}
	if t.Role != "" {
		d["role"] = t.Role
	}
	if len(t.BoundCIDRs) > 0 {
		d["bound_cidrs"] = t.BoundCIDRs
	}
	if t.LastRenewalTime != 0 {
		lr := time.Unix(0, t.LastRenewalTime).UTC()
		d["last_renewal_time"] = lr.Unix()
		d["last_renewal"] = lr.Format(time.RFC3339Nano)
	}
	return d
}

func tokenType(t *fsm.Token) string {
	if t.Type == "" {
		return fsm.TokenTypeService
	}
	return t.Type
}

// validToken returns the stored, unexpired token with this ID.
func (s *server) validToken(id string, now time.Time) (fsm.Token, bool) {
	if isBatchTokenID(id) {
		return s.validBatch(id, now)
	}
	return s.node.State().Valid(s.hasher.Hash(id), now.UnixNano())
}

// validByAccessor returns the unexpired token with this accessor.
func (s *server) validByAccessor(acc string, now time.Time) (fsm.Token, bool) {
	t, ok := s.node.State().TokenByAccessor(acc)
	if !ok {
		return fsm.Token{}, false
	}
	return s.node.State().Valid(t.Hash, now.UnixNano())
}

func (s *server) lookup(_ context.Context, r *Request) (*Response, error) {
	id := r.Data.String("token")
	if id == "" {
		id = r.ClientToken
	}
	if id == "" {
		return nil, badRequest(msgMissingTokenID)
	}
	if subtle.ConstantTimeCompare([]byte(id), []byte(r.ClientToken)) == 1 {
		// The caller's own token, as this request left it (num_uses).
		return lookupResponse(r.Token, id, r.Now), nil
	}
	t, ok := s.validToken(id, r.Now)
	if !ok {
		return nil, newError(http.StatusForbidden, msgBadToken)
	}
	return lookupResponse(&t, id, r.Now), nil
}

func (s *server) lookupSelf(_ context.Context, r *Request) (*Response, error) {
	return lookupResponse(r.Token, r.ClientToken, r.Now), nil
}

func (s *server) lookupAccessor(_ context.Context, r *Request) (*Response, error) {
	t, ok := s.validByAccessor(r.Data.String("accessor"), r.Now)
	if !ok {
		return nil, badRequest(multiError("invalid accessor"))
	}
	return lookupResponse(&t, "", r.Now), nil
}

func (s *server) renew(ctx context.Context, r *Request) (*Response, error) {
	id := r.Data.String("token")
	t, ok := s.validToken(id, r.Now)
	if !ok {
		return nil, badRequest(msgTokenNotFound)
	}
	return s.renewToken(ctx, r, &t, id)
}

func (s *server) renewSelf(ctx context.Context, r *Request) (*Response, error) {
	return s.renewToken(ctx, r, r.Token, r.ClientToken)
}

func (s *server) renewAccessor(ctx context.Context, r *Request) (*Response, error) {
	t, ok := s.validByAccessor(r.Data.String("accessor"), r.Now)
	if !ok {
		return nil, badRequest(multiError("invalid accessor"))
	}
	return s.renewToken(ctx, r, &t, "")
}

// renewToken proposes RenewToken (VAULT-API.md §1.6, §2.6 at renew).
func (s *server) renewToken(ctx context.Context, r *Request, t *fsm.Token, clientToken string) (*Response, error) {
	if isBatch(t) {
		return nil, badRequest(msgBatchRenew)
	}
	if t.ExpireTime == 0 {
		// A non-expiring token has no lease to renew.
		return nil, badRequest(fsm.ErrInvalidLease.Error())
	}
	if !t.Renewable {
		return nil, badRequest(fsm.ErrNotRenewable.Error())
	}
	res, err := s.propose(ctx, r, fsm.RenewToken{
		Hash:      t.Hash,
		Increment: r.Data.Duration("increment"),
		MaxTTL:    int64(s.opts.MaxTTL / time.Second),
		Now:       r.Now.UnixNano(),
		// A role token renews with its role's current period and explicit
		// max TTL (VAULT-API.md §2.6 "At renew").
		ByRole: true,
	})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		if errors.Is(res.Err, fsm.ErrRoleNotFound) {
			return nil, newError(http.StatusInternalServerError, fmt.Sprintf("original token role %q could not be found, not renewing", t.Role))
		}
		return nil, res.Err
	}
	nt := res.Token
	if nt == nil {
		return nil, errors.New("renew returned no token")
	}
	return &Response{
		Auth: &Auth{
			ClientToken:   clientToken,
			Accessor:      nt.Accessor,
			Policies:      nt.Policies,
			TokenPolicies: nt.Policies,
			Metadata:      nt.Meta,
			LeaseDuration: nt.TTL,
			Renewable:     nt.Renewable,
			EntityID:      nt.EntityID,
			TokenType:     tokenType(nt),
			Orphan:        nt.Parent == "",
			NumUses:       nt.NumUses,
		},
		Warnings: res.Warnings,
	}, nil
}

func (s *server) revoke(ctx context.Context, r *Request) (*Response, error) {
	if id := r.Data.String("token"); isBatchTokenID(id) {
		// Never stored, so nothing to propose: a valid one cannot be
		// revoked, an invalid one is unknown (204).
		if _, ok := s.validBatch(id, r.Now); ok {
			return nil, badRequest(msgBatchRevoke)
		}
		return nil, nil
	}
	res, err := s.propose(ctx, r, fsm.RevokeTree{Hash: s.hasher.Hash(r.Data.String("token")), Now: r.Now.UnixNano()})
	if err != nil {
		return nil, err
	}
	if res.Err != nil && !errors.Is(res.Err, fsm.ErrTokenNotFound) {
		return nil, res.Err
	}
	return nil, nil
}

func (s *server) revokeSelf(ctx context.Context, r *Request) (*Response, error) {
	if isBatch(r.Token) {
		return nil, badRequest(msgBatchRevoke)
	}
	res, err := s.propose(ctx, r, fsm.RevokeTree{Hash: r.Token.Hash, Now: r.Now.UnixNano()})
	if err != nil {
		return nil, err
	}
	if res.Err != nil && !errors.Is(res.Err, fsm.ErrTokenNotFound) {
		return nil, res.Err
	}
	return nil, nil
}

func (s *server) revokeAccessor(ctx context.Context, r *Request) (*Response, error) {
	acc := r.Data.String("accessor")
	notFound := &Response{Warnings: []string{msgNoAccessorToken}}
	// Always propose, even for an accessor this node does not know: a revoke
	// of the same token may still be fencing, and answering from local state
	// would acknowledge before every node stopped validating it.
	res, err := s.propose(ctx, r, fsm.RevokeAccessor{Accessor: acc, Now: r.Now.UnixNano()})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		if errors.Is(res.Err, fsm.ErrTokenNotFound) {
			return notFound, nil
		}
		return nil, res.Err
	}
	return nil, nil
}

func (s *server) revokeOrphan(ctx context.Context, r *Request) (*Response, error) {
	if !s.sudo(r) {
		return nil, badRequest("root or sudo privileges required to revoke and orphan")
	}
	if id := r.Data.String("token"); isBatchTokenID(id) {
		if _, ok := s.validBatch(id, r.Now); ok {
			return nil, badRequest(msgBatchRevoke)
		}
		return nil, badRequest(msgRevokeNotFound)
	}
	res, err := s.propose(ctx, r, fsm.RevokeOrphan{Hash: s.hasher.Hash(r.Data.String("token")), Now: r.Now.UnixNano()})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		if errors.Is(res.Err, fsm.ErrTokenNotFound) {
			return nil, badRequest(msgRevokeNotFound)
		}
		return nil, res.Err
	}
	if res.Revoked == 0 {
		return nil, badRequest(msgRevokeNotFound)
	}
	return nil, nil
}
