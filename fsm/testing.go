package fsm

import (
	"crypto/sha256"
	"fmt"
)

// Kinds of corruption CorruptIndexForTest can inflict, each relative to one
// stored token (the target).
const (
	// CorruptAccessorMissing drops the target's accessor entry.
	CorruptAccessorMissing = "accessor-missing"
	// CorruptAccessorDangling adds an entry "<accessor>-dangling" that
	// points at a token hash nobody has.
	CorruptAccessorDangling = "accessor-dangling"
	// CorruptAccessorMismatched adds an entry "<accessor>-mismatched" that
	// points at the target (whose accessor differs).
	CorruptAccessorMismatched = "accessor-mismatched"
	// CorruptChildrenMissing drops the target from its parent's children.
	CorruptChildrenMissing = "children-missing"
	// CorruptChildrenDangling adds a child nobody has under the target.
	CorruptChildrenDangling = "children-dangling"
	// CorruptChildrenMismatched lists the target as a child of itself.
	CorruptChildrenMismatched = "children-mismatched"
	// CorruptParentMissing deletes the target's parent record from the
	// primary map only, leaving its index entries and children behind (a
	// lost record rather than a corrupt index).
	CorruptParentMissing = "parent-missing"
	// CorruptExpiryMissing drops the target's expiry entry.
	CorruptExpiryMissing = "expiry-missing"
	// CorruptExpiryExtra adds an expiry entry for the target at a wrong time.
	CorruptExpiryExtra = "expiry-extra"
	// CorruptPathMissing drops the target's path entry.
	CorruptPathMissing = "path-missing"
	// CorruptPathExtra adds a path entry for the target under a wrong path.
	CorruptPathExtra = "path-extra"
)

// CorruptIndexForTest damages one index of f around the token with the given
// hash, bypassing Apply, so that tests (in this and other packages) can check
// that Check and Tidy find and repair it. FOR TESTS ONLY: a corrupted FSM no
// longer matches its peers. It returns an error for an unknown kind, a
// missing target, or a kind that does not apply to it (e.g.
// children-missing on an orphan).
func CorruptIndexForTest(f *FSM, kind, hash string) error {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.st
	k, ok := keyOf(hash)
	var r *rec
	if ok {
		r, ok = s.recs.get(k)
	}
	if !ok {
		return fmt.Errorf("corrupt %s: %w", kind, ErrTokenNotFound)
	}
	t := s.recs.token(r)
	nobody := key(sha256.Sum256([]byte("corrupt-index-for-test:" + hash)))
	switch kind {
	case CorruptAccessorMissing:
		s.accessors.del(t.Accessor)
	case CorruptAccessorDangling:
		s.accessors.set(t.Accessor+"-dangling", nobody)
	case CorruptAccessorMismatched:
		s.accessors.set(t.Accessor+"-mismatched", k)
	case CorruptChildrenMissing, CorruptParentMissing:
		if !r.hasParent() {
			return fmt.Errorf("corrupt %s: token %s has no parent: %w", kind, t.Accessor, ErrInvalidCommand)
		}
		if kind == CorruptParentMissing {
			s.recs.del(r.parent)
			break
		}
		delete(s.children[r.parent], k)
		if len(s.children[r.parent]) == 0 {
			delete(s.children, r.parent)
		}
	case CorruptChildrenDangling, CorruptChildrenMismatched:
		child := nobody
		if kind == CorruptChildrenMismatched {
			child = k
		}
		s.indexChild(k, child)
	case CorruptExpiryMissing:
		if t.ExpireTime == 0 {
			return fmt.Errorf("corrupt %s: token %s does not expire: %w", kind, t.Accessor, ErrInvalidCommand)
		}
		s.expiry.Delete(expiryItem{t.ExpireTime, k})
	case CorruptExpiryExtra:
		s.expiry.ReplaceOrInsert(expiryItem{t.ExpireTime + 1, k})
	case CorruptPathMissing:
		if t.Path == "" {
			return fmt.Errorf("corrupt %s: token %s has no path: %w", kind, t.Accessor, ErrInvalidCommand)
		}
		s.paths.Delete(pathItem{t.Path, k})
	case CorruptPathExtra:
		s.paths.ReplaceOrInsert(pathItem{in(t.Path + "/corrupt"), k})
	default:
		return fmt.Errorf("corrupt %q: unknown kind: %w", kind, ErrInvalidCommand)
	}
	return nil
}
