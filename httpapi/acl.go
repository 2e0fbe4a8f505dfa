package httpapi

import (
	"slices"
	"strings"
	"sync"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi/acl"
)

// ACL enforcement (VAULT-API.md §0.5, §4): every authenticated request is
// decided by the merged ACL of its token's policies before routing, so a
// non-root token learns nothing about paths it may not use.
//
// Policies are replicated state: the ACL of a set of policy names is built
// from the node's own fsm and cached, keyed by the fsm's PolicyVersion (read
// before the texts, so a cached ACL is never newer-keyed than its texts)
// and the policy names. A policy change bumps the version and empties the
// cache on the next request.
//
// Clusters initialised before policies existed have no stored "default"
// policy; a missing "default" is evaluated (and read, listed) as
// acl.DefaultPolicyText, so those tokens keep Vault's stock self-service
// rights until an operator writes a "default" policy.

// aclCacheSize bounds the number of cached ACLs (distinct policy-name sets);
// when it is reached the cache starts over.
const aclCacheSize = 1024

// rootACL is the ACL of any token holding the root policy.
var rootACL = acl.New(acl.Root())

// stockDefault is the parsed stock default policy, used when no "default"
// is stored.
var stockDefault = sync.OnceValue(func() *acl.Policy {
	p, err := acl.Parse(acl.DefaultPolicyName, acl.DefaultPolicyText)
	if err != nil {
		panic("acl: stock default policy does not parse: " + err.Error())
	}
	return p
})

// aclCache holds the ACLs and parsed policies of one policy version. The
// zero value is ready to use. mu guards every field.
type aclCache struct {
	mu       sync.RWMutex
	version  uint64
	valid    bool                   // version is set
	acls     map[string]*acl.ACL    // by policy-name key (policyKey)
	policies map[string]*acl.Policy // parsed stored policies by name (nil value: missing)
}

// policyKey joins sorted policy names with NUL into buf (no allocation for
// the common short sets when the caller keeps buf on its stack).
func policyKey(buf []byte, names []string) []byte {
	for i, n := range names {
		if i > 0 {
			buf = append(buf, 0)
		}
		buf = append(buf, n...)
	}
	return buf
}

// sortedNames returns names sorted (names itself when already sorted, as
// stored tokens' policies are).
func sortedNames(names []string) []string {
	for i := 1; i < len(names); i++ {
		if names[i-1] > names[i] {
			out := slices.Clone(names)
			slices.Sort(out)
			return out
		}
	}
	return names
}

// aclFor returns the ACL of a set of policy names as stored on a token.
func (s *server) aclFor(policies []string) *acl.ACL {
	for _, p := range policies {
		if p == acl.RootPolicyName {
			return rootACL
		}
	}
	st := s.node.State()
	// Version first: texts read after it are at least as new, so the entry
	// stored under this version is never stale for it.
	ver := st.PolicyVersion()
	names := sortedNames(policies)
	var arr [256]byte
	key := policyKey(arr[:0], names)

	c := &s.acls
	c.mu.RLock()
	if c.valid && c.version == ver {
		if a, ok := c.acls[string(key)]; ok {
			c.mu.RUnlock()
			return a
		}
	}
	c.mu.RUnlock()

	pols := make([]*acl.Policy, 0, len(names))
	for _, n := range names {
		if p := s.policyAt(st, ver, n); p != nil {
			pols = append(pols, p)
		}
	}
	a := acl.New(pols...)

	c.mu.Lock()
	c.reset(ver)
	if c.valid && c.version == ver {
		if len(c.acls) >= aclCacheSize {
			c.acls = make(map[string]*acl.ACL)
		}
		c.acls[string(key)] = a
	}
	c.mu.Unlock()
	return a
}

// reset moves the cache to version ver if ver is newer (versions never
// decrease); an older ver leaves the cache alone. mu must be held.
func (c *aclCache) reset(ver uint64) {
	if c.valid && ver <= c.version {
		return
	}
	c.valid, c.version = true, ver
	c.acls = make(map[string]*acl.ACL)
	c.policies = make(map[string]*acl.Policy)
}

// policyAt returns the parsed policy name as of version ver (nil when it
// does not exist or does not parse). A missing "default" is the stock one.
func (s *server) policyAt(st fsm.Reader, ver uint64, name string) *acl.Policy {
	c := &s.acls
	c.mu.RLock()
	if c.valid && c.version == ver {
		if p, ok := c.policies[name]; ok {
			c.mu.RUnlock()
			return p
		}
	}
	c.mu.RUnlock()

	var p *acl.Policy
	text, ok := st.Policy(name)
	switch {
	case ok:
		var err error
		if p, err = acl.Parse(name, text); err != nil {
			// Texts are validated before they are proposed; a stored text
			// that no longer parses grants nothing.
			s.log.Warn("stored policy does not parse; it grants nothing", "policy", name, "error", err)
			p = nil
		}
	case name == acl.DefaultPolicyName:
		p = stockDefault()
	}
	c.mu.Lock()
	c.reset(ver)
	if c.valid && c.version == ver {
		c.policies[name] = p
	}
	c.mu.Unlock()
	return p
}

// policyExists reports whether a policy of that (normalized) name exists:
// stored, or one of the built-in root and default.
func (s *server) policyExists(name string) bool {
	if name == acl.RootPolicyName || name == acl.DefaultPolicyName {
		return true
	}
	_, ok := s.node.State().Policy(name)
	return ok
}

// operation maps a request's method key to the ACL operation. POST and PUT
// on a token role that does not exist yet are a create (Vault's existence
// check, VAULT-API.md §0.1); every other write is an update.
func (s *server) operation(c *call) acl.Operation {
	switch c.op {
	case "GET", "HEAD":
		return acl.OpRead
	case "LIST":
		return acl.OpList
	case "POST", "PUT":
		if name, ok := strings.CutPrefix(c.path, "auth/token/roles/"); ok && name != "" && !strings.Contains(name, "/") {
			st := s.node.State()
			if _, exists := st.Role(name); !exists {
				if _, exists := st.Role(strings.ToLower(name)); !exists {
					return acl.OpCreate
				}
			}
		}
		return acl.OpUpdate
	case "DELETE":
		return acl.OpDelete
	case "PATCH":
		return acl.OpPatch
	}
	return ""
}

// rootPaths are the root-protected ("sudo") paths of the backends tokend
// serves (Vault's PathsSpecial.Root of the token store and the system
// backend): the matching rule must grant sudo as well. An entry ending in
// "*" is a prefix.
var rootPaths = []string{
	"auth/token/accessors*",
	"auth/token/revoke-orphan",
	"auth/token/revoke-orphan/*",
	"sys/leases/revoke-prefix/*",
	"sys/leases/revoke-force/*",
	"sys/revoke-prefix/*",
	"sys/revoke-force/*",
	"sys/leases/lookup/*",
	"sys/leases",
	"sys/rotate",
	"sys/keyring/*",
	"sys/rotate/*",
	"sys/auth/*",
	"sys/audit",
	"sys/audit/*",
	"sys/raw",
	"sys/raw/*",
	"sys/remount",
	"sys/config/cors",
	"sys/config/auditing/*",
	"sys/config/ui/headers/*",
	"sys/plugins/catalog/*",
	"sys/storage/raft/snapshot-auto/config/*",
	"sys/internal/inspect/*",
	"sys/pprof",
	"sys/pprof/*",
	"sys/storage/fsm-hash",
}

// rootProtected reports whether path (as ACLs see it) is root-protected.
func rootProtected(path string) bool {
	for _, p := range rootPaths {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(path, prefix) {
				return true
			}
		} else if path == p {
			return true
		}
	}
	return false
}

// aclPath is the path an ACL decides on: the logical path, with the
// trailing "/" Vault appends to list requests.
func aclPath(c *call) string {
	if c.op == "LIST" && !strings.HasSuffix(c.path, "/") {
		return c.path + "/"
	}
	return c.path
}

// allowed decides the request c of token tok by its ACL, with the request's
// parameters (body or query) for allowed/denied/required_parameters.
func (s *server) allowed(c *call, tok *fsm.Token) bool {
	a := s.aclFor(tok.Policies)
	if a.IsRoot() {
		return true
	}
	path := aclPath(c)
	res := a.Allowed(acl.Request{
		Path:          path,
		Operation:     s.operation(c),
		Params:        c.raw,
		RootProtected: rootProtected(path),
	})
	if !res.Allowed && s.log.IsTrace() {
		// Not the reason: it names the path, which may carry a token ID.
		s.log.Trace("permission denied", "method", c.op, "accessor", tok.Accessor)
	}
	return res.Allowed
}

// sudo reports whether the caller of r holds root privileges on r's path:
// the root policy, or a rule granting the sudo capability on that exact
// path. Handlers use it for Vault's handler-level sudo checks (custom token
// id, no_parent, period, non-subset policies, revoke-orphan).
func (s *server) sudo(r *Request) bool {
	if r.Token == nil {
		return false
	}
	return s.aclFor(r.Token.Policies).Sudo(r.Path)
}
