package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi/audit"
)

// Defaults of Options.
const (
	DefaultMaxRequestBytes = 64 << 10
	DefaultIndexWait       = 2 * time.Second
	DefaultTokenTTL        = 768 * time.Hour
)

// Options configures the HTTP API.
type Options struct {
	Logger hclog.Logger
	// MaxStale bounds how long a follower may go without hearing from the
	// leader and still answer reads (in addition to Health().Stale).
	MaxStale    time.Duration
	Version     string
	ClusterName string
	// Now is the clock (nil = time.Now).
	Now func() time.Time
	// MaxRequestBytes limits request bodies (0 = DefaultMaxRequestBytes); larger → 413.
	MaxRequestBytes int64
	// IndexWait is how long a read waits for a required X-Vault-Index
	// (0 = DefaultIndexWait) before 412 or forwarding.
	IndexWait time.Duration
	// DefaultTTL and MaxTTL are the token store's system default and max
	// lease TTL (0 = 768h each, as Vault).
	DefaultTTL time.Duration
	MaxTTL     time.Duration
	// Audit, when set, receives a request entry before every request runs
	// and a response entry before its answer is sent (audit_hook.go).
	Audit *audit.Log
	// AuditFailOpen lets requests proceed when an audit entry cannot be
	// written (logged at Error). The default, false, answers 500 instead.
	AuditFailOpen bool
	// RateLimiter, when set, limits requests and failed authentications
	// per client address (ratelimit.go); nil = no limits.
	RateLimiter *RateLimiter
	// Metrics, when set, gets this package's request metrics registered and
	// is served whole on sys/metrics (metrics.go); nil = no instrumentation.
	Metrics *prometheus.Registry
}

// server is the generic adapter plus the handlers of every route table.
type server struct {
	node   Node
	opts   Options
	log    hclog.Logger
	router *router
	acls   aclCache // ACLs by policy version and names (acl.go)
	// tidyRunning is set while this node runs auth/token/tidy (tidy.go).
	tidyRunning atomic.Bool
	audit       auditor // the audit key (audit_hook.go)
	// lastIndex is the X-Vault-Index value last computed (index.go).
	lastIndex atomic.Pointer[indexValue]
	// metrics is nil without Options.Metrics (metrics.go).
	metrics *httpMetrics
	hasher  *fsm.Hasher // node.TokenHasher(), fixed for the node's life
}

// New returns the HTTP handler of the whole API, served from node.
func New(node Node, opts Options) http.Handler {
	return newServer(node, opts)
}

func newServer(node Node, opts Options) *server {
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.Now = leaderTime(node, opts.Now) // expiry by the leader's clock (leaderclock.go)
	if opts.MaxRequestBytes <= 0 {
		opts.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if opts.IndexWait <= 0 {
		opts.IndexWait = DefaultIndexWait
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = DefaultTokenTTL
	}
	if opts.DefaultTTL <= 0 || opts.DefaultTTL > opts.MaxTTL {
		opts.DefaultTTL = opts.MaxTTL
	}
	s := &server{node: node, opts: opts, log: opts.Logger}
	if node != nil {
		s.hasher = node.TokenHasher()
	}
	s.router = newRouter(s.tokenRoutes(), s.sysRoutes(), s.batchRoutes(), s.policyRoutes(), s.capabilitiesRoutes(),
		s.roleRoutes(), s.leaseRoutes(), s.tidyRoutes(), s.auditRoutes(), s.pprofRoutes(), s.metricsRoutes(), s.keyringRoutes(),
		s.fsmHashRoutes(), s.raftPeerRoutes())
	s.metrics = newHTTPMetrics(opts.Metrics, s.router)
	return s
}

// knownMethods are the methods Vault's HTTP layer understands; anything
// else is a 405 with an empty error list.
var knownMethods = map[string]bool{
	"GET": true, "HEAD": true, "PUT": true, "POST": true, "DELETE": true,
	"LIST": true, "PATCH": true, "OPTIONS": true,
}

// recorder captures the status for the request log.
type recorder struct {
	http.ResponseWriter
	status int
	// beforeHeader, when set, runs once just before the status line is
	// sent (the audit response entry); false replaces the answer with a 500.
	beforeHeader func(status int) bool
	dropped      bool // the answer was replaced: swallow the rest
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
		if r.beforeHeader != nil && !r.beforeHeader(code) {
			r.dropped, r.status = true, http.StatusInternalServerError
			h := r.Header()
			h.Del("Content-Length")
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "no-store")
			r.ResponseWriter.WriteHeader(http.StatusInternalServerError)
			_, _ = r.ResponseWriter.Write([]byte(`{"errors":["internal error"]}` + "\n"))
			return
		}
	}
	if r.dropped {
		return
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.WriteHeader(http.StatusOK)
	}
	if r.dropped {
		return len(b), nil
	}
	return r.ResponseWriter.Write(b)
}

// Flush lets forwarded streaming answers through.
func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// call is the state of one request through the adapter. It holds the
// request's recorder, Request, token and field data itself, so that a
// request costs one allocation for all of them.
type call struct {
	w        *recorder
	r        *http.Request
	rec      recorder
	request  Request
	tok      fsm.Token
	fields   FieldData
	route    *Route
	path     string // logical path, no "/v1/"
	op       string
	body     []byte
	raw      map[string]any
	accessor string
	req      *Request
	// forwarded is set once the answer came from the leader.
	forwarded bool
	// Audit (audit_hook.go): the request's audit state (nil = not audited)
	// and the answer the adapter decided on.
	audit   *auditCall
	decided bool
	resp    *Response
	err     error
}

// ServeHTTP is the generic adapter (STYLE.md §4): method → operation, body
// decoding and limits, forwarding, read gates, auth, ACL, num_uses, field
// validation, the handler, and the response/error envelope.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The request log is at Debug and the latency histogram needs
	// metrics: without either nothing here reads the clock.
	debug := s.log.IsDebug()
	var start time.Time
	if debug || s.metrics != nil {
		start = time.Now()
	}
	c := &call{r: r}
	c.rec.ResponseWriter = w
	c.w = &c.rec
	setJSONHeaders(w.Header())

	s.serve(c)
	s.metrics.observe(c, time.Since(start))

	if debug {
		path := "unmatched"
		if c.route != nil {
			// The pattern, never the raw path: a path may carry a token ID.
			path = c.route.Path
		}
		st := c.w.status
		if st == 0 {
			st = http.StatusOK
		}
		s.log.Debug("request", "method", r.Method, "path", path, "status", st,
			"duration", time.Since(start), "accessor", c.accessor, "forwarded", c.forwarded)
	}
}

func (s *server) serve(c *call) {
	r := c.r
	if strings.HasPrefix(r.URL.Path, InternalPathPrefix) {
		// Node-to-node traffic: authenticated by the node with the cluster
		// key, never forwarded, no read gates.
		s.node.ServeInternal(c.w, r)
		return
	}
	// Per-client-address rate limits (ratelimit.go), before anything else.
	if !s.rateLimit(c) {
		return
	}
	defer s.rateLimitDone(c)
	if !knownMethods[r.Method] {
		s.writeError(c, &apiError{Status: http.StatusMethodNotAllowed})
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		s.writeError(c, &apiError{Status: http.StatusNotFound})
		return
	}
	c.path = strings.TrimPrefix(r.URL.Path, "/v1/")

	// Method → operation (VAULT-API.md §0.1). No query, no map.
	var query url.Values
	if r.URL.RawQuery != "" {
		query = r.URL.Query()
	}
	c.op = r.Method
	if r.Method == "GET" {
		if ls := query.Get("list"); ls != "" {
			list, err := strconv.ParseBool(ls)
			if err != nil {
				s.writeError(c, badRequest(""))
				return
			}
			if list {
				c.op = "LIST"
				query.Del("list")
			}
		}
	}
	consistent := false
	if query.Has("consistent") {
		consistent = query.Get("consistent") == "" || parseBoolLoose(query.Get("consistent"))
		query.Del("consistent")
	}
	if parseBoolLoose(headerValue(r.Header, headerConsistent)) {
		consistent = true
	}

	// Read the body once, bounded, so that it can be re-sent to the leader.
	if r.Body != nil && r.Body != http.NoBody {
		body, err := s.readBody(c)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				s.writeError(c, err)
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				// ReadTimeout: the body came too slowly (limits.go).
				s.writeError(c, newError(http.StatusRequestTimeout, "request body not received in time"))
			} else {
				s.writeError(c, badRequest("failed to read request body"))
			}
			return
		}
		c.body = body
	}

	route, pathVals := s.router.find(r.URL.Path)
	c.route = route
	if !s.auditRequest(c, route, pathVals) {
		return
	}
	var op *Op
	if route != nil {
		op = route.Ops[c.op]
	}

	// Unauthenticated routes (sys/health, sys/init, …) have their own
	// rules: no read gates, so that a stale node still reports its health.
	if route != nil && route.Unauthenticated {
		if op == nil {
			if route.Bare {
				c.w.Header().Set("Allow", route.allow())
				s.writeError(c, &apiError{Status: http.StatusMethodNotAllowed})
			} else {
				s.methodNotAllowed(c)
			}
			return
		}
		if s.maybeForward(c, op.Kind == Write || r.Header.Get(headerForward) == "active-node") {
			return
		}
		if !s.decode(c, query) || !s.writePathOK(c) {
			return
		}
		s.run(c, op, pathVals, nil, "", false)
		return
	}

	kind := Read
	if op != nil {
		kind = op.Kind
	}
	local := route != nil && route.Local
	// A create that resolves to a batch token writes nothing (the token is
	// sealed with the replicated keyring; the parent check is a read): it is
	// served on this node like a read, read gates included, never forwarded,
	// once the node holds a primary batch key (batchtoken.go).
	if kind == Write && s.localBatchCreate(c, route, pathVals) {
		kind = Read
	}
	mustLead := kind == Write || consistent || headerValue(r.Header, headerForward) == "active-node"
	if local {
		mustLead, consistent = false, false
	}
	if s.maybeForward(c, mustLead) {
		return
	}
	if consistent {
		if err := s.node.VerifyLeader(r.Context()); err != nil {
			s.writeError(c, unavailable("cannot verify leadership for a consistent read: "+err.Error()))
			return
		}
	}
	if kind == Read && (op == nil || !op.Local) && !s.readGate(c, local) {
		return
	}
	if kind == Write && !s.leaderReady(c, s.node.Health()) {
		return
	}
	if !s.decode(c, query) {
		return
	}

	// Authenticate.
	clientToken := requestToken(r)
	if clientToken == "" {
		s.writeError(c, newError(http.StatusForbidden, msgPermissionDenied))
		return
	}
	now := s.opts.Now()
	var ok bool
	tok := &c.tok
	if isBatchTokenID(clientToken) {
		// Batch tokens carry their own entry (batchtoken.go): opened with the
		// local keyring, never stored, never limited-use, never forwarded.
		*tok, ok = s.validBatch(clientToken, now)
	} else {
		*tok, ok = s.node.State().Valid(s.hasher.Hash(clientToken), now.UnixNano())
	}
	if !ok {
		s.writeError(c, newError(http.StatusForbidden, msgInvalidToken))
		return
	}
	// Bound CIDRs against the original client address (role.go), before a
	// use is consumed.
	if err := s.checkBoundCIDRs(c, tok); err != nil {
		s.writeError(c, err)
		return
	}
	c.accessor = tok.Accessor
	limited := tok.NumUses > 0
	if limited && local {
		s.writeError(c, badRequest("limited-use tokens cannot be used on node-local endpoints"))
		return
	}
	if limited {
		// Consuming a use is a write: it must happen on the leader, before
		// the handler runs (VAULT-API.md §2.7).
		if s.maybeForward(c, true) {
			return
		}
		// Per-token limit on the node that serves the request
		// (ratelimit_token.go), before a use is consumed.
		if !s.tokenRateLimit(c, tok, clientToken) {
			return
		}
		res, idx, err := s.node.Propose(r.Context(), fsm.UseToken{Hash: tok.Hash, Now: now.UnixNano()})
		if err != nil {
			s.writeError(c, err)
			return
		}
		if res.Err != nil || res.Token == nil {
			s.writeError(c, newError(http.StatusForbidden, msgInvalidToken))
			return
		}
		*tok = *res.Token
		c.request.index = idx
		c.req = &c.request
	} else if !s.tokenRateLimit(c, tok, clientToken) {
		return
	}

	// ACL before routing: a non-root token learns nothing about paths. As in
	// Vault, a denied request still consumes one of a limited token's uses.
	if !s.allowed(c, tok) {
		s.writeError(c, newError(http.StatusForbidden, msgACLDenied))
		return
	}
	if !s.writePathOK(c) {
		return
	}
	if route == nil {
		if strings.HasPrefix(c.path, "auth/token/") || strings.HasPrefix(c.path, "sys/") {
			s.writeError(c, newError(http.StatusNotFound, msgUnsupportedPath))
		} else {
			s.writeError(c, newError(http.StatusNotFound, `no handler for route "`+strings.TrimSuffix(c.path, "/")+`". route entry not found.`))
		}
		return
	}
	if op == nil {
		s.methodNotAllowed(c)
		return
	}
	s.run(c, op, pathVals, tok, clientToken, limited)
}

// writePathOK refuses a write to a path ending in '/', as Vault does. It
// runs after authentication, so that a caller without a valid token gets
// the same 403 on every path (RELIABILITY.md S2).
func (s *server) writePathOK(c *call) bool {
	if (c.op == "POST" || c.op == "PUT") && strings.HasSuffix(c.path, "/") && !allowsTrailingSlash(c.path) {
		s.writeError(c, badRequest(msgWriteEndingSlash))
		return false
	}
	return true
}

func (s *server) methodNotAllowed(c *call) {
	c.w.Header().Set("Allow", c.route.allow())
	s.writeError(c, newError(http.StatusMethodNotAllowed, msgUnsupportedOp))
}

// run validates the fields, calls the handler and writes its answer.
func (s *server) run(c *call, op *Op, pathVals map[string]string, tok *fsm.Token, clientToken string, limited bool) {
	for k, v := range pathVals {
		if c.raw == nil {
			c.raw = map[string]any{}
		}
		c.raw[k] = v
	}
	d := &c.fields
	if err := d.init(c.raw, c.route.Fields); err != nil {
		s.writeError(c, err)
		return
	}
	req := &c.request

	req.HTTP, req.Op, req.Path, req.Data, req.w = c.r, c.op, strings.TrimSuffix(c.path, "/"), d, c.rec.ResponseWriter
	req.Token, req.ClientToken, req.LimitedUse, req.Now = tok, clientToken, limited, s.opts.Now()
	c.req = req

	resp, err := op.Handler(c.r.Context(), req)
	if err != nil {
		s.writeError(c, err)
		return
	}
	s.writeResponse(c, resp)
}

// maybeForward sends the request to the leader when mustLead and this node
// is not the leader. It reports whether the request has been answered.
func (s *server) maybeForward(c *call, mustLead bool) bool {
	if !mustLead {
		return false
	}
	h := s.node.Health()
	if h.IsLeader && !h.SteppingDown {
		return false
	}
	if c.r.Header.Get(HopHeader) != "" && !h.SteppingDown {
		// Already forwarded once: never a second hop. (A leader stepping
		// down lets ForwardToLeader wait for the hand-over: it serves the
		// request itself if it still leads then, and refuses it otherwise.)
		s.writeError(c, status.ErrHopRefused)
		return true
	}
	c.r.Body = io.NopCloser(bytes.NewReader(c.body))
	c.r.ContentLength = int64(len(c.body))
	// The leader's answer brings its own headers.
	hdr := c.w.Header()
	hdr.Del("Cache-Control")
	hdr.Del("Content-Type")
	// The leader's bound-CIDR check needs the client's address (role.go).
	s.stampClientAddr(c)
	fr := c.r
	if s.retrySafe(c) {
		fr = c.r.WithContext(status.WithRetrySafe(c.r.Context()))
	}
	forwarded, err := s.node.ForwardToLeader(c.w, fr)
	if !forwarded {
		setJSONHeaders(hdr)
	}
	if err != nil {
		s.writeError(c, unavailable(err.Error()))
		return true
	}
	c.forwarded = forwarded
	return forwarded
}

// retrySafe reports whether a forwarded request may reach the leader twice
// (status.WithRetrySafe): a read (a ?consistent or X-Vault-Forward one) or
// an Idempotent write, authenticated by a token without a use limit. A
// limited-use token loses one use each time the leader handles the
// request; a token this node does not know may be one of those.
func (s *server) retrySafe(c *call) bool {
	if c.route == nil || c.route.Unauthenticated {
		return false
	}
	op := c.route.Ops[c.op]
	if op == nil || (op.Kind == Write && !op.Idempotent) {
		return false
	}
	id := requestToken(c.r)
	if id == "" {
		return false
	}
	t, ok := s.validToken(id, s.opts.Now())
	return ok && t.NumUses == 0
}

// leaderReady holds a request on a stale leader (Health().Stale) until
// VerifyLeader confirms it: a new leader whose post-election barrier has
// not applied (its state may miss entries committed by earlier leaders,
// revocations included), or one that no quorum of voters answered within
// the leader read bound (a paused leader may have been deposed meanwhile).
// Neither a local read nor the authentication of a write may use such a
// state. VerifyLeader returns once the barrier has applied and a quorum
// answered a heartbeat sent after the call; the wait is bounded by
// IndexWait, then 503. It reports whether the request may proceed.
func (s *server) leaderReady(c *call, h status.Health) bool {
	if !h.IsLeader || !h.Stale {
		return true
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), s.opts.IndexWait)
	err := s.node.VerifyLeader(ctx)
	cancel()
	if err != nil {
		s.writeError(c, unavailable("leader is not ready to serve requests yet: cannot confirm its leadership: "+err.Error()))
		return false
	}
	return true
}

// readGate enforces bounded staleness and read-your-writes before a local
// read (DESIGN.md "Reads"). It reports whether the read may proceed. A
// local route's request (Route.Local) is refused instead of forwarded.
func (s *server) readGate(c *call, local bool) bool {
	h := s.node.Health()
	if h.IsLeader && !s.leaderReady(c, h) {
		return false
	}
	if !h.IsLeader && (h.Stale || (s.opts.MaxStale > 0 && h.LastContact > s.opts.MaxStale)) {
		// No valid read lease: the local state may miss an acknowledged
		// revocation. Ask the leader instead (one hop, as a write), or
		// refuse when there is none.
		if local || !h.KnownLeader || c.r.Header.Get(HopHeader) != "" {
			s.writeError(c, unavailable("node is stale: no recent contact with the leader"))
			return false
		}
		if s.maybeForward(c, true) {
			return false
		}
		// This node became the leader meanwhile: serve locally.
	}
	values := c.r.Header[headerIndex] // canonical: Header.Values without the canonicalisation
	if len(values) == 0 {
		return true
	}
	id, key := s.node.State().ClusterIdent()
	if id == "" {
		return true
	}
	need, err := requiredIndex(values, id, key)
	if err != nil {
		s.writeError(c, badRequest(err.Error()))
		return false
	}
	if s.node.AppliedIndex() >= need {
		return true
	}
	ctx, cancel := context.WithTimeout(c.r.Context(), s.opts.IndexWait)
	err = s.node.AwaitIndex(ctx, need)
	cancel()
	if err == nil && s.node.AppliedIndex() >= need {
		return true
	}
	if !local && c.r.Header.Get(headerInconsistent) == "forward-active-node" {
		if s.maybeForward(c, true) {
			return false
		}
		// We became the leader meanwhile; the index wait failed, though.
	}
	s.writeError(c, newError(http.StatusPreconditionFailed, msgMissingState))
	return false
}

// decode turns the query (GET, LIST, DELETE, HEAD) or the body (POST, PUT)
// into raw field values. It reports whether decoding succeeded.
func (s *server) decode(c *call, query url.Values) bool {
	switch c.r.Method {
	case "POST", "PUT", "PATCH":
		raw, err := decodeBody(c.r.Header.Get("Content-Type"), c.body)
		if err != nil {
			s.writeError(c, err)
			return false
		}
		c.raw = raw
	default:
		if len(query) > 0 {
			c.raw = make(map[string]any, len(query))
			for k, v := range query {
				if !cleanText(k) || !cleanText(v...) {
					s.writeError(c, badRequest("query parameters must be UTF-8 without NUL characters"))
					return false
				}
				if len(v) == 1 {
					c.raw[k] = v[0]
				} else {
					c.raw[k] = v
				}
			}
		}
	}
	return true
}

// decodeBody parses a JSON object, or a form when the content type says so
// and the body does not look like JSON. Empty body or null = no data.
func decodeBody(contentType string, body []byte) (map[string]any, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, nil
	}
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/x-www-form-urlencoded" && trimmed[0] != '{' {
		vals, err := url.ParseQuery(string(trimmed))
		if err != nil {
			return nil, badRequest("failed to parse form data: " + err.Error())
		}
		raw := make(map[string]any, len(vals))
		for k, v := range vals {
			if !cleanText(k) || !cleanText(v...) {
				return nil, badRequest("form data must be UTF-8 without NUL characters")
			}
			if len(v) == 1 {
				raw[k] = v[0]
			} else {
				raw[k] = v
			}
		}
		return raw, nil
	}
	// Strict decoding (limits.go): depth, duplicate keys, UTF-8, NUL.
	v, err := decodeJSONStrict(trimmed)
	if err != nil {
		return nil, badRequest(err.Error())
	}
	switch x := v.(type) {
	case nil:
		return nil, nil
	case map[string]any:
		return x, nil
	}
	return nil, badRequest("request body must be a JSON object")
}

// headerValue is h.Get(key) for a key already in canonical form (every
// constant the read path asks for; TestHeaderKeysCanonical checks them):
// the same answer without canonicalising the key on every request.
func headerValue(h http.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func parseBoolLoose(s string) bool {
	if s == "" {
		return false // without ParseBool's error allocation
	}
	b, err := strconv.ParseBool(s)
	return err == nil && b
}

// requestToken reads X-Vault-Token, else Authorization: Bearer.
func requestToken(r *http.Request) string {
	if t := headerValue(r.Header, "X-Vault-Token"); t != "" {
		return t
	}
	if a := headerValue(r.Header, "Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// setIndexHeader stamps X-Vault-Index: the request's write index, else the
// node's applied index. Nothing before the cluster identity exists.
func (s *server) setIndexHeader(c *call) {
	id, key := s.node.State().ClusterIdent()
	if id == "" || len(key) == 0 {
		return
	}
	idx := uint64(0)
	if c.req != nil {
		idx = c.req.index
	}
	if idx == 0 {
		idx = s.node.AppliedIndex()
	}
	c.w.Header()[headerIndex] = s.indexHeader(id, key, idx)
}

// writeResponse renders a handler's answer: 204 for nil, the bare body of a
// Bare route, else Vault's envelope.
func (s *server) writeResponse(c *call, resp *Response) {
	c.decide(resp, nil)
	s.setIndexHeader(c)
	if c.route.Bare {
		st := http.StatusOK
		if resp != nil && resp.Status != 0 {
			st = resp.Status
		}
		if resp != nil && resp.Body != nil && c.r.Method != "HEAD" {
			h := c.w.Header()
			for k, v := range resp.Headers {
				h[k] = v
			}
			h.Set("Content-Type", resp.ContentType)
			h.Set("X-Content-Type-Options", "nosniff")
			c.w.WriteHeader(st)
			_, _ = c.w.Write(resp.Body)
			return
		}
		if resp == nil || resp.Raw == nil || c.r.Method == "HEAD" {
			c.w.WriteHeader(st)
			return
		}
		writeJSON(c.w, st, resp.Raw)
		return
	}
	if resp != nil && c.req != nil && c.req.Data != nil && len(c.req.Data.Unknown()) > 0 {
		resp.Warnings = append(resp.Warnings, msgUnrecognizedParam+"["+strings.Join(c.req.Data.Unknown(), " ")+"]")
	}
	if resp == nil || (resp.Data == nil && resp.lookup == nil && resp.Auth == nil && len(resp.Warnings) == 0) {
		c.w.WriteHeader(http.StatusNoContent)
		return
	}
	if c.op == "LIST" && resp.Auth == nil && len(resp.Warnings) == 0 {
		if keys, _ := resp.Data["keys"].([]string); len(keys) == 0 && len(resp.Data) <= 1 {
			s.writeError(c, &apiError{Status: http.StatusNotFound})
			return
		}
	}
	mount := c.route.MountType
	st := http.StatusOK
	if resp.Status != 0 {
		st = resp.Status
	}
	if c.route.Inject {
		writeJSON(c.w, st, injected{&envelope{
			RequestID: c.requestID(),
			Data:      resp.data(),
			Warnings:  resp.Warnings,
			Auth:      resp.Auth,
			MountType: mount,
		}})
		return
	}
	env := envelope{
		Data:      resp.Data,
		Warnings:  resp.Warnings,
		Auth:      resp.Auth,
		MountType: mount,
	}
	if c.audit != nil {
		// The audited request's ID; otherwise appendEnvelope writes a fresh
		// one straight into the answer.
		env.RequestID = c.audit.id
	}
	writeEnvelope(c.w, st, &env, resp.lookup)
}

// writeError renders {"errors":[…]} with the status from errorResponse.
func (s *server) writeError(c *call, err error) {
	c.decide(nil, err)
	ae := errorResponse(err)
	if ae.Status >= 500 && ae.Status != http.StatusServiceUnavailable {
		s.log.Error("request failed", "method", c.r.Method, "status", ae.Status, "error", err)
	}
	if ae.RetryAfter {
		c.w.Header().Set("Retry-After", "1")
	}
	if ae.HopRefused {
		c.w.Header().Set(HopRefusedHeader, "1")
	}
	s.setIndexHeader(c)
	errs := []string{}
	if ae.Msg != "" {
		errs = append(errs, ae.Msg)
	}
	if c.r.Method == "HEAD" {
		c.w.WriteHeader(ae.Status)
		return
	}
	writeJSON(c.w, ae.Status, map[string][]string{"errors": errs})
}

// Header values every answer of the adapter carries, shared by all
// answers: net/http only reads header values, and Header.Set/Add replace
// or copy a slice rather than write into it.
var (
	noStoreValue = []string{"no-store"}
	jsonValue    = []string{"application/json"}
)

// setJSONHeaders sets Cache-Control: no-store and Content-Type:
// application/json (what h.Set would do, without allocating).
func setJSONHeaders(h http.Header) {
	h["Cache-Control"] = noStoreValue
	h["Content-Type"] = jsonValue
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"errors":["internal error"]}` + "\n"))
		return
	}
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// newUUID returns a random RFC 4122 version 4 UUID.
func newUUID() string {
	var out [36]byte
	return string(appendUUID(out[:0]))
}

// uuidRand hands out crypto/rand bytes read in blocks: one getrandom call
// per uuidBlock/16 request IDs instead of one per answer. A pooled block is
// used by one goroutine at a time, and every byte is handed out once.
var uuidRand = sync.Pool{New: func() any { return new(randBlock) }}

const uuidBlock = 512

type randBlock struct {
	buf [uuidBlock]byte
	off int // next unused byte; uuidBlock = empty (the zero value is empty)
}

func (rb *randBlock) read16(dst *[16]byte) {
	if rb.off == 0 || rb.off+16 > uuidBlock {
		_, _ = rand.Read(rb.buf[:])
		rb.off = 0
	}
	copy(dst[:], rb.buf[rb.off:rb.off+16])
	clear(rb.buf[rb.off : rb.off+16])
	rb.off += 16
}

// appendUUID appends a random RFC 4122 version 4 UUID to b.
func appendUUID(b []byte) []byte {
	var r [16]byte
	rb := uuidRand.Get().(*randBlock)
	rb.read16(&r)
	uuidRand.Put(rb)
	r[6] = (r[6] & 0x0f) | 0x40
	r[8] = (r[8] & 0x3f) | 0x80
	var out [36]byte
	hex.Encode(out[0:8], r[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], r[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], r[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], r[8:10])
	out[23] = '-'
	hex.Encode(out[24:], r[10:])
	return append(b, out[:]...)
}
