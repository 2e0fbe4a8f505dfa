package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"

	"github.com/tokend/tokend/httpapi/acl"
)

// capabilitiesRoutes is the route table of sys/capabilities-self,
// sys/capabilities and sys/capabilities-accessor (VAULT-API.md §1.12).
func (s *server) capabilitiesRoutes() []*Route {
	pathFields := func(extra string, f *Field) Fields {
		fs := Fields{
			"paths": {Type: CommaStringSlice, Description: "Paths to report the capabilities on (list or comma-separated)"},
			"path":  {Type: CommaStringSlice, Description: "Deprecated alias of paths"},
		}
		fs[extra] = f
		return fs
	}
	const desc = "data maps each path to its sorted capabilities (root: [\"root\"], nothing: [\"deny\"]); " +
		"with exactly one path also data.capabilities. data is copied to the top level of the body."
	return []*Route{
		{
			Path: "/v1/sys/capabilities-self", MountType: "system", Inject: true,
			Fields:      pathFields("token", &Field{Type: String, Sensitive: true, Description: "Accepted and ignored (the calling token is used)"}),
			Ops:         update(&Op{Handler: s.capabilitiesSelf, Kind: Read, Summary: "The calling token's capabilities on paths"}),
			Description: desc,
		},
		{
			Path: "/v1/sys/capabilities", MountType: "system", Inject: true,
			Fields:      pathFields("token", &Field{Type: String, Sensitive: true, Description: "Token whose capabilities are reported"}),
			Ops:         update(&Op{Handler: s.capabilitiesToken, Kind: Read, Summary: "A token's capabilities on paths"}),
			Description: desc + " An unknown token is a 400 invalid token.",
		},
		{
			Path: "/v1/sys/capabilities-accessor", MountType: "system", Inject: true,
			Fields:      pathFields("accessor", &Field{Type: String, Required: true, Missing: "missing accessor", Description: "Accessor of the token whose capabilities are reported"}),
			Ops:         update(&Op{Handler: s.capabilitiesAccessor, Kind: Read, Summary: "The capabilities on paths of the token with an accessor"}),
			Description: desc,
		},
	}
}

func (s *server) capabilitiesSelf(_ context.Context, r *Request) (*Response, error) {
	return capabilities(s.aclFor(r.Token.Policies), r.Data)
}

func (s *server) capabilitiesToken(_ context.Context, r *Request) (*Response, error) {
	id := r.Data.String("token")
	if id == "" {
		return nil, badRequest("no token found")
	}
	t, ok := s.validToken(id, r.Now)
	if !ok {
		return nil, badRequest(multiError("invalid token"))
	}
	return capabilities(s.aclFor(t.Policies), r.Data)
}

func (s *server) capabilitiesAccessor(_ context.Context, r *Request) (*Response, error) {
	t, ok := s.validByAccessor(r.Data.String("accessor"), r.Now)
	if !ok {
		return nil, badRequest(multiError("invalid accessor"))
	}
	return capabilities(s.aclFor(t.Policies), r.Data)
}

// capabilities answers a capabilities request for the ACL a.
func capabilities(a *acl.ACL, d *FieldData) (*Response, error) {
	paths := d.Strings("paths")
	if len(paths) == 0 {
		paths = d.Strings("path")
	}
	if len(paths) == 0 {
		return nil, badRequest("paths must be supplied")
	}
	data := make(map[string]any, len(paths)+1)
	for _, p := range paths {
		data[p] = a.Capabilities(p)
	}
	if len(paths) == 1 {
		// Backwards compatibility, as Vault.
		data["capabilities"] = data[paths[0]]
	}
	return &Response{Data: data}, nil
}

// injected is the body of Vault's "injector" sys routes
// (HTTPSysInjector): every key of data is also written at the top level of
// the object, ahead of the envelope's own keys.
type injected struct {
	*envelope
}

// MarshalJSON writes the data keys (sorted) and then the envelope.
func (in injected) MarshalJSON() ([]byte, error) {
	env, err := json.Marshal(in.envelope)
	if err != nil {
		return nil, err
	}
	if len(in.Data) == 0 {
		return env, nil
	}
	keys := make([]string, 0, len(in.Data))
	for k := range in.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.Grow(2 * len(env))
	b.WriteByte('{')
	for _, k := range keys {
		mk, err := json.Marshal(k)
		if err != nil {
			return nil, err
		}
		mv, err := json.Marshal(in.Data[k])
		if err != nil {
			return nil, err
		}
		b.Write(mk)
		b.WriteByte(':')
		b.Write(mv)
		b.WriteByte(',')
	}
	b.Write(env[1:])
	return b.Bytes(), nil
}
