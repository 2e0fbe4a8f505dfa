package fsm

import (
	"fmt"
	"slices"
)

// clone returns a deep copy of r.
func (r *Role) clone() Role {
	c := *r
	c.AllowedPolicies = slices.Clone(r.AllowedPolicies)
	c.DisallowedPolicies = slices.Clone(r.DisallowedPolicies)
	c.AllowedPoliciesGlob = slices.Clone(r.AllowedPoliciesGlob)
	c.DisallowedPoliciesGlob = slices.Clone(r.DisallowedPoliciesGlob)
	c.AllowedEntityAliases = slices.Clone(r.AllowedEntityAliases)
	c.TokenBoundCIDRs = slices.Clone(r.TokenBoundCIDRs)
	c.BoundCIDRs = slices.Clone(r.BoundCIDRs)
	return c
}

func applySetRole(s *state, c SetRole) Result {
	if c.Role.Name == "" {
		return Result{Err: fmt.Errorf("set role: empty name: %w", ErrInvalidCommand)}
	}
	r := c.Role.clone()
	s.roles[r.Name] = &r
	return Result{}
}

func applyDeleteRole(s *state, c DeleteRole) Result {
	// Tokens issued from the role keep their Role name: nothing else to do.
	delete(s.roles, c.Name)
	return Result{}
}

// Role implements Reader.
func (f *FSM) Role(name string) (Role, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	r, ok := f.st.roles[name]
	if !ok {
		return Role{}, false
	}
	return r.clone(), true
}

// RoleNames implements Reader.
func (f *FSM) RoleNames() []string {
	f.mu.RLock()
	out := make([]string, 0, len(f.st.roles))
	for n := range f.st.roles {
		out = append(out, n)
	}
	f.mu.RUnlock()
	slices.Sort(out)
	return out
}
