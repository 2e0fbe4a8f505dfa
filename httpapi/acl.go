package httpapi

import "github.com/tokend/tokend/fsm"

// defaultPolicy is what Vault's built-in "default" policy grants on the
// paths tokend serves (VAULT-API.md §2.5): capability by logical path.
var defaultPolicy = map[string]map[string]bool{
	"auth/token/lookup-self": {"read": true},
	"auth/token/renew-self":  {"update": true},
	"auth/token/revoke-self": {"update": true},
}

// capability maps an operation key to the ACL capability it needs.
func capability(op string) string {
	switch op {
	case "GET", "HEAD":
		return "read"
	case "LIST":
		return "list"
	case "POST", "PUT":
		return "update"
	case "DELETE":
		return "delete"
	case "PATCH":
		return "patch"
	}
	return "deny"
}

// allowed is the authorization check of the core (until ACL policy
// documents land): the root policy may do everything; any other token only
// what the default policy grants. Secure by default: anything not listed is
// denied, including unknown paths.
func allowed(tok *fsm.Token, path, op string) bool {
	if tok.IsRoot() {
		return true
	}
	if !hasPolicy(tok.Policies, "default") {
		return false
	}
	caps, ok := defaultPolicy[path]
	return ok && caps[capability(op)]
}

func hasPolicy(policies []string, name string) bool {
	for _, p := range policies {
		if p == name {
			return true
		}
	}
	return false
}

// sudo reports whether the caller of r holds root privileges on r's path:
// the root policy, or (once ACL policy documents land) the sudo capability.
// Handlers use it for Vault's handler-level sudo checks (custom token id,
// no_parent, period, revoke-orphan).
func (s *server) sudo(r *Request) bool {
	return r.Token != nil && r.Token.IsRoot()
}
