package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend/fsm"
)

// Token roles (VAULT-API.md §1.8, §3) and the bound-CIDR check of every
// authenticated request (§2.12).

var (
	// roleNameRegexp is Vault's GenericNameRegex for :role_name.
	roleNameRegexp = regexp.MustCompile(`^\w(([\w-.]+)?\w)?$`)
	// pathSuffixRegexp is Vault's path suffix rule, anchored: Vault matches
	// it unanchored (so "a/b" passes there); tokend refuses a "/" in a
	// suffix, which would make the role's tokens look like another role's.
	pathSuffixRegexp = regexp.MustCompile(`^\w[\w-.]+\w$`)
)

// Messages of the role endpoints (Vault's token_store.go).
const (
	msgPathSuffixInvalid = `given role path suffix contains invalid characters; must match \w[\w-.]+\w`
	msgPathSuffixParent  = "error registering path suffix: path cannot contain parent references"
	msgRoleTypeNull      = "Invalid 'token_type' value: null"
)

// roleFields are the fields of auth/token/roles/:role_name (§3.1).
var roleFields = Fields{
	"role_name":                {Type: String, Description: "Name of the role (path)"},
	"allowed_policies":         {Type: CommaStringSlice, Description: "Policies tokens of this role may have; without a request list, the token gets them (sanitised, default not auto-added)"},
	"disallowed_policies":      {Type: CommaStringSlice, Description: "Policies tokens of this role may never have"},
	"allowed_policies_glob":    {Type: CommaStringSlice, Description: "Glob patterns (*) of policies tokens of this role may have"},
	"disallowed_policies_glob": {Type: CommaStringSlice, Description: "Glob patterns (*) of policies tokens of this role may never have"},
	"orphan":                   {Type: Bool, Description: "Tokens of this role have no parent (default false)"},
	"renewable":                {Type: Bool, Description: "Tokens of this role may be renewed (default true)"},
	"path_suffix":              {Type: String, MaxLen: 1024, Description: "Appended to the creation path (auth/token/create/<role>/<suffix>); must match \\w[\\w-.]+\\w, no '..'"},
	"allowed_entity_aliases":   {Type: CommaStringSlice, Description: "Entity aliases (globs allowed, case-insensitive) a create request may name"},
	"token_period":             {Type: Duration, Description: "Period of the role's tokens (periodic tokens without sudo)"},
	"period":                   {Type: Duration, Description: "Deprecated: use token_period"},
	"token_explicit_max_ttl":   {Type: Duration, Description: "Hard cap on the lifetime of the role's tokens"},
	"explicit_max_ttl":         {Type: Duration, Description: "Deprecated: use token_explicit_max_ttl"},
	"token_bound_cidrs":        {Type: CommaStringSlice, Description: "IPs or CIDRs the role's tokens may be used from"},
	"bound_cidrs":              {Type: CommaStringSlice, Description: "Deprecated: use token_bound_cidrs"},
	"token_type":               {Type: String, Description: "service, batch, default-service or default-batch (default/\"\" = default-service)"},
	"token_no_default_policy":  {Type: Bool, Description: "Do not attach the default policy to the role's tokens"},
	"token_num_uses":           {Type: Int, Description: "Maximum number of uses of the role's tokens (0 = unlimited)"},
}

// roleRoutes is the route table of auth/token/roles.
func (s *server) roleRoutes() []*Route {
	write := &Op{Handler: s.writeRole, Kind: Write, Idempotent: true, Summary: "Create or update a token role"}
	return []*Route{
		{
			Path: "/v1/auth/token/roles", MountType: "token", Fields: Fields{},
			Ops:         Ops{"LIST": {Handler: s.listRoles, Kind: Read, Summary: "List the token roles (also GET ?list=true)"}},
			Description: "data.keys: the role names, sorted; 404 when there are none.",
		},
		{
			Path: "/v1/auth/token/roles/{role_name}", MountType: "token", Fields: roleFields,
			Ops: Ops{
				"GET":    {Handler: s.readRole, Kind: Read, Summary: "Read a token role"},
				"POST":   write,
				"PUT":    write,
				"DELETE": {Handler: s.deleteRole, Kind: Write, Idempotent: true, Summary: "Delete a token role (204 also when missing)"},
			},
			Description: "On update, fields not supplied keep their value. Validation errors are 400s with Vault's messages; " +
				"warnings (deprecated fields, explicit max TTL above the system max) make it a 200 instead of a 204.",
		},
	}
}

// validRoleName reports whether name is a role name Vault's router accepts;
// any other name is an unsupported path.
func validRoleName(name string) error {
	if !roleNameRegexp.MatchString(name) {
		return newError(http.StatusNotFound, msgUnsupportedPath)
	}
	return nil
}

func (s *server) listRoles(_ context.Context, _ *Request) (*Response, error) {
	keys := s.node.State().RoleNames()
	if keys == nil {
		keys = []string{}
	}
	return &Response{Data: map[string]any{"keys": keys}}, nil
}

func (s *server) readRole(_ context.Context, r *Request) (*Response, error) {
	name := r.Data.String("role_name")
	if err := validRoleName(name); err != nil {
		return nil, err
	}
	role, ok := s.node.State().Role(name)
	if !ok {
		return nil, &apiError{Status: http.StatusNotFound}
	}
	return &Response{Data: roleData(&role)}, nil
}

// roleData is the read shape of a role (§3.2).
func roleData(role *fsm.Role) map[string]any {
	list := func(l []string) any {
		if l == nil {
			return nil
		}
		return l
	}
	typ := role.TokenType
	if typ == "" || typ == tokenTypeDefault {
		typ = tokenTypeDefaultService
	}
	d := map[string]any{
		"name":                     role.Name,
		"allowed_policies":         list(role.AllowedPolicies),
		"disallowed_policies":      list(role.DisallowedPolicies),
		"allowed_policies_glob":    list(role.AllowedPoliciesGlob),
		"disallowed_policies_glob": list(role.DisallowedPoliciesGlob),
		"allowed_entity_aliases":   list(role.AllowedEntityAliases),
		"orphan":                   role.Orphan,
		"renewable":                role.Renewable,
		"path_suffix":              role.PathSuffix,
		"period":                   role.Period,
		"token_period":             role.TokenPeriod,
		"explicit_max_ttl":         role.ExplicitMaxTTL,
		"token_explicit_max_ttl":   role.TokenExplicitMaxTTL,
		"token_type":               typ,
		"token_no_default_policy":  role.TokenNoDefaultPolicy,
	}
	if len(role.TokenBoundCIDRs) > 0 {
		d["token_bound_cidrs"] = role.TokenBoundCIDRs
	}
	if len(role.BoundCIDRs) > 0 {
		d["bound_cidrs"] = role.BoundCIDRs
	}
	if role.TokenNumUses > 0 {
		d["token_num_uses"] = role.TokenNumUses
	}
	return d
}

func (s *server) deleteRole(ctx context.Context, r *Request) (*Response, error) {
	name := r.Data.String("role_name")
	if err := validRoleName(name); err != nil {
		return nil, err
	}
	res, err := s.propose(ctx, r, fsm.DeleteRole{Name: name})
	if err != nil {
		return nil, err
	}
	return nil, res.Err
}

// writeRole is Vault's tokenStoreRoleCreateUpdate: a new role starts from
// the defaults, an existing one keeps every field the request does not
// supply; the result is validated as a whole and stored with SetRole.
func (s *server) writeRole(ctx context.Context, r *Request) (*Response, error) {
	d := r.Data
	name := d.String("role_name")
	if name == "" {
		return nil, badRequest("role name cannot be empty")
	}
	if err := validRoleName(name); err != nil {
		return nil, err
	}
	role, exists := s.node.State().Role(name)
	if !exists {
		role = fsm.Role{
			Name:                   name,
			Renewable:              true,
			AllowedPolicies:        []string{},
			DisallowedPolicies:     []string{},
			AllowedPoliciesGlob:    []string{},
			DisallowedPoliciesGlob: []string{},
			TokenType:              tokenTypeDefaultService,
		}
	}

	if d.Has("orphan") {
		role.Orphan = d.Bool("orphan")
	}
	if d.Has("renewable") {
		role.Renewable = d.Bool("renewable")
	}
	if d.Has("path_suffix") {
		suffix := d.String("path_suffix")
		if suffix != "" && !pathSuffixRegexp.MatchString(suffix) {
			return nil, badRequest(msgPathSuffixInvalid)
		}
		role.PathSuffix = suffix
	}
	if strings.Contains(role.PathSuffix, "..") {
		return nil, badRequest(msgPathSuffixParent)
	}
	if d.Has("allowed_policies") {
		role.AllowedPolicies = sanitizePolicies(d.Strings("allowed_policies"))
	}
	if d.Has("disallowed_policies") {
		role.DisallowedPolicies = dedupLower(d.Strings("disallowed_policies"))
	}
	if d.Has("allowed_policies_glob") {
		role.AllowedPoliciesGlob = sanitizePolicies(d.Strings("allowed_policies_glob"))
	}
	if d.Has("disallowed_policies_glob") {
		role.DisallowedPoliciesGlob = dedupLower(d.Strings("disallowed_policies_glob"))
	}

	// token_type is parsed by the role itself (it knows default-service
	// and default-batch); while the token_* fields are parsed, a supplied
	// token_type counts as "default", as in Vault.
	typeGiven := false
	newType := ""
	if raw, ok := d.raw["token_type"]; ok {
		if raw == nil {
			return nil, badRequest(msgRoleTypeNull)
		}
		typeGiven, newType = true, d.String("token_type")
	}
	parseType := role.TokenType
	if typeGiven {
		parseType = tokenTypeDefault
	}
	if err := parseRoleTokenFields(&role, d, parseType); err != nil {
		return nil, badRequest("error parsing role fields: " + err.Error())
	}
	if typeGiven {
		switch newType {
		case fsm.TokenTypeService, tokenTypeBatch, tokenTypeDefaultService, tokenTypeDefaultBatch:
			role.TokenType = newType
		case "", tokenTypeDefault:
			role.TokenType = tokenTypeDefaultService
		default:
			return nil, badRequest(fmt.Sprintf("invalid 'token_type' value %q", newType))
		}
	}

	// Deprecated names: the token_* name wins (with a warning) and zeroes
	// the deprecated stored value; the deprecated name alone sets both.
	var warnings []string
	both := func(newName, old string) {
		warnings = append(warnings, fmt.Sprintf("Both '%s' and deprecated '%s' value supplied, ignoring the deprecated value", newName, old))
	}
	if d.Has("token_period") {
		if d.Has("period") {
			both("token_period", "period")
		}
		role.Period = 0
	} else if d.Has("period") {
		role.Period = d.Duration("period")
		role.TokenPeriod = role.Period
	}
	if d.Has("token_bound_cidrs") {
		if d.Has("bound_cidrs") {
			both("token_bound_cidrs", "bound_cidrs")
		}
		role.BoundCIDRs = nil
	} else if d.Has("bound_cidrs") {
		cidrs, err := parseCIDRs(d.Strings("bound_cidrs"))
		if err != nil {
			return nil, badRequest("error parsing bound_cidrs: " + err.Error())
		}
		role.BoundCIDRs = cidrs
		role.TokenBoundCIDRs = slices.Clone(cidrs)
	}
	if d.Has("token_explicit_max_ttl") {
		if d.Has("explicit_max_ttl") {
			both("token_explicit_max_ttl", "explicit_max_ttl")
		}
		role.ExplicitMaxTTL = 0
	} else if d.Has("explicit_max_ttl") {
		role.ExplicitMaxTTL = d.Duration("explicit_max_ttl")
		role.TokenExplicitMaxTTL = role.ExplicitMaxTTL
	}
	if sysMax := int64(s.opts.MaxTTL / time.Second); role.TokenExplicitMaxTTL > sysMax {
		warnings = append(warnings, fmt.Sprintf("Given explicit max TTL of %d is greater than system/mount allowed value of %d seconds; "+
			"until this is fixed attempting to create tokens against this role will result in an error", role.TokenExplicitMaxTTL, sysMax))
	}

	if role.TokenType == tokenTypeBatch {
		const prefix = "'token_type' cannot be 'batch' when role is set to generate "
		switch {
		case !role.Orphan:
			return nil, badRequest(prefix + "non-orphan tokens")
		case role.Period != 0 || role.TokenPeriod != 0:
			return nil, badRequest(prefix + "periodic tokens")
		case role.Renewable:
			return nil, badRequest(prefix + "renewable tokens")
		case role.ExplicitMaxTTL != 0 || role.TokenExplicitMaxTTL != 0:
			return nil, badRequest(prefix + "tokens with an explicit max TTL")
		}
	}
	// Batch tokens cannot have num_uses: a role that would mint batch
	// tokens with a use limit is refused whatever the order the fields
	// arrived in (Vault checks it only against the type stored before).
	if (role.TokenType == tokenTypeBatch || role.TokenType == tokenTypeDefaultBatch) && role.TokenNumUses != 0 {
		return nil, badRequest("error parsing role fields: 'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with limited use count")
	}

	if d.Has("allowed_entity_aliases") {
		role.AllowedEntityAliases = dedupLowerStable(d.Strings("allowed_entity_aliases"))
	}

	res, err := s.propose(ctx, r, fsm.SetRole{Role: role})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		return nil, res.Err
	}
	if len(warnings) == 0 {
		return nil, nil
	}
	return &Response{Warnings: warnings}, nil
}

// parseRoleTokenFields is the role's part of tokenutil.ParseTokenFields for
// the six token_* fields a token role has. typ is the token type as that
// parser sees it (the stored one, or "default" when the request supplies
// token_type).
func parseRoleTokenFields(role *fsm.Role, d *FieldData, typ string) error {
	if d.Has("token_bound_cidrs") {
		cidrs, err := parseCIDRs(d.Strings("token_bound_cidrs"))
		if err != nil {
			return err
		}
		role.TokenBoundCIDRs = cidrs
	}
	if d.Has("token_explicit_max_ttl") {
		role.TokenExplicitMaxTTL = d.Duration("token_explicit_max_ttl")
	}
	if d.Has("token_no_default_policy") {
		role.TokenNoDefaultPolicy = d.Bool("token_no_default_policy")
	}
	if d.Has("token_period") {
		role.TokenPeriod = d.Duration("token_period")
	}
	if role.TokenPeriod < 0 {
		return fmt.Errorf("'token_period' cannot be negative")
	}
	if d.Has("token_num_uses") {
		n := d.Int("token_num_uses")
		if n > 1<<31-1 {
			return fmt.Errorf("'token_num_uses' is too large")
		}
		role.TokenNumUses = int(n)
	}
	if role.TokenNumUses < 0 {
		return fmt.Errorf("'token_num_uses' cannot be negative")
	}
	if typ == tokenTypeBatch || typ == tokenTypeDefaultBatch {
		if role.TokenPeriod != 0 {
			return fmt.Errorf("'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens")
		}
		if role.TokenNumUses != 0 {
			return fmt.Errorf("'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with limited use count")
		}
	}
	return nil
}

// dedupLower is strutil.RemoveDuplicates(l, true): trimmed, lower-cased,
// empty dropped, de-duplicated, sorted.
func dedupLower(in []string) []string {
	out := make([]string, 0, len(in))
	for _, p := range in {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// dedupLowerStable is strutil.RemoveDuplicatesStable(l, true): lower-cased,
// first occurrence kept, order kept (empty entries dropped).
func dedupLowerStable(in []string) []string {
	out := make([]string, 0, len(in))
	for _, p := range in {
		p = strings.ToLower(strings.TrimSpace(p))
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// parseCIDRs is parseutil.ParseAddrs restricted to what can match a client
// address: an IP (a single host) or a CIDR. Each is stored as Vault renders
// it: the bare address for a full-length prefix, else address/bits.
// (Vault also accepts a UNIX socket path; no client comes from one, so
// tokend refuses it with the same message as any unparsable entry.)
func parseCIDRs(in []string) ([]string, error) {
	out := make([]string, 0, len(in))
	for _, raw := range in {
		a := strings.TrimSpace(raw)
		if a == "" {
			continue
		}
		p, err := parseCIDR(a)
		if err != nil {
			return nil, fmt.Errorf("error parsing address %q: Unable to convert %q to an IPv4 or IPv6 address, or a UNIX Socket", a, a)
		}
		if p.IsSingleIP() {
			out = append(out, p.Addr().String())
		} else {
			out = append(out, p.String())
		}
	}
	return out, nil
}

// parseCIDR parses "addr" or "addr/bits" (host bits may be set, as Vault
// allows; matching masks them).
func parseCIDR(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// cidrsContain reports whether ip lies inside one of the stored CIDRs. An
// IPv4-mapped IPv6 client address matches IPv4 CIDRs.
func cidrsContain(cidrs []string, ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, c := range cidrs {
		p, err := parseCIDR(c)
		if err != nil {
			continue
		}
		if p.Masked().Contains(ip) {
			return true
		}
	}
	return false
}

// globMatch is github.com/ryanuber/go-glob (strutil.StrListContainsGlob):
// "*" matches any run of characters, anywhere, any number of times.
func globMatch(pattern, subj string) bool {
	if pattern == "" {
		return subj == ""
	}
	if pattern == "*" {
		return true
	}
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return subj == pattern
	}
	leading, trailing := strings.HasPrefix(pattern, "*"), strings.HasSuffix(pattern, "*")
	end := len(parts) - 1
	for i := 0; i < end; i++ {
		idx := strings.Index(subj, parts[i])
		switch {
		case i == 0 && !leading && idx != 0:
			return false
		case idx < 0:
			return false
		}
		subj = subj[idx+len(parts[i]):]
	}
	return trailing || strings.HasSuffix(subj, parts[end])
}

// globAny reports whether one of the patterns matches s.
func globAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

// roleHasPolicyLists reports whether a role restricts policies itself; a
// role without any of the four lists follows the parent-subset rules.
func roleHasPolicyLists(role *fsm.Role) bool {
	return len(role.AllowedPolicies) > 0 || len(role.DisallowedPolicies) > 0 ||
		len(role.AllowedPoliciesGlob) > 0 || len(role.DisallowedPoliciesGlob) > 0
}

// rolePolicies applies §3.4 step 6 for a role with policy lists: the
// request's policies (or the role's allowed ones, or the parent's) checked
// against the allowed and disallowed lists, ignoring the parent-subset
// rule. noDefault strips "default" at the end.
func rolePolicies(role *fsm.Role, parentPolicies, requested []string, noDefault bool) ([]string, error) {
	addDefault := !noDefault && !slices.Contains(role.DisallowedPolicies, "default") &&
		!globAny(role.DisallowedPoliciesGlob, "default")
	withDefault := func(l []string) []string {
		out := slices.Clone(l)
		if addDefault {
			out = append(out, "default")
		}
		return sanitizePolicies(out)
	}
	var final []string
	if len(sanitizePolicies(requested)) > 0 {
		final = withDefault(sanitizePolicies(requested))
	}
	if len(role.AllowedPolicies) > 0 || len(role.AllowedPoliciesGlob) > 0 {
		allowed := withDefault(role.AllowedPolicies)
		if len(final) == 0 {
			final = allowed
		} else {
			globs := sanitizePolicies(role.AllowedPoliciesGlob)
			for _, p := range final {
				if !slices.Contains(allowed, p) && !globAny(globs, p) {
					return nil, badRequest(fmt.Sprintf("token policies (%q) must be subset of the role's allowed policies (%q) or glob policies (%q)",
						final, allowed, globs))
				}
			}
		}
	} else if len(final) == 0 {
		final = withDefault(parentPolicies)
	}
	if len(role.DisallowedPolicies) > 0 || len(role.DisallowedPoliciesGlob) > 0 {
		dis, disGlob := dedupLower(role.DisallowedPolicies), dedupLower(role.DisallowedPoliciesGlob)
		for _, p := range final {
			if slices.Contains(dis, p) || globAny(disGlob, p) {
				return nil, badRequest(fmt.Sprintf("token policy %q is disallowed by this role", p))
			}
		}
	}
	if noDefault {
		final = slices.DeleteFunc(final, func(p string) bool { return p == "default" })
	}
	return final, nil
}

// checkAssignable is the last check on a new token's final policies:
// internal policies are never assignable and only a root parent mints a
// root token (sudo is not enough).
func checkAssignable(policies, parentPolicies []string) error {
	for _, p := range policies {
		if p == "response-wrapping" || p == "control-group" {
			return badRequest(fmt.Sprintf("cannot assign policy %q", p))
		}
	}
	if slices.Contains(policies, "root") && !slices.Contains(sanitizePolicies(parentPolicies), "root") {
		return badRequest("root tokens may not be created without parent token being root")
	}
	return nil
}

// roleEntityID checks a create request's entity_alias against the role
// (§3.4 step 10) and returns the entity the token is bound to. tokend has
// no identity store: the entity ID is derived from the alias name alone
// (a stable UUID-shaped value), so every token created with the same alias
// shares one entity_id, as Vault's would.
func roleEntityID(role *fsm.Role, alias string) (string, error) {
	a := strings.ToLower(alias)
	if !slices.Contains(role.AllowedEntityAliases, a) && !globAny(role.AllowedEntityAliases, a) {
		return "", badRequest("invalid 'entity_alias' value")
	}
	sum := sha256.Sum256([]byte("tokend-entity-alias\x00" + a))
	sum[6] = (sum[6] & 0x0f) | 0x80 // version 8: custom
	sum[8] = (sum[8] & 0x3f) | 0x80
	h := hex.EncodeToString(sum[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32], nil
}

// --- Bound CIDRs (§2.12) ---

// headerClientAddr carries the original client address of a forwarded
// request: "<ip> <unix seconds> <mac>", the MAC keyed with the cluster's
// replicated index key. Only the node that received the request from the
// client sets it (maybeForward); the leader believes it only on a
// hop-marked request and only when the MAC verifies.
const headerClientAddr = "X-Tokend-Client-Addr"

// clientAddrMaxAge bounds how long a stamped client address is accepted
// (forwarding takes milliseconds; this only absorbs clock skew).
const clientAddrMaxAge = 60 * time.Second

// checkBoundCIDRs is the bound-CIDR check of every authenticated request,
// called by serve() right after the token is validated: a token with bound
// CIDRs (other than a non-expiring root token) is refused with 403
// permission denied when the client's address is outside all of them.
//
// The client's address is r.RemoteAddr of the node the client connected to
// (never X-Forwarded-For, which the client controls). Writes are forwarded
// to the leader before authentication, so the leader would see the
// forwarding node's address: the forwarding node therefore stamps the
// original address into headerClientAddr with a MAC under the cluster's
// index key (a replicated secret no client knows), bound to the token and
// a timestamp. The leader uses the stamped address for a hop-marked
// request whose stamp verifies, and RemoteAddr otherwise. Trusting the hop
// marker alone would be unsafe: it is a plain header any client can send
// straight to the leader. A request that cannot be stamped (no index key
// yet) is checked against the forwarding node's address: it fails closed.
func (s *server) checkBoundCIDRs(c *call, tok *fsm.Token) error {
	if len(tok.BoundCIDRs) == 0 || (tok.ExpireTime == 0 && tok.IsRoot()) {
		return nil
	}
	ip, ok := s.clientAddr(c.r)
	if !ok || !cidrsContain(tok.BoundCIDRs, ip) {
		return newError(http.StatusForbidden, msgPermissionDenied)
	}
	return nil
}

// remoteIP is the address of the peer that sent r.
func remoteIP(r *http.Request) (netip.Addr, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone(""), true
}

// clientAddr is the address the bound-CIDR check uses (checkBoundCIDRs).
func (s *server) clientAddr(r *http.Request) (netip.Addr, bool) {
	if r.Header.Get(HopHeader) != "" {
		if v := r.Header.Get(headerClientAddr); v != "" {
			if ip, ok := s.verifyClientAddr(v, requestToken(r)); ok {
				return ip, true
			}
		}
	}
	return remoteIP(r)
}

// clientAddrMAC is the MAC of a stamped client address.
func clientAddrMAC(key []byte, ip, ts, tokenHash string) string {
	// Every forwarded request is stamped and checked: a pooled keyed HMAC
	// (index.go) rather than hmac.New's two pads per call.
	var buf [160]byte
	b := append(buf[:0], "tokend-client-addr\x00"...)
	b = append(b, ip...)
	b = append(b, 0)
	b = append(b, ts...)
	b = append(b, 0)
	b = append(b, tokenHash...)
	sum := indexMACFor(key).sum(b)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// stampClientAddr records the original client address on a request this
// node is about to forward (see checkBoundCIDRs). Whatever the client sent
// in that header is dropped.
func (s *server) stampClientAddr(c *call) {
	c.r.Header.Del(headerClientAddr)
	if c.r.Header.Get(HopHeader) != "" {
		return
	}
	ip, ok := remoteIP(c.r)
	if !ok {
		return
	}
	_, key := s.node.State().ClusterIdent()
	if len(key) == 0 {
		return
	}
	ts := strconv.FormatInt(s.opts.Now().Unix(), 10)
	c.r.Header.Set(headerClientAddr, ip.String()+" "+ts+" "+clientAddrMAC(key, ip.String(), ts, s.hasher.Hash(requestToken(c.r))))
}

// verifyClientAddr checks a stamped client address.
func (s *server) verifyClientAddr(v, token string) (netip.Addr, bool) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return netip.Addr{}, false
	}
	_, key := s.node.State().ClusterIdent()
	if len(key) == 0 || !hmac.Equal([]byte(f[2]), []byte(clientAddrMAC(key, f[0], f[1], s.hasher.Hash(token)))) {
		return netip.Addr{}, false
	}
	sec, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return netip.Addr{}, false
	}
	if age := s.opts.Now().Sub(time.Unix(sec, 0)); age > clientAddrMaxAge || age < -clientAddrMaxAge {
		return netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(f[0])
	return ip, err == nil
}
