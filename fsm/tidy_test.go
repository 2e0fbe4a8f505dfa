package fsm

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// tidyFamily is a small tree with paths: root ← a ← a1, root ← b, and an
// orphan o with neither path nor expiry.
func tidyFamily(tb testing.TB) *FSM {
	f := New()
	mustApply(tb, f,
		atPath("root", "", "auth/token/create/r"),
		atPath("a", "root", "auth/token/create"),
		atPath("a1", "a", "auth/token/create"),
		atPath("b", "root", "auth/token/create/r/s"),
		CreateToken{Token: with(tok("o", ""), func(t *Token) { t.ExpireTime, t.TTL, t.Path = 0, 0, "" }), Now: t0},
	)
	return f
}

func TestCheckAndTidyRepairEachCorruption(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		target string
		want   TidyReport // counts only
	}{
		{CorruptAccessorMissing, "a", TidyReport{AccessorsMissing: 1}},
		{CorruptAccessorDangling, "a", TidyReport{AccessorsDangling: 1}},
		{CorruptAccessorMismatched, "a", TidyReport{AccessorsMismatched: 1}},
		{CorruptChildrenMissing, "a1", TidyReport{ChildrenMissing: 1}},
		{CorruptChildrenDangling, "b", TidyReport{ChildrenDangling: 1}},
		{CorruptChildrenMismatched, "a", TidyReport{ChildrenMismatched: 1}},
		{CorruptExpiryMissing, "b", TidyReport{ExpiryMissing: 1}},
		{CorruptExpiryExtra, "o", TidyReport{ExpiryExtra: 1}},
		{CorruptPathMissing, "root", TidyReport{PathMissing: 1}},
		{CorruptPathExtra, "a", TidyReport{PathExtra: 1}},
		// Losing a's record: a1 becomes an orphan; a's accessor, expiry and
		// path entries, root → a and a → a1 entries are stale.
		{CorruptParentMissing, "a1", TidyReport{Orphaned: 1, AccessorsDangling: 1, ExpiryExtra: 1, PathExtra: 1,
			ChildrenDangling: 1, ChildrenMismatched: 1}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			f := tidyFamily(t)
			before := f.Hash()
			if err := CorruptIndexForTest(f, tc.kind, h(tc.target)); err != nil {
				t.Fatal(err)
			}
			got := f.Check()
			if got.Tokens != f.Len() || len(got.Repairs) != got.Total() {
				t.Fatalf("report %+v", got)
			}
			counts := got
			counts.Tokens, counts.Repairs = 0, nil
			if fmt.Sprint(counts) != fmt.Sprint(tc.want) {
				t.Fatalf("Check counts = %+v\nwant %+v\nrepairs %q", counts, tc.want, got.Repairs)
			}
			if err := checkInvariants(f); err == nil {
				t.Fatal("corruption not visible to the invariant check")
			}
			r := applyCmd(t, f, Tidy{Now: t0})
			if r.Err != nil || r.Tidy == nil || fmt.Sprint(*r.Tidy) != fmt.Sprint(got) {
				t.Fatalf("Tidy result %+v, want the Check report %+v", r.Tidy, got)
			}
			if err := checkInvariants(f); err != nil {
				t.Fatalf("after tidy: %v", err)
			}
			if again := f.Check(); again.Total() != 0 {
				t.Fatalf("Check after tidy: %+v", again)
			}
			if tc.kind == CorruptParentMissing {
				if got, _ := f.Token(h("a1")); got.Parent != "" {
					t.Fatal("child of missing parent not orphaned")
				}
				return
			}
			// Index corruption only: the primary state is untouched and
			// a revoke after tidy removes exactly the tree.
			if f.Hash() != before {
				t.Fatal("tidy changed the primary state")
			}
			if r := applyCmd(t, f, RevokeTree{Hash: h("root"), Now: t0}); r.Revoked != 4 || f.Len() != 1 {
				t.Fatalf("revoke after tidy: Revoked %d, Len %d", r.Revoked, f.Len())
			}
		})
	}
}

func TestTidyOnConsistentStateChangesNothing(t *testing.T) {
	f := sampleFSMFull(t)
	before := f.Hash()
	r := applyCmd(t, f, Tidy{Now: t0})
	if r.Err != nil || r.Tidy == nil || r.Tidy.Total() != 0 || r.Tidy.Tokens != f.Len() || len(r.Tidy.Repairs) != 0 {
		t.Fatalf("Tidy = %+v", r.Tidy)
	}
	if f.Hash() != before {
		t.Fatal("tidy of a consistent state changed it")
	}
}

func TestTidyReportCapsLines(t *testing.T) {
	f := New()
	insertWide(f, "w", "", MaxTidyRepairLines+10)
	f.mu.Lock()
	f.st.paths.Clear(false)
	f.mu.Unlock()
	r := f.Check()
	if r.PathMissing != MaxTidyRepairLines+10 || len(r.Repairs) != MaxTidyRepairLines || r.RepairsOmitted != 10 {
		t.Fatalf("PathMissing %d, lines %d, omitted %d", r.PathMissing, len(r.Repairs), r.RepairsOmitted)
	}
}

func TestTidyRepairLinesCarryNoFullHash(t *testing.T) {
	f := tidyFamily(t)
	for _, k := range []string{CorruptParentMissing, CorruptChildrenDangling, CorruptPathExtra} {
		target := "a1"
		if k != CorruptParentMissing {
			target = "root"
		}
		if err := CorruptIndexForTest(f, k, h(target)); err != nil {
			t.Fatal(err)
		}
	}
	for _, line := range f.Check().Repairs {
		for _, n := range []string{"root", "a", "a1", "b", "o"} {
			if strings.Contains(line, h(n)) {
				t.Fatalf("repair line carries a full hash: %s", line)
			}
		}
	}
}

func TestCorruptIndexForTestErrors(t *testing.T) {
	f := tidyFamily(t)
	for _, tc := range []struct{ kind, target string }{
		{"no-such-kind", "a"},
		{CorruptAccessorMissing, "nope"},
		{CorruptChildrenMissing, "root"},
		{CorruptParentMissing, "o"},
		{CorruptExpiryMissing, "o"},
		{CorruptPathMissing, "o"},
	} {
		if err := CorruptIndexForTest(f, tc.kind, h(tc.target)); err == nil {
			t.Errorf("%s on %s: no error", tc.kind, tc.target)
		} else if !errors.Is(err, ErrInvalidCommand) && !errors.Is(err, ErrTokenNotFound) {
			t.Errorf("%s: %v", tc.kind, err)
		}
	}
	if err := checkInvariants(f); err != nil {
		t.Fatalf("a refused corruption changed the state: %v", err)
	}
}
