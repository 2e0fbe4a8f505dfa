package fsm

import (
	"fmt"
	"slices"
	"strings"
)

// childEntry is one parent → child entry of the children index.
type childEntry struct{ parent, child key }

// accessorEntry is one accessor → hash entry of the accessor index.
type accessorEntry struct {
	accessor string
	hash     key
}

// tidyPlan is what check found: the report and the exact repairs that make
// every derived index agree with the primary token map. Applying it is
// idempotent and its result does not depend on the order in which check
// met the problems (each list is a set of independent index edits).
type tidyPlan struct {
	report TidyReport
	lines  []string

	orphan    []key    // tokens whose parent is missing
	accDel    []string // accessor entries to remove
	accSet    []accessorEntry
	childDel  []childEntry
	emptySets []key
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
func (s *state) tokenName(r *rec) string {
	if a := s.recs.accessor(r); a != "" {
		return a
	}
	return short(r.hash)
}

// short is shortHash of a key.
func short(k key) string { return shortHash(k.String()) }

// effectiveParent is the parent a token has after tidy: its parent if that
// token is stored, else none (it becomes an orphan).
func (s *state) effectiveParent(r *rec) (key, bool) {
	if !r.hasParent() || !s.recs.has(r.parent) {
		return key{}, false
	}
	return r.parent, true
}

// check walks every index against the primary token map. It reads only.
// Cost: O(tokens + index entries).
func (s *state) check() *tidyPlan {
	p := &tidyPlan{}
	r := &p.report
	r.Tokens = s.tokenCount()

	s.recs.each(func(t *rec) bool {
		k := t.hash
		if t.hasParent() && !s.recs.has(t.parent) {
			r.Orphaned++
			p.orphan = append(p.orphan, k)
			p.note("token %s: parent %s missing, made an orphan", s.tokenName(t), short(t.parent))
		}
		if acc := s.recs.accessor(t); !s.accessors.is(acc, k) {
			r.AccessorsMissing++
			p.accSet = append(p.accSet, accessorEntry{acc, k})
			p.note("token %s: accessor not indexed, added", s.tokenName(t))
		}
		if ep, ok := s.effectiveParent(t); ok {
			if _, ok := s.children[ep][k]; !ok {
				r.ChildrenMissing++
				p.childAdd = append(p.childAdd, childEntry{ep, k})
				p.note("token %s: missing from children of %s, added", s.tokenName(t), short(ep))
			}
		}
		if t.expireTime != 0 && !s.expiry.Has(expiryItem{t.expireTime, k}) {
			r.ExpiryMissing++
			p.expAdd = append(p.expAdd, expiryItem{t.expireTime, k})
			p.note("token %s: missing from expiry index, added", s.tokenName(t))
		}
		if path := s.recs.shapes[t.shape].path; path != "" && !s.paths.Has(pathItem{path, k}) {
			r.PathMissing++
			p.pathAdd = append(p.pathAdd, pathItem{path, k})
			p.note("token %s: missing from path index, added", s.tokenName(t))
		}
		return true
	})

	s.accessors.each(func(a string, k key) {
		t, ok := s.recs.get(k)
		switch {
		case !ok:
			r.AccessorsDangling++
			p.accDel = append(p.accDel, a)
			p.note("accessor %s: points at missing token %s, removed", a, short(k))
		case s.recs.accessor(t) != a:
			r.AccessorsMismatched++
			p.accDel = append(p.accDel, a)
			p.note("accessor %s: points at token %s with another accessor, removed", a, s.tokenName(t))
		}
	})

	for parent, set := range s.children {
		if len(set) == 0 {
			r.ChildrenDangling++
			p.emptySets = append(p.emptySets, parent)
			p.note("children of %s: empty set, removed", short(parent))
			continue
		}
		for c := range set {
			t, ok := s.recs.get(c)
			if !ok {
				r.ChildrenDangling++
				p.childDel = append(p.childDel, childEntry{parent, c})
				p.note("children of %s: child %s missing, removed", short(parent), short(c))
				continue
			}
			if ep, ok := s.effectiveParent(t); !ok || ep != parent {
				r.ChildrenMismatched++
				p.childDel = append(p.childDel, childEntry{parent, c})
				p.note("children of %s: token %s has another or no parent, removed", short(parent), s.tokenName(t))
			}
		}
	}

	s.expiry.Ascend(func(it expiryItem) bool {
		if t, ok := s.recs.get(it.hash); !ok || t.expireTime != it.at {
			r.ExpiryExtra++
			p.expDel = append(p.expDel, it)
			p.note("expiry entry %s at %d: no such token or expiry, removed", short(it.hash), it.at)
		}
		return true
	})
	s.paths.Ascend(func(it pathItem) bool {
		if t, ok := s.recs.get(it.hash); !ok || s.recs.shapes[t.shape].path != it.path {
			r.PathExtra++
			p.pathDel = append(p.pathDel, it)
			p.note("path entry %s under %q: no such token or path, removed", short(it.hash), it.path)
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
	for _, k := range p.orphan {
		s.recs.setParent(k, nil)
	}
	for _, a := range p.accDel {
		s.accessors.del(a)
	}
	// Determinism: two tokens can only share an accessor in a corrupt
	// state; sorting makes the same one win on every node.
	slices.SortFunc(p.accSet, func(a, b accessorEntry) int {
		if a.accessor != b.accessor {
			return strings.Compare(a.accessor, b.accessor)
		}
		return compareKeys(a.hash, b.hash)
	})
	for _, e := range p.accSet {
		s.accessors.set(e.accessor, e.hash)
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
		s.indexChild(e.parent, e.child)
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
