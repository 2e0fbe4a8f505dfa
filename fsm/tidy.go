package fsm

import (
	"fmt"
	"slices"
	"strings"
)

// childEntry is one parent → child entry of the children index.
type childEntry struct{ parent, child string }

// accessorEntry is one accessor → hash entry of the accessor index.
type accessorEntry struct{ accessor, hash string }

// tidyPlan is what check found: the report and the exact repairs that make
// every derived index agree with the primary token map. Applying it is
// idempotent and its result does not depend on the order in which check
// met the problems (each list is a set of independent index edits).
type tidyPlan struct {
	report TidyReport
	lines  []string

	orphan    []string // tokens whose parent is missing
	accDel    []string // accessor entries to remove
	accSet    []accessorEntry
	childDel  []childEntry
	emptySets []string
	childAdd  []childEntry
	expDel    []expiryItem
	expAdd    []expiryItem
	pathDel   []pathItem
	pathAdd   []pathItem
}

func (p *tidyPlan) note(format string, args ...any) {
	p.lines = append(p.lines, fmt.Sprintf(format, args...))
}

// tokenName names a token in a repair line: accessor if it has one (not a
// secret), else the short hash.
func tokenName(t *Token) string {
	if t.Accessor != "" {
		return t.Accessor
	}
	return shortHash(t.Hash)
}

// effectiveParent is the parent a token has after tidy: its Parent if that
// token is stored, else "" (it becomes an orphan).
func (s *state) effectiveParent(t *Token) string {
	if t.Parent == "" {
		return ""
	}
	if _, ok := s.tokens[t.Parent]; !ok {
		return ""
	}
	return t.Parent
}

// check walks every index against the primary token map. It reads only.
// Cost: O(tokens + index entries).
func (s *state) check() *tidyPlan {
	p := &tidyPlan{}
	r := &p.report
	r.Tokens = len(s.tokens)

	for hash, t := range s.tokens {
		if t.Parent != "" {
			if _, ok := s.tokens[t.Parent]; !ok {
				r.Orphaned++
				p.orphan = append(p.orphan, hash)
				p.note("token %s: parent %s missing, made an orphan", tokenName(t), shortHash(t.Parent))
			}
		}
		if s.accessors[t.Accessor] != hash {
			r.AccessorsMissing++
			p.accSet = append(p.accSet, accessorEntry{t.Accessor, hash})
			p.note("token %s: accessor not indexed, added", tokenName(t))
		}
		if ep := s.effectiveParent(t); ep != "" {
			if _, ok := s.children[ep][hash]; !ok {
				r.ChildrenMissing++
				p.childAdd = append(p.childAdd, childEntry{ep, hash})
				p.note("token %s: missing from children of %s, added", tokenName(t), shortHash(ep))
			}
		}
		if t.ExpireTime != 0 && !s.expiry.Has(expiryItem{t.ExpireTime, hash}) {
			r.ExpiryMissing++
			p.expAdd = append(p.expAdd, expiryItem{t.ExpireTime, hash})
			p.note("token %s: missing from expiry index, added", tokenName(t))
		}
		if t.Path != "" && !s.paths.Has(pathItem{t.Path, hash}) {
			r.PathMissing++
			p.pathAdd = append(p.pathAdd, pathItem{t.Path, hash})
			p.note("token %s: missing from path index, added", tokenName(t))
		}
	}

	for a, hash := range s.accessors {
		t, ok := s.tokens[hash]
		switch {
		case !ok:
			r.AccessorsDangling++
			p.accDel = append(p.accDel, a)
			p.note("accessor %s: points at missing token %s, removed", a, shortHash(hash))
		case t.Accessor != a:
			r.AccessorsMismatched++
			p.accDel = append(p.accDel, a)
			p.note("accessor %s: points at token %s with another accessor, removed", a, tokenName(t))
		}
	}

	for parent, set := range s.children {
		if len(set) == 0 {
			r.ChildrenDangling++
			p.emptySets = append(p.emptySets, parent)
			p.note("children of %s: empty set, removed", shortHash(parent))
			continue
		}
		for c := range set {
			t, ok := s.tokens[c]
			switch {
			case !ok:
				r.ChildrenDangling++
				p.childDel = append(p.childDel, childEntry{parent, c})
				p.note("children of %s: child %s missing, removed", shortHash(parent), shortHash(c))
			case s.effectiveParent(t) != parent:
				r.ChildrenMismatched++
				p.childDel = append(p.childDel, childEntry{parent, c})
				p.note("children of %s: token %s has another or no parent, removed", shortHash(parent), tokenName(t))
			}
		}
	}

	s.expiry.Ascend(func(it expiryItem) bool {
		if t, ok := s.tokens[it.hash]; !ok || t.ExpireTime != it.at {
			r.ExpiryExtra++
			p.expDel = append(p.expDel, it)
			p.note("expiry entry %s at %d: no such token or expiry, removed", shortHash(it.hash), it.at)
		}
		return true
	})
	s.paths.Ascend(func(it pathItem) bool {
		if t, ok := s.tokens[it.hash]; !ok || t.Path != it.path {
			r.PathExtra++
			p.pathDel = append(p.pathDel, it)
			p.note("path entry %s under %q: no such token or path, removed", shortHash(it.hash), it.path)
		}
		return true
	})

	// Determinism: the lines were gathered in map order; sort them.
	slices.Sort(p.lines)
	if len(p.lines) > MaxTidyRepairLines {
		r.RepairsOmitted = len(p.lines) - MaxTidyRepairLines
		p.lines = p.lines[:MaxTidyRepairLines]
	}
	r.Repairs = p.lines
	return p
}

// apply performs the repairs. Removals go before additions so an accessor
// entry that pointed at the wrong token is replaced, not kept.
func (p *tidyPlan) apply(s *state) {
	for _, h := range p.orphan {
		t := *s.tokens[h] // records are immutable: store a new one
		t.Parent = ""
		s.tokens[h] = &t
	}
	for _, a := range p.accDel {
		delete(s.accessors, a)
	}
	// Determinism: two tokens can only share an accessor in a corrupt
	// state; sorting makes the same one win on every node.
	slices.SortFunc(p.accSet, func(a, b accessorEntry) int {
		if a.accessor != b.accessor {
			return strings.Compare(a.accessor, b.accessor)
		}
		return strings.Compare(a.hash, b.hash)
	})
	for _, e := range p.accSet {
		s.accessors[e.accessor] = e.hash
	}
	for _, e := range p.childDel {
		if set := s.children[e.parent]; set != nil {
			delete(set, e.child)
			if len(set) == 0 {
				delete(s.children, e.parent)
			}
		}
	}
	for _, parent := range p.emptySets {
		if len(s.children[parent]) == 0 {
			delete(s.children, parent)
		}
	}
	for _, e := range p.childAdd {
		set := s.children[e.parent]
		if set == nil {
			set = make(map[string]struct{})
			s.children[e.parent] = set
		}
		set[e.child] = struct{}{}
	}
	for _, it := range p.expDel {
		s.expiry.Delete(it)
	}
	for _, it := range p.expAdd {
		s.expiry.ReplaceOrInsert(it)
	}
	for _, it := range p.pathDel {
		s.paths.Delete(it)
	}
	for _, it := range p.pathAdd {
		s.paths.ReplaceOrInsert(it)
	}
}

func applyTidy(f *FSM, _ Tidy) Result {
	// The O(tokens) walk runs without mu (Apply is the only writer); the
	// repairs, proportional to the damage found, take one section.
	p := f.st.check()
	f.section(p.apply)
	r := p.report
	return Result{Tidy: &r}
}

// Check implements Reader: what a Tidy command would repair now. It walks
// the state once (O(tokens)) holding the writer lock, so it sees a settled
// state and never blocks other readers; Apply waits for it.
func (f *FSM) Check() TidyReport {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	return f.st.check().report
}
