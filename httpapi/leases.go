package httpapi

import (
	"context"
	"net/http"
	"strings"

	"github.com/tokend/tokend/fsm"
)

// Lease-prefix revocation (VAULT-API.md §1.10). Tokens are the only leases
// tokend has: a token's lease ID is its creation path plus a per-token
// suffix, so revoking a prefix revokes every token created under that path
// (e.g. auth/token/create/<role>[/<suffix>]) with its subtree, in one raft
// command that carries only the prefix, however many tokens match.

// leaseRoutes is the route table of sys/leases/revoke-prefix,
// sys/leases/revoke-force and their legacy sys/revoke-* forms. They are
// Bare routes: Vault answers 204 (sync) or 202 (sync=false) with no body.
func (s *server) leaseRoutes() []*Route {
	// The prefix is the rest of the path ({prefix...}), read by
	// pathPrefix; it is not a body field.
	prefixFields := Fields{
		"sync": {Type: Bool, Default: true, Description: "Answer 204 after the revocation (true) or 202 (false); tokend revokes before answering either way"},
	}
	mk := func(path string, fields Fields, h Handler, summary, desc string) *Route {
		op := &Op{Handler: h, Kind: Write, Idempotent: true, Summary: summary}
		return &Route{Path: path, Fields: fields, Ops: update(op), Bare: true, MountType: "system", Description: desc}
	}
	const desc = "Root or sudo only. Revokes every token whose creation path lies under the prefix (segment-wise) " +
		"with all its descendants, atomically, in one raft command. A prefix outside auth/token/ revokes nothing (204)."
	return []*Route{
		mk("/v1/sys/leases/revoke-prefix/{prefix...}", prefixFields, s.revokePrefix, "Revoke every token created under a path prefix", desc),
		mk("/v1/sys/revoke-prefix/{prefix...}", prefixFields, s.revokePrefix, "Revoke every token created under a path prefix (legacy path)", desc),
		mk("/v1/sys/leases/revoke-force/{prefix...}", Fields{}, s.revokeForce, "Like revoke-prefix, ignoring backend errors (always sync)", desc),
		mk("/v1/sys/revoke-force/{prefix...}", Fields{}, s.revokeForce, "Like revoke-prefix, ignoring backend errors (legacy path)", desc),
	}
}

func (s *server) revokePrefix(ctx context.Context, r *Request) (*Response, error) {
	if err := s.revokeLeasePrefix(ctx, r); err != nil {
		return nil, err
	}
	if !r.Data.Bool("sync") {
		return &Response{Status: http.StatusAccepted}, nil
	}
	return &Response{Status: http.StatusNoContent}, nil
}

func (s *server) revokeForce(ctx context.Context, r *Request) (*Response, error) {
	if err := s.revokeLeasePrefix(ctx, r); err != nil {
		return nil, err
	}
	return &Response{Status: http.StatusNoContent}, nil
}

// allowsTrailingSlash reports whether a write to path may end in "/": a
// lease prefix may (the CLI sends "vault lease revoke -prefix x/" as
// sys/leases/revoke-prefix/x/); every other write path may not.
func allowsTrailingSlash(path string) bool {
	return pathPrefix(path) != ""
}

// pathPrefix is the lease prefix of a revoke-prefix/revoke-force path:
// everything after the route's own segments.
func pathPrefix(path string) string {
	for _, route := range []string{"sys/leases/revoke-prefix/", "sys/revoke-prefix/", "sys/leases/revoke-force/", "sys/revoke-force/"} {
		if p, ok := strings.CutPrefix(path, route); ok {
			return p
		}
	}
	return ""
}

// tokenLeasePrefix maps a lease prefix to the token path prefix it covers:
// Vault matches lease IDs segment-wise (a prefix without a trailing "/"
// gets one), so "auth" and "auth/token" cover every token, and anything
// outside auth/token/ covers none (ok=false).
func tokenLeasePrefix(prefix string) (string, bool) {
	p := strings.Trim(prefix, "/")
	switch {
	case p == "auth" || p == "auth/token":
		return "auth/token", true
	case strings.HasPrefix(p, "auth/token/"):
		return p, true
	}
	return "", false
}

// revokeLeasePrefix proposes RevokePrefix for a prefix under auth/token/.
// The proposal is fenced by the cluster like every revocation: once it
// returns, no node validates any of the revoked tokens.
func (s *server) revokeLeasePrefix(ctx context.Context, r *Request) error {
	// Root-protected in Vault (the ACL asks for sudo); checked here too.
	if !s.sudo(r) {
		return newError(http.StatusForbidden, msgACLDenied)
	}
	prefix, ok := tokenLeasePrefix(pathPrefix(r.Path))
	if !ok {
		return nil
	}
	res, err := s.propose(ctx, r, fsm.RevokePrefix{Prefix: prefix, Now: r.Now.UnixNano()})
	if err != nil {
		return err
	}
	if res.Err != nil {
		return res.Err
	}
	s.log.Debug("revoked prefix", "revoked", res.Revoked, "accessor", r.Token.Accessor)
	return nil
}
