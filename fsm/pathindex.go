package fsm

import (
	"slices"

	"github.com/google/btree"
)

// pathIndex indexes tokens by creation path: the index behind RevokePrefix.
// Creation paths take few distinct values (one per role), so it is a sorted
// set of the distinct paths (a prefix range scan) with a hash set per path:
// insert and delete are O(1) map edits, not btree walks comparing long
// equal path strings, which made removing 100,000 tokens from a one-btree
// index cost a third of a large revoke.
type pathIndex struct {
	byPath map[string]map[key]struct{} // path → hashes (never an empty set)
	sorted *btree.BTreeG[string]       // the keys of byPath
	n      int
}

func newPathIndex() *pathIndex {
	return &pathIndex{byPath: make(map[string]map[key]struct{}), sorted: btree.NewG(8, func(a, b string) bool { return a < b })}
}

// ReplaceOrInsert adds an entry (a no-op when present).
func (p *pathIndex) ReplaceOrInsert(it pathItem) {
	set := p.byPath[it.path]
	if set == nil {
		set = make(map[key]struct{})
		p.byPath[it.path] = set
		p.sorted.ReplaceOrInsert(it.path)
	}
	if _, ok := set[it.hash]; !ok {
		set[it.hash] = struct{}{}
		p.n++
	}
}

// reserve sizes an empty index's set for path to hold n hashes (a restore
// knows the counts up front). It adds no entry.
func (p *pathIndex) reserve(path string, n int) {
	if _, ok := p.byPath[path]; !ok && n > 0 {
		p.byPath[path] = make(map[key]struct{}, n)
		p.sorted.ReplaceOrInsert(path)
	}
}

// Delete removes an entry (a no-op when absent).
func (p *pathIndex) Delete(it pathItem) {
	set := p.byPath[it.path]
	if _, ok := set[it.hash]; !ok {
		return
	}
	delete(set, it.hash)
	p.n--
	if len(set) == 0 {
		delete(p.byPath, it.path)
		p.sorted.Delete(it.path)
	}
}

// Has reports whether the entry is present.
func (p *pathIndex) Has(it pathItem) bool {
	_, ok := p.byPath[it.path][it.hash]
	return ok
}

// Len is the number of entries.
func (p *pathIndex) Len() int { return p.n }

// Clear drops every entry.
func (p *pathIndex) Clear(bool) { *p = *newPathIndex() }

// Ascend calls fn for every entry in (path, hash) order until it returns
// false. It sorts each path's hashes: O(n log n), for tidy's full walk.
func (p *pathIndex) Ascend(fn func(pathItem) bool) {
	p.sorted.Ascend(func(path string) bool {
		return ascendSet(path, p.byPath[path], fn)
	})
}

// AscendRange calls fn for the entries with lo.path <= path < hi.path, in
// (path, hash) order, until it returns false.
func (p *pathIndex) AscendRange(lo, hi pathItem, fn func(pathItem) bool) {
	p.sorted.AscendRange(lo.path, hi.path, func(path string) bool {
		return ascendSet(path, p.byPath[path], fn)
	})
}

func ascendSet(path string, set map[key]struct{}, fn func(pathItem) bool) bool {
	hashes := make([]key, 0, len(set))
	for h := range set {
		hashes = append(hashes, h)
	}
	slices.SortFunc(hashes, compareKeys)
	for _, h := range hashes {
		if !fn(pathItem{path, h}) {
			return false
		}
	}
	return true
}
