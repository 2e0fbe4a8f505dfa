package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi/acl"
)

// policyRoutes is the route table of the ACL policy endpoints,
// sys/policies/acl and the legacy sys/policy (VAULT-API.md §1.11).
func (s *server) policyRoutes() []*Route {
	nameField := &Field{Type: String, Description: "Name of the policy (trimmed and lower-cased)"}
	policyField := &Field{Type: String, Description: "Policy document: HCL or JSON, optionally base64-encoded"}
	readOp := &Op{Handler: s.readPolicy, Kind: Read, Summary: "Read a policy's document"}
	writeOp := &Op{Handler: s.writePolicy, Kind: Write, Idempotent: true, Summary: "Create or replace a policy"}
	deleteOp := &Op{Handler: s.deletePolicy, Kind: Write, Idempotent: true, Summary: "Delete a policy (not default or root)"}
	legacyList := &Op{Handler: s.listPoliciesLegacy, Kind: Read, Summary: "List the ACL policies (legacy)"}
	return []*Route{
		{
			Path: "/v1/sys/policies/acl", MountType: "system", Fields: Fields{},
			Ops:         Ops{"LIST": {Handler: s.listPolicies, Kind: Read, Summary: "List the ACL policies (also GET ?list=true)"}},
			Description: "data.keys: the stored policies, then the synthetic root.",
		},
		{
			Path: "/v1/sys/policies/acl/{name...}", MountType: "system",
			Fields: Fields{"name": nameField, "policy": policyField},
			Ops:    Ops{"GET": readOp, "POST": writeOp, "PUT": writeOp, "DELETE": deleteOp},
			Description: "GET answers data {name, policy} (root: an empty policy), 404 when missing. " +
				"A parse error is a 400 naming the line and reason; root cannot be written, root and default cannot be deleted.",
		},
		{
			Path: "/v1/sys/policy", MountType: "system", Fields: Fields{}, Inject: true,
			Ops:         Ops{"GET": legacyList, "LIST": legacyList},
			Description: "data {keys, policies}, also copied to the top level of the body.",
		},
		{
			Path: "/v1/sys/policy/{name...}", MountType: "system", Inject: true,
			Fields: Fields{
				"name":   nameField,
				"policy": policyField,
				"rules":  {Type: String, Description: "Deprecated alias of policy"},
			},
			Ops: Ops{
				"GET":    {Handler: s.readPolicy, Kind: Read, Summary: "Read a policy's document (legacy: data.rules)"},
				"POST":   {Handler: s.writePolicy, Kind: Write, Idempotent: true, Summary: "Create or replace a policy (legacy)"},
				"PUT":    {Handler: s.writePolicy, Kind: Write, Idempotent: true, Summary: "Create or replace a policy (legacy)"},
				"DELETE": {Handler: s.deletePolicy, Kind: Write, Idempotent: true, Summary: "Delete a policy (legacy)"},
			},
			Description: "Legacy form of sys/policies/acl/{name}; data is also copied to the top level of the body.",
		},
	}
}

// isLegacyPolicyPath reports whether r came through sys/policy.
func isLegacyPolicyPath(r *Request) bool {
	return r.Path == "sys/policy" || strings.HasPrefix(r.Path, "sys/policy/")
}

// policyNames lists the ACL policies as Vault does: the stored ones
// (sorted, internal ones excluded, "default" included even on a cluster
// that predates stored policies), then the synthetic "root".
func (s *server) policyNames() []string {
	stored := s.node.State().PolicyNames()
	out := make([]string, 0, len(stored)+2)
	for _, n := range stored {
		if acl.Assignable(n) && n != acl.RootPolicyName {
			out = append(out, n)
		}
	}
	if !slices.Contains(out, acl.DefaultPolicyName) {
		out = append(out, acl.DefaultPolicyName)
		slices.Sort(out)
	}
	return append(out, acl.RootPolicyName)
}

func (s *server) listPolicies(_ context.Context, r *Request) (*Response, error) {
	return &Response{Data: map[string]any{"keys": s.policyNames()}}, nil
}

func (s *server) listPoliciesLegacy(_ context.Context, r *Request) (*Response, error) {
	names := s.policyNames()
	return &Response{Data: map[string]any{"keys": names, "policies": names}}, nil
}

// policyText returns the document of a policy: "" for root, the stock text
// for a "default" that is not stored.
func (s *server) policyText(name string) (string, bool) {
	if name == acl.RootPolicyName {
		return "", true
	}
	if !acl.Assignable(name) {
		return "", false
	}
	text, ok := s.node.State().Policy(name)
	if !ok && name == acl.DefaultPolicyName {
		return acl.DefaultPolicyText, true
	}
	return text, ok
}

func (s *server) readPolicy(_ context.Context, r *Request) (*Response, error) {
	name := acl.NormalizeName(r.Data.String("name"))
	text, ok := s.policyText(name)
	if !ok {
		return nil, &apiError{Status: http.StatusNotFound}
	}
	key := "policy"
	if isLegacyPolicyPath(r) {
		key = "rules"
	}
	return &Response{Data: map[string]any{"name": name, key: text}}, nil
}

func (s *server) writePolicy(ctx context.Context, r *Request) (*Response, error) {
	given := r.Data.String("name")
	name := acl.NormalizeName(given)
	if name == "" {
		return nil, badRequest("policy name must be provided in the URL")
	}
	var warnings []string
	if given != name {
		warnings = append(warnings, "policy name was converted to "+name)
	}
	text := r.Data.String("policy")
	if text == "" && isLegacyPolicyPath(r) && r.Data.Has("rules") {
		text = r.Data.String("rules")
		warnings = append(warnings, "'rules' is deprecated, please use 'policy' instead")
	}
	p, err := acl.Parse(name, text)
	if err != nil {
		return nil, badRequest(err.Error())
	}
	if err := acl.CheckWritable(name); err != nil {
		return nil, badRequest(err.Error())
	}
	warnings = append(warnings, p.Warnings...)
	res, err := s.propose(ctx, r, fsm.SetPolicy{Name: name, Text: p.Raw, Now: r.Now.UnixNano()})
	if err != nil {
		return nil, err
	}
	if res.Err != nil {
		if errors.Is(res.Err, fsm.ErrPolicyReadOnly) {
			return nil, badRequest(fmt.Sprintf("cannot update %q policy", name))
		}
		return nil, res.Err
	}
	if len(warnings) == 0 {
		return nil, nil
	}
	return &Response{Warnings: warnings}, nil
}

func (s *server) deletePolicy(ctx context.Context, r *Request) (*Response, error) {
	name := acl.NormalizeName(r.Data.String("name"))
	if err := acl.CheckDeletable(name); err != nil {
		return nil, badRequest(err.Error())
	}
	res, err := s.propose(ctx, r, fsm.DeletePolicy{Name: name})
	if err != nil {
		return nil, err
	}
	switch {
	case res.Err == nil:
		return nil, nil
	case errors.Is(res.Err, fsm.ErrCannotDeleteDefault):
		return nil, badRequest("cannot delete default policy")
	case errors.Is(res.Err, fsm.ErrPolicyReadOnly):
		return nil, badRequest(fmt.Sprintf("cannot delete %q policy", name))
	}
	return nil, res.Err
}

// missingPolicyWarnings returns Vault's create warning for every policy of
// a new token that does not exist (creation still succeeds; such a policy
// grants nothing until it is written).
func (s *server) missingPolicyWarnings(policies []string) []string {
	var warnings []string
	for _, p := range policies {
		if !s.policyExists(p) {
			warnings = append(warnings, fmt.Sprintf("Policy %q does not exist", p))
		}
	}
	return warnings
}
