package httpapi

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/tokend/tokend/fsm"
)

// Kind says whether an operation reads the local state or replicates a write.
type Kind int

const (
	// Read operations are answered from the node's own state after the read
	// gates (staleness, X-Vault-Index, ?consistent) have passed.
	Read Kind = iota
	// Write operations run on the leader; a follower forwards them.
	Write
)

// Handler is the business logic of one operation: it gets typed, validated
// input and returns a response (nil = 204) or an error; it never touches
// the http.ResponseWriter.
type Handler func(ctx context.Context, r *Request) (*Response, error)

// Op is one operation of a route.
type Op struct {
	Handler Handler
	Kind    Kind
	Summary string
	// Local reads report on the receiving node itself (sys/metrics): no
	// read gates (staleness, X-Vault-Index), so a stale node still answers.
	Local bool
	// Idempotent writes leave the same state and give an answer of the
	// same kind when they run twice (a revoke of a revoked token is still
	// 204, a renew renews again), so a forward that a leader change cut
	// off may be sent again to the new leader (retrySafe). Creates are
	// not: a server-generated ID would leave a second token, and a
	// repeated client-chosen ID answers 400 for a create that succeeded.
	// Neither are revoke-self (the repeat fails authentication) and
	// revoke-orphan (the repeat answers 400).
	Idempotent bool
}

// Ops maps an HTTP method ("GET", "POST", "PUT", "DELETE", "HEAD" and
// Vault's "LIST", which GET ?list=true also selects) to its operation.
type Ops map[string]*Op

// Route declares one path of a dialect.
type Route struct {
	// Path uses net/http.ServeMux pattern syntax: "/v1/auth/token/lookup/{token}".
	// Path values become fields of the same name and win over body/query values.
	Path   string
	Fields Fields
	Ops    Ops
	// Unauthenticated routes skip token auth, ACLs and num_uses.
	Unauthenticated bool
	// Bare routes answer with the handler's Raw body (no Vault envelope),
	// or its Body as is.
	Bare bool
	// Local routes are about this process (sys/pprof): answered by the node
	// that received the request, never forwarded — not for X-Vault-Forward,
	// ?consistent, a stale read lease or a limited-use token (refused, as
	// its use could only be consumed on the leader). A node without a read
	// lease answers 503: it cannot tell whether the caller's token was
	// revoked.
	Local bool
	// Inject copies every key of data to the top level of the envelope too
	// (Vault's injector sys routes: sys/capabilities*, sys/policy).
	Inject bool
	// MountType is the envelope's mount_type ("token", "system").
	MountType string
	// Description is a longer text for the generated docs.
	Description string

	segments []string
}

// update declares the same operation for POST and PUT (Vault's "update").
func update(op *Op) Ops {
	return Ops{"POST": op, "PUT": op}
}

// Request is what a Handler receives.
type Request struct {
	HTTP *http.Request
	// Op is the method key of the operation ("GET", "LIST", "POST", …).
	Op string
	// Path is the logical path without "/v1/" ("auth/token/create").
	Path string
	Data *FieldData
	// Token is the caller's token after this request's use was consumed; nil
	// on unauthenticated routes.
	Token *fsm.Token
	// ClientToken is the token ID exactly as the caller presented it.
	ClientToken string
	// LimitedUse is true when the caller's token had num_uses > 0.
	LimitedUse bool
	// Now is the request's timestamp (stamped once).
	Now time.Time

	index uint64 // highest log index this request proposed
	// w is the connection's writer, for extendWrite only.
	w http.ResponseWriter
}

// extendWrite pushes the connection's write deadline d (plus a margin)
// into the future, for handlers that take long on purpose (a CPU profile
// of d) so that the server's WriteTimeout does not cut their answer off.
// Writers that cannot (tests' recorders) are left alone.
func (r *Request) extendWrite(d time.Duration) {
	if r.w != nil {
		_ = http.NewResponseController(r.w).SetWriteDeadline(time.Now().Add(d + 30*time.Second))
	}
}

// Response is what a Handler returns. A nil *Response is a 204.
type Response struct {
	Data     map[string]any
	Auth     *Auth
	Warnings []string
	// Raw is the whole body of a Bare route.
	Raw any
	// Status overrides 200 (Bare routes, e.g. sys/health).
	Status int
	// Body, on a Bare route, is sent as is with ContentType (and Headers):
	// non-JSON answers such as profiles.
	Body        []byte
	ContentType string
	Headers     http.Header

	// lookup, when set, is the data (Data is nil): a token's lookup object
	// kept typed, so that the read path encodes it without building a map
	// (encode.go).
	lookup *lookupView
}

// data is the response's data as a map, whichever way it is held.
func (r *Response) data() map[string]any {
	if r.lookup != nil {
		return r.lookup.data()
	}
	return r.Data
}

// Auth is Vault's "auth" object, fields in Vault's order.
type Auth struct {
	ClientToken    string            `json:"client_token"`
	Accessor       string            `json:"accessor"`
	Policies       []string          `json:"policies"`
	TokenPolicies  []string          `json:"token_policies,omitempty"`
	Metadata       map[string]string `json:"metadata"`
	LeaseDuration  int64             `json:"lease_duration"`
	Renewable      bool              `json:"renewable"`
	EntityID       string            `json:"entity_id"`
	TokenType      string            `json:"token_type"`
	Orphan         bool              `json:"orphan"`
	MFARequirement any               `json:"mfa_requirement"`
	NumUses        int               `json:"num_uses"`
}

// envelope is Vault's success body, keys in Vault's order.
type envelope struct {
	RequestID     string         `json:"request_id"`
	LeaseID       string         `json:"lease_id"`
	Renewable     bool           `json:"renewable"`
	LeaseDuration int64          `json:"lease_duration"`
	Data          map[string]any `json:"data"`
	WrapInfo      any            `json:"wrap_info"`
	Warnings      []string       `json:"warnings"`
	Auth          *Auth          `json:"auth"`
	MountType     string         `json:"mount_type"`
}

// compile splits the pattern into segments once.
func (rt *Route) compile() {
	rt.segments = strings.Split(strings.Trim(rt.Path, "/"), "/")
}

// match reports whether the (trailing-slash-trimmed) path matches and
// returns the path values. "{name...}" captures the rest of the path.
func (rt *Route) match(segs []string) (map[string]string, bool) {
	var vals map[string]string
	for i, p := range rt.segments {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			name := p[1 : len(p)-1]
			if rest, ok := strings.CutSuffix(name, "..."); ok {
				if i >= len(segs) {
					return nil, false
				}
				if vals == nil {
					vals = map[string]string{}
				}
				vals[rest] = strings.Join(segs[i:], "/")
				return vals, true
			}
			if i >= len(segs) || segs[i] == "" {
				return nil, false
			}
			if vals == nil {
				vals = map[string]string{}
			}
			vals[name] = segs[i]
			continue
		}
		if i >= len(segs) || segs[i] != p {
			return nil, false
		}
	}
	return vals, len(segs) == len(rt.segments)
}

// allow lists the HTTP methods of a route for the Allow header.
func (rt *Route) allow() string {
	ms := make([]string, 0, len(rt.Ops))
	for m := range rt.Ops {
		ms = append(ms, m)
	}
	sort.Strings(ms)
	return strings.Join(ms, ", ")
}

// router finds the route of a path: literal segments beat path values
// (routes are tried most specific first).
type router struct {
	routes []*Route
	// exact maps the path of every route without path values (segments
	// joined by "/") to it, so that most requests are found without
	// splitting their path. A route without path values beats every route
	// with them that matches the same path (it has more literal segments),
	// and the first of equal ones wins, as in the ordered search.
	exact map[string]*Route
}

func newRouter(tables ...[]*Route) *router {
	r := &router{}
	for _, t := range tables {
		for _, rt := range t {
			rt.compile()
			r.routes = append(r.routes, rt)
		}
	}
	sort.SliceStable(r.routes, func(i, j int) bool {
		return literalCount(r.routes[i]) > literalCount(r.routes[j])
	})
	r.exact = make(map[string]*Route)
	for _, rt := range r.routes {
		if literalCount(rt) != len(rt.segments) {
			continue
		}
		key := strings.Join(rt.segments, "/")
		if _, dup := r.exact[key]; !dup {
			r.exact[key] = rt
		}
	}
	return r
}

func literalCount(rt *Route) int {
	n := 0
	for _, s := range rt.segments {
		if !strings.HasPrefix(s, "{") {
			n++
		}
	}
	return n
}

func (r *router) find(path string) (*Route, map[string]string) {
	trimmed := strings.Trim(path, "/")
	if rt, ok := r.exact[trimmed]; ok {
		return rt, nil
	}
	segs := strings.Split(trimmed, "/")
	for _, rt := range r.routes {
		if vals, ok := rt.match(segs); ok {
			return rt, vals
		}
	}
	return nil, nil
}
