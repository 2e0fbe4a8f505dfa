package fsm

import (
	"fmt"
	"slices"
)

// Names of the built-in ACL policies.
const (
	// PolicyRoot is synthetic: never stored, cannot be set or deleted.
	PolicyRoot = "root"
	// PolicyDefault is stored like any policy (seeded by InitRoot) and can
	// be edited but not deleted.
	PolicyDefault = "default"
)

func applySetPolicy(s *state, c SetPolicy) Result {
	switch c.Name {
	case "":
		return Result{Err: fmt.Errorf("set policy: empty name: %w", ErrInvalidCommand)}
	case PolicyRoot:
		return Result{Err: fmt.Errorf("set policy %q: %w", c.Name, ErrPolicyReadOnly)}
	}
	s.setPolicy(c.Name, c.Text, c.Now)
	return Result{}
}

// setPolicy stores a new record (records are immutable) and bumps the
// local policy generation.
func (s *state) setPolicy(name, text string, now int64) {
	s.policies[name] = &policyRecord{Name: name, Text: text, UpdatedAt: now}
	s.policyGen++
}

func applyDeletePolicy(s *state, c DeletePolicy) Result {
	switch c.Name {
	case PolicyRoot:
		return Result{Err: fmt.Errorf("delete policy %q: %w", c.Name, ErrPolicyReadOnly)}
	case PolicyDefault:
		return Result{Err: fmt.Errorf("delete policy %q: %w", c.Name, ErrCannotDeleteDefault)}
	}
	if _, ok := s.policies[c.Name]; ok {
		delete(s.policies, c.Name)
		s.policyGen++
	}
	return Result{}
}

// Policy implements Reader.
func (f *FSM) Policy(name string) (string, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	p, ok := f.st.policies[name]
	if !ok {
		return "", false
	}
	return p.Text, true
}

// PolicyNames implements Reader.
func (f *FSM) PolicyNames() []string {
	f.mu.RLock()
	out := make([]string, 0, len(f.st.policies))
	for n := range f.st.policies {
		out = append(out, n)
	}
	f.mu.RUnlock()
	slices.Sort(out)
	return out
}

// PolicyVersion implements Reader. It is an atomic load: no lock.
func (f *FSM) PolicyVersion() uint64 {
	return f.policyVersion.Load()
}
