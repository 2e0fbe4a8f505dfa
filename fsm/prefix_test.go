package fsm

import (
	"fmt"
	"testing"
)

// atPath creates token name (child of parent, "" = orphan) with a creation path.
func atPath(name, parent, path string) Command {
	return CreateToken{Token: with(tok(name, parent), func(t *Token) { t.Path = path }), Now: t0}
}

func TestRevokePrefix(t *testing.T) {
	setup := []Command{
		atPath("r", "", "auth/token/create/r"),
		atPath("r-suffix", "", "auth/token/create/r/suffix"),
		atPath("r-deep", "", "auth/token/create/r/suffix/deeper"),
		atPath("rx", "", "auth/token/create/rx"),
		atPath("r-dash", "", "auth/token/create/r-x"),
		atPath("plain", "", "auth/token/create"),
		atPath("orphan", "", "auth/token/create-orphan"),
		atPath("child-of-r", "r", "auth/token/create"), // matched only through its parent
		atPath("nopath", "", ""),
	}
	all := []string{"r", "r-suffix", "r-deep", "rx", "r-dash", "plain", "orphan", "child-of-r", "nopath"}
	minus := func(gone ...string) []string {
		var out []string
	next:
		for _, n := range all {
			for _, g := range gone {
				if n == g {
					continue next
				}
			}
			out = append(out, n)
		}
		return out
	}
	rGone := []string{"r", "r-suffix", "r-deep", "child-of-r"}
	runApplyCases(t, []applyCase{
		{name: "role_prefix_matches_whole_segments", setup: setup, cmd: RevokePrefix{Prefix: "auth/token/create/r", Now: t0},
			absent: rGone, present: minus(rGone...), check: wantRevoked(4)},
		{name: "trailing_slash_is_the_same_prefix", setup: setup, cmd: RevokePrefix{Prefix: "auth/token/create/r/", Now: t0},
			absent: rGone, present: minus(rGone...), check: wantRevoked(4)},
		{name: "suffix_prefix", setup: setup, cmd: RevokePrefix{Prefix: "auth/token/create/r/suffix", Now: t0},
			absent: []string{"r-suffix", "r-deep"}, present: minus("r-suffix", "r-deep"), check: wantRevoked(2)},
		{name: "create_matches_every_create_path_but_not_create_orphan", setup: setup, cmd: RevokePrefix{Prefix: "auth/token/create", Now: t0},
			present: []string{"orphan", "nopath"}, check: wantRevoked(7)},
		{name: "trailing_slash_on_create", setup: setup, cmd: RevokePrefix{Prefix: "auth/token/create/", Now: t0},
			present: []string{"orphan", "nopath"}, check: wantRevoked(7)},
		{name: "partial_segment_matches_nothing", setup: setup, cmd: RevokePrefix{Prefix: "auth/token/cre", Now: t0},
			present: all, check: wantRevoked(0)},
		{name: "unknown_prefix_is_not_an_error", setup: setup, cmd: RevokePrefix{Prefix: "auth/token/create/none", Now: t0},
			present: all, check: wantRevoked(0)},
		{name: "empty_prefix_is_invalid", setup: setup, cmd: RevokePrefix{Prefix: "", Now: t0}, wantErr: ErrInvalidCommand, present: all},
		{name: "slash_only_prefix_is_invalid", setup: setup, cmd: RevokePrefix{Prefix: "//", Now: t0}, wantErr: ErrInvalidCommand, present: all},
		{name: "matched_descendant_of_matched_token_counts_once",
			setup: []Command{atPath("p", "", "auth/token/create/r"), atPath("c", "p", "auth/token/create/r/s")},
			cmd:   RevokePrefix{Prefix: "auth/token/create/r", Now: t0}, absent: []string{"p", "c"}, check: wantRevoked(2)},
	})
}

func TestPathMatches(t *testing.T) {
	for _, tc := range []struct {
		path, prefix string
		want         bool
	}{
		{"auth/token/create/r", "auth/token/create/r", true},
		{"auth/token/create/r/s", "auth/token/create/r", true},
		{"auth/token/create/rx", "auth/token/create/r", false},
		{"auth/token/create/r", "auth/token/create/r/s", false},
		{"auth/token/create", "", false},
		{"", "", false},
	} {
		if got := pathMatches(tc.path, tc.prefix); got != tc.want {
			t.Errorf("pathMatches(%q, %q) = %v", tc.path, tc.prefix, got)
		}
	}
}

// TestRevokePrefixTenThousand revokes 10,000 role tokens (half of them with
// a child under another path) in one command, leaving 10,000 others.
func TestRevokePrefixTenThousand(t *testing.T) {
	f, _ := populatedPaths(10_000, 10_000)
	r := applyCmd(t, f, RevokePrefix{Prefix: "auth/token/create/bulk", Now: t0})
	if r.Err != nil || r.Revoked != 15_000 {
		t.Fatalf("Revoked = %d, err %v", r.Revoked, r.Err)
	}
	if f.Len() != 10_000 {
		t.Fatalf("Len = %d", f.Len())
	}
	if err := checkInvariants(f); err != nil {
		t.Fatal(err)
	}
}

// populatedPaths stores n tokens under auth/token/create/bulk[/sN] (every
// other one with a child created under auth/token/create) and other tokens
// under auth/token/create/bulky, built without Apply for speed.
func populatedPaths(n, other int) (*FSM, []string) {
	f := New()
	var hashes []string
	for i := 0; i < n; i++ {
		path := "auth/token/create/bulk"
		if i%3 == 0 {
			path += fmt.Sprintf("/s%d", i%7)
		}
		t := tok(fmt.Sprintf("bulk-%d", i), "")
		t.Path = path
		f.st.insert(&t)
		hashes = append(hashes, t.Hash)
		if i%2 == 0 {
			c := tok(fmt.Sprintf("bulk-child-%d", i), "")
			c.Parent = t.Hash
			f.st.insert(&c)
		}
	}
	for i := 0; i < other; i++ {
		t := tok(fmt.Sprintf("other-%d", i), "")
		t.Path = "auth/token/create/bulky"
		f.st.insert(&t)
	}
	return f, hashes
}
