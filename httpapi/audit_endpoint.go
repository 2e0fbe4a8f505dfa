package httpapi

import (
	"context"
	"net/http"
)

// auditRoutes is the route table of sys/audit-hash: the way an operator
// finds a request in the audit log by hashing a token (or any value) they
// hold, with the same key every node's audit log uses (audit.DeriveKey of
// the replicated index key).
func (s *server) auditRoutes() []*Route {
	op := &Op{Handler: s.auditHash, Kind: Read, Summary: "Hash a value as the audit log hashes secrets"}
	return []*Route{{
		Path: "/v1/sys/audit-hash/{path...}", MountType: "system",
		Fields: Fields{
			"path":  {Type: String, Description: "Name of the audit device (any name: every node has one audit key)"},
			"input": {Type: String, Required: true, Sensitive: true, Missing: "missing input", Description: "The value to hash"},
		},
		Ops: update(op),
		Description: "Answers data.hash = \"hmac-sha256:<hex>\", HMAC-SHA256 of input under the cluster's audit key, " +
			"as every secret appears in the audit log (-audit-file). Needs update on sys/audit-hash/<path>. " +
			"The answer does not depend on whether this node writes an audit log.",
	}}
}

func (s *server) auditHash(_ context.Context, r *Request) (*Response, error) {
	h, ok := s.auditHasher()
	if !ok {
		return nil, newError(http.StatusServiceUnavailable, "audit key not available: the cluster has no identity yet")
	}
	return &Response{Data: map[string]any{"hash": h.Hash(r.Data.String("input"))}}, nil
}
