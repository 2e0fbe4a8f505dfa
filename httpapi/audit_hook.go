package httpapi

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi/audit"
	"github.com/tokend/tokend/httpapi/batch"
)

// errAuditFailed is the answer to a request that could not be audited
// (fail-closed): a generic 500, the detail goes to the log.
var errAuditFailed = &apiError{Status: http.StatusInternalServerError, Msg: "internal error"}

// auditor holds the audit key of the server, derived from the cluster's
// replicated index key (audit.DeriveKey) and cached per index key.
type auditor struct {
	key       atomic.Pointer[auditKey]
	ephemeral struct {
		once sync.Once
		h    *audit.Hasher
	}
}

type auditKey struct {
	indexKey []byte
	h        *audit.Hasher
}

// auditCall is one request's audit state (call.audit), set once its request
// entry has been handled.
type auditCall struct {
	id    string
	mount string
	auth  *audit.Auth
	req   *audit.Request
	from  string // forwarded_from
	// pathSecrets are the plaintext tokens found in the path, hashed in
	// Request.Path and also wherever an error message echoes the path.
	pathSecrets []string
}

// auditHasher returns the hasher of the cluster's audit key. Before the
// cluster has an identity no token can be valid; secrets are then hashed
// with a throw-away per-process key (ok = false): never written in clear,
// but not matchable with sys/audit-hash.
func (s *server) auditHasher() (h *audit.Hasher, ok bool) {
	_, key := s.node.State().ClusterIdent()
	if len(key) == 0 {
		a := &s.audit
		a.ephemeral.once.Do(func() {
			k := make([]byte, 32)
			_, _ = rand.Read(k)
			a.ephemeral.h = audit.NewHasher(k)
		})
		return a.ephemeral.h, false
	}
	if k := s.audit.key.Load(); k != nil && bytes.Equal(k.indexKey, key) {
		return k.h, true
	}
	k := &auditKey{indexKey: bytes.Clone(key), h: audit.NewHasher(audit.DeriveKey(key))}
	s.audit.key.Store(k)
	return k.h, true
}

// auditRequest writes the request entry of c, before anything of the request
// has run (no forwarding, no use consumed, no handler). It reports whether
// the request may proceed: when the entry cannot be written and the server
// is fail-closed (the default), it has answered 500 and nothing happened.
// It also arms the response entry (auditResponse), written when the status
// line is about to be sent.
func (s *server) auditRequest(c *call, route *Route, pathVals map[string]string) bool {
	if s.opts.Audit == nil {
		return true
	}
	h, _ := s.auditHasher()
	now := s.opts.Now()
	ac := &auditCall{id: newUUID()}
	if route != nil {
		ac.mount = route.MountType
	}
	tokenID := requestToken(c.r)
	ac.auth = s.auditCaller(tokenID, now, h)
	ac.req = &audit.Request{
		ID:        ac.id,
		Operation: auditOperation(c.op),
		MountType: ac.mount,
		Path:      auditPath(c.path, route, pathVals, h, &ac.pathSecrets),
		Data:      s.auditData(c, h),
	}
	if ac.auth != nil {
		ac.req.ClientToken, ac.req.ClientTokenAccessor = ac.auth.ClientToken, ac.auth.Accessor
	}
	if ip, ok := s.clientAddr(c.r); ok {
		ac.req.RemoteAddress = ip.String()
	}
	if c.r.Header.Get(HopHeader) != "" {
		if ip, ok := remoteIP(c.r); ok {
			ac.from = ip.String()
		}
	}
	err := s.opts.Audit.Write(&audit.Entry{
		Time: now.UTC().Format(time.RFC3339Nano), Type: audit.TypeRequest,
		Auth: ac.auth, Request: ac.req, ForwardedFrom: ac.from,
	})
	if err != nil {
		s.log.Error("audit log write failed", "type", audit.TypeRequest, "fail_open", s.opts.AuditFailOpen, "error", err)
		if !s.opts.AuditFailOpen {
			s.writeError(c, errAuditFailed)
			return false
		}
	}
	c.audit = ac
	c.w.beforeHeader = func(status int) bool { return s.auditResponse(c, status) }
	return true
}

// auditResponse writes the response entry of c once its status is decided
// and before anything is sent. It reports whether the answer may be sent;
// false (fail-closed) makes the recorder answer 500 instead.
func (s *server) auditResponse(c *call, status int) bool {
	ac := c.audit
	// Re-read the key: sys/init creates the cluster identity mid-request.
	h, _ := s.auditHasher()
	e := &audit.Entry{
		Time: s.opts.Now().UTC().Format(time.RFC3339Nano), Type: audit.TypeResponse,
		Auth: ac.auth, Request: ac.req, ForwardedFrom: ac.from,
		Response: &audit.Response{Status: status, MountType: ac.mount},
	}
	switch {
	case !c.decided:
		// Nothing here wrote the answer: it is the leader's, copied through.
		e.ForwardedToLeader = true
	case c.err != nil:
		ae := errorResponse(c.err)
		e.Error = ae.Msg
		if e.Error == "" {
			e.Error = http.StatusText(ae.Status)
		}
		for _, sec := range ac.pathSecrets {
			e.Error = strings.ReplaceAll(e.Error, sec, h.Hash(sec))
		}
	case c.resp != nil:
		e.Response.Data = audit.Redact(c.resp.data(), h)
		if c.resp.Raw != nil {
			if m, ok := audit.RedactValue(c.resp.Raw, h).(map[string]any); ok {
				e.Response.Data = m
			}
		}
		if a := c.resp.Auth; a != nil {
			e.Response.Auth = &audit.Auth{
				ClientToken: h.Hash(a.ClientToken), Accessor: h.Hash(a.Accessor),
				Policies: a.Policies, TokenPolicies: a.TokenPolicies,
				Metadata: auditMeta(a.Metadata, h), EntityID: h.Hash(a.EntityID),
				TokenType: a.TokenType, LeaseDuration: a.LeaseDuration,
				Renewable: a.Renewable, Orphan: a.Orphan, NumUses: a.NumUses,
			}
		}
	}
	if err := s.opts.Audit.Write(e); err != nil {
		s.log.Error("audit log write failed", "type", audit.TypeResponse, "status", status,
			"fail_open", s.opts.AuditFailOpen, "error", err)
		return s.opts.AuditFailOpen
	}
	return true
}

// auditCaller describes the presented token: hashed ID, and when it is
// valid its hashed accessor, policies, type and lifetime; nil without one.
func (s *server) auditCaller(tokenID string, now time.Time, h *audit.Hasher) *audit.Auth {
	if tokenID == "" {
		return nil
	}
	a := &audit.Auth{ClientToken: h.Hash(tokenID)}
	var tok fsm.Token
	var ok bool
	if isBatchTokenID(tokenID) {
		tok, ok = s.validBatch(tokenID, now)
	} else {
		tok, ok = s.node.State().Valid(fsm.HashToken(tokenID), now.UnixNano())
	}
	if !ok {
		return a
	}
	a.Accessor = h.Hash(tok.Accessor)
	a.DisplayName = h.Hash(tok.DisplayName)
	a.Policies = tok.Policies
	a.TokenPolicies = tok.Policies
	a.Metadata = auditMeta(tok.Meta, h)
	a.EntityID = h.Hash(tok.EntityID)
	a.TokenType = tok.Type
	if a.TokenType == "" {
		a.TokenType = "service"
	}
	a.TokenTTL = tok.TTL
	a.NumUses = tok.NumUses
	if tok.IssueTime != 0 {
		a.TokenIssueTime = time.Unix(0, tok.IssueTime).UTC().Format(time.RFC3339)
	}
	return a
}

func auditMeta(m map[string]string, h *audit.Hasher) map[string]any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = h.Hash(v)
	}
	return out
}

// auditOperation is Vault's logical operation of a method (VAULT-API.md §0.1).
func auditOperation(op string) string {
	switch op {
	case "GET":
		return "read"
	case "LIST":
		return "list"
	case "POST", "PUT":
		return "update"
	case "DELETE":
		return "delete"
	case "HEAD":
		return "header"
	case "PATCH":
		return "patch"
	}
	return strings.ToLower(op)
}

// auditPath is the logical path with every token in it hashed: the values
// of sensitive path fields (auth/token/lookup/{token}), and any segment
// shaped like a token ID (a client may aim a token at an unknown path).
func auditPath(path string, route *Route, pathVals map[string]string, h *audit.Hasher, secrets *[]string) string {
	if route != nil {
		for k, v := range pathVals {
			if f := route.Fields[k]; v != "" && (f == nil || f.Sensitive) {
				path = strings.ReplaceAll(path, v, h.Hash(v))
				*secrets = append(*secrets, v)
			}
		}
	}
	segs := strings.Split(path, "/")
	changed := false
	for i, seg := range segs {
		if looksLikeToken(seg) {
			*secrets = append(*secrets, seg)
			segs[i], changed = h.Hash(seg), true
		}
	}
	if changed {
		path = strings.Join(segs, "/")
	}
	return path
}

func looksLikeToken(seg string) bool {
	if strings.HasPrefix(seg, audit.Prefix) {
		return false
	}
	for _, p := range []string{"hvs.", batch.Prefix, "s.", "b."} {
		if strings.HasPrefix(seg, p) && len(seg) > len(p)+8 {
			return true
		}
	}
	return false
}

// auditData is the request's data with secrets hashed: the decoded body of
// a write, else the query. An undecodable body is left out, never its text.
func (s *server) auditData(c *call, h *audit.Hasher) map[string]any {
	switch c.r.Method {
	case "POST", "PUT", "PATCH":
		raw, err := decodeBody(c.r.Header.Get("Content-Type"), c.body)
		if err != nil {
			return nil
		}
		return audit.Redact(raw, h)
	}
	q := c.r.URL.Query()
	if len(q) == 0 {
		return nil
	}
	raw := make(map[string]any, len(q))
	for k, v := range q {
		if len(v) == 1 {
			raw[k] = v[0]
		} else {
			raw[k] = v
		}
	}
	return audit.Redact(raw, h)
}

// decide records the answer the adapter is about to write, for the
// response entry.
func (c *call) decide(resp *Response, err error) {
	c.decided = true
	if err != nil {
		c.err = err
	} else {
		c.resp = resp
	}
}

// requestID is the envelope's request_id: the audited request's ID, so the
// audit log and the client agree.
func (c *call) requestID() string {
	if c.audit != nil {
		return c.audit.id
	}
	return newUUID()
}
