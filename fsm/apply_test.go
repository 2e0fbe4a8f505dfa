package fsm

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// applyCase is one row of a command table: a starting state (built from
// setup commands that must succeed), the command, and the wanted error and
// state. A rejected command must leave the state Hash unchanged.
type applyCase struct {
	name    string
	setup   []Command
	cmd     Command
	wantErr error
	present []string // token names that must be stored afterwards
	absent  []string // token names that must not be stored afterwards
	check   func(t *testing.T, f *FSM, r Result)
}

func runApplyCases(t *testing.T, cases []applyCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := New()
			mustApply(t, f, tc.setup...)
			before := f.Hash()
			r := applyCmd(t, f, tc.cmd)
			switch {
			case tc.wantErr == nil && r.Err != nil:
				t.Fatalf("unexpected error: %v", r.Err)
			case tc.wantErr != nil && !errors.Is(r.Err, tc.wantErr):
				t.Fatalf("error = %v, want %v", r.Err, tc.wantErr)
			case tc.wantErr != nil && f.Hash() != before:
				t.Fatalf("rejected command changed the state")
			}
			for _, n := range tc.present {
				if _, ok := f.Token(h(n)); !ok {
					t.Errorf("token %s missing", n)
				}
			}
			for _, n := range tc.absent {
				if _, ok := f.Token(h(n)); ok {
					t.Errorf("token %s still stored", n)
				}
			}
			if err := checkInvariants(f); err != nil {
				t.Fatalf("invariants: %v", err)
			}
			if tc.check != nil {
				tc.check(t, f, r)
			}
		})
	}
}

func wantRevoked(n int) func(*testing.T, *FSM, Result) {
	return func(t *testing.T, _ *FSM, r Result) {
		t.Helper()
		if r.Revoked != n {
			t.Errorf("Revoked = %d, want %d", r.Revoked, n)
		}
	}
}

func TestCreateToken(t *testing.T) {
	runApplyCases(t, []applyCase{
		{name: "orphan_is_stored_and_indexed", cmd: create("a", ""), present: []string{"a"},
			check: func(t *testing.T, f *FSM, r Result) {
				if r.Token == nil || r.Token.Hash != h("a") {
					t.Fatalf("result token = %+v", r.Token)
				}
				if got, ok := f.TokenByAccessor(acc("a")); !ok || got.Hash != h("a") {
					t.Errorf("accessor index: %v %v", got.Hash, ok)
				}
				if f.NextExpiry() != t0+hour {
					t.Errorf("NextExpiry = %d", f.NextExpiry())
				}
			}},
		{name: "child_is_indexed_under_parent", setup: []Command{create("p", "")}, cmd: create("c", "p"),
			check: func(t *testing.T, f *FSM, _ Result) {
				if got := f.Children(h("p")); !slices.Equal(got, []string{h("c")}) {
					t.Errorf("Children = %v", got)
				}
			}},
		{name: "duplicate_hash_is_rejected", setup: []Command{create("a", "")},
			cmd: CreateToken{Token: with(tok("a", ""), func(t *Token) { t.Accessor = "other" }), Now: t0}, wantErr: ErrTokenExists},
		{name: "duplicate_accessor_is_rejected", setup: []Command{create("a", "")},
			cmd: CreateToken{Token: with(tok("b", ""), func(t *Token) { t.Accessor = acc("a") }), Now: t0}, wantErr: ErrAccessorExists, absent: []string{"b"}},
		{name: "missing_parent_is_rejected", cmd: create("c", "p"), wantErr: ErrParentNotFound, absent: []string{"c"}},
		{name: "expired_parent_is_rejected", setup: []Command{create("p", "")},
			cmd: CreateToken{Token: tok("c", "p"), Now: t0 + hour}, wantErr: ErrParentNotFound},
		{name: "expired_grandparent_is_rejected",
			setup: []Command{
				CreateToken{Token: with(tok("g", ""), func(t *Token) { t.ExpireTime = t0 + sec }), Now: t0},
				CreateToken{Token: with(tok("p", "g"), func(t *Token) { t.ExpireTime = 0 }), Now: t0},
			},
			cmd: CreateToken{Token: tok("c", "p"), Now: t0 + 2*sec}, wantErr: ErrParentNotFound},
		{name: "plaintext_id_as_hash_is_rejected",
			cmd: CreateToken{Token: with(tok("a", ""), func(t *Token) { t.Hash = "hvs.plaintext" }), Now: t0}, wantErr: ErrInvalidCommand},
		{name: "missing_accessor_is_rejected",
			cmd: CreateToken{Token: with(tok("a", ""), func(t *Token) { t.Accessor = "" }), Now: t0}, wantErr: ErrInvalidCommand},
		{name: "batch_type_is_rejected",
			cmd: CreateToken{Token: with(tok("a", ""), func(t *Token) { t.Type = "batch" }), Now: t0}, wantErr: ErrInvalidCommand},
		{name: "negative_num_uses_is_rejected",
			cmd: CreateToken{Token: with(tok("a", ""), func(t *Token) { t.NumUses = -1 }), Now: t0}, wantErr: ErrInvalidCommand},
	})
}

func TestRevokeTree(t *testing.T) {
	family := []Command{create("root", ""), create("a", "root"), create("b", "root"), create("a1", "a"), create("other", "")}
	runApplyCases(t, []applyCase{
		{name: "revokes_whole_subtree", setup: family, cmd: RevokeTree{Hash: h("root"), Now: t0},
			absent: []string{"root", "a", "b", "a1"}, present: []string{"other"}, check: wantRevoked(4)},
		{name: "revokes_only_below_target", setup: family, cmd: RevokeTree{Hash: h("a"), Now: t0},
			absent: []string{"a", "a1"}, present: []string{"root", "b", "other"},
			check: func(t *testing.T, f *FSM, r Result) {
				wantRevoked(2)(t, f, r)
				if got := f.Children(h("root")); !slices.Equal(got, []string{h("b")}) {
					t.Errorf("Children(root) = %v", got)
				}
			}},
		{name: "unknown_hash_is_not_an_error", setup: family, cmd: RevokeTree{Hash: h("nope"), Now: t0}, check: wantRevoked(0)},
		{name: "child_of_revoked_parent_is_invalid", setup: family, cmd: RevokeTree{Hash: h("root"), Now: t0},
			check: func(t *testing.T, f *FSM, _ Result) {
				if _, ok := f.Valid(h("a1"), t0); ok {
					t.Error("grandchild still valid")
				}
			}},
	})
}

func TestRevokeTreeDeepChain(t *testing.T) {
	const depth = 100_000
	f := New()
	mustApply(t, f, create("root", ""))
	chain := insertChain(f, "c", h("root"), depth)
	if _, ok := f.Valid(chain[len(chain)-1], t0); !ok {
		t.Fatal("leaf of deep chain not valid")
	}
	// Expiry of the root invalidates the leaf 100k levels down.
	if _, ok := f.Valid(chain[len(chain)-1], t0+hour); ok {
		t.Fatal("leaf valid after root expired")
	}
	r := applyCmd(t, f, RevokeTree{Hash: h("root"), Now: t0})
	if r.Revoked != depth+1 || f.Len() != 0 {
		t.Fatalf("Revoked = %d, Len = %d", r.Revoked, f.Len())
	}
	if err := checkInvariants(f); err != nil {
		t.Fatal(err)
	}
}

func TestRevokeTreeWide(t *testing.T) {
	f := New()
	mustApply(t, f, create("root", ""), create("keep", ""))
	insertWide(f, "w", h("root"), 50_000)
	r := applyCmd(t, f, RevokeTree{Hash: h("root"), Now: t0})
	if r.Revoked != 50_001 || f.Len() != 1 {
		t.Fatalf("Revoked = %d, Len = %d", r.Revoked, f.Len())
	}
	if err := checkInvariants(f); err != nil {
		t.Fatal(err)
	}
}

func TestRevokeTreeCycleSafe(t *testing.T) {
	// Apply can never build a cycle; force one to prove the walks terminate.
	f := New()
	mustApply(t, f, create("a", ""), create("b", "a"))
	ka, _ := keyOf(h("a"))
	kb, _ := keyOf(h("b"))
	f.st.recs.setParent(ka, &kb)
	f.st.indexChild(kb, ka)
	if _, ok := f.Valid(h("b"), t0); ok {
		t.Error("token on a parent cycle is valid")
	}
	if r := applyCmd(t, f, RevokeTree{Hash: h("a"), Now: t0}); r.Revoked != 2 || f.Len() != 0 {
		t.Fatalf("Revoked = %d, Len = %d", r.Revoked, f.Len())
	}
}

func TestRevokeOrphan(t *testing.T) {
	family := []Command{create("root", ""), create("a", "root"), create("b", "root"), create("a1", "a")}
	runApplyCases(t, []applyCase{
		{name: "children_become_orphans", setup: family, cmd: RevokeOrphan{Hash: h("root"), Now: t0},
			absent: []string{"root"}, present: []string{"a", "b", "a1"},
			check: func(t *testing.T, f *FSM, r Result) {
				wantRevoked(1)(t, f, r)
				for _, n := range []string{"a", "b"} {
					if got, ok := f.Valid(h(n), t0); !ok || got.Parent != "" {
						t.Errorf("%s: valid=%v parent=%q", n, ok, got.Parent)
					}
				}
				if got, _ := f.Token(h("a1")); got.Parent != h("a") {
					t.Error("grandchild lost its parent")
				}
				if len(f.Children(h("root"))) != 0 {
					t.Error("children index of revoked token kept")
				}
			}},
		{name: "unknown_is_not_found", setup: family, cmd: RevokeOrphan{Hash: h("nope"), Now: t0}, wantErr: ErrTokenNotFound},
	})
}

func TestRevokeAccessor(t *testing.T) {
	family := []Command{create("root", ""), create("a", "root")}
	runApplyCases(t, []applyCase{
		{name: "revokes_tree_of_accessor", setup: family, cmd: RevokeAccessor{Accessor: acc("root"), Now: t0},
			absent: []string{"root", "a"}, check: wantRevoked(2)},
		{name: "unknown_accessor_is_not_found", setup: family, cmd: RevokeAccessor{Accessor: "nope", Now: t0}, wantErr: ErrTokenNotFound},
		{name: "empty_accessor_is_not_found", setup: family, cmd: RevokeAccessor{Now: t0}, wantErr: ErrTokenNotFound},
	})
}

func TestUseToken(t *testing.T) {
	limited := func(name, parent string, n int) Command {
		return CreateToken{Token: with(tok(name, parent), func(t *Token) { t.NumUses = n }), Now: t0}
	}
	wantUses := func(n int) func(*testing.T, *FSM, Result) {
		return func(t *testing.T, _ *FSM, r Result) {
			if r.Token == nil || r.Token.NumUses != n {
				t.Fatalf("result token = %+v, want num_uses %d", r.Token, n)
			}
		}
	}
	runApplyCases(t, []applyCase{
		{name: "unlimited_token_is_unchanged", setup: []Command{create("a", "")}, cmd: UseToken{Hash: h("a"), Now: t0},
			present: []string{"a"}, check: wantUses(0)},
		{name: "decrements", setup: []Command{limited("a", "", 3)}, cmd: UseToken{Hash: h("a"), Now: t0},
			check: func(t *testing.T, f *FSM, r Result) {
				wantUses(2)(t, f, r)
				if got, _ := f.Token(h("a")); got.NumUses != 2 {
					t.Errorf("stored num_uses = %d", got.NumUses)
				}
			}},
		{name: "last_use_returns_minus_one_and_revokes_tree",
			setup: []Command{limited("a", "", 1), create("c", "a"), create("d", "c")}, cmd: UseToken{Hash: h("a"), Now: t0},
			absent: []string{"a", "c", "d"},
			check: func(t *testing.T, f *FSM, r Result) {
				wantUses(-1)(t, f, r)
				wantRevoked(3)(t, f, r)
			}},
		{name: "unknown_is_not_found", cmd: UseToken{Hash: h("a"), Now: t0}, wantErr: ErrTokenNotFound},
		{name: "expired_is_not_found", setup: []Command{limited("a", "", 3)}, cmd: UseToken{Hash: h("a"), Now: t0 + hour}, wantErr: ErrTokenNotFound},
	})

	t.Run("counts_down_to_minus_one", func(t *testing.T) {
		f := New()
		mustApply(t, f, limited("a", "", 3))
		for _, want := range []int{2, 1, -1} {
			r := applyCmd(t, f, UseToken{Hash: h("a"), Now: t0})
			if r.Err != nil || r.Token.NumUses != want {
				t.Fatalf("use: %+v, want num_uses %d", r, want)
			}
		}
		if r := applyCmd(t, f, UseToken{Hash: h("a"), Now: t0}); !errors.Is(r.Err, ErrTokenNotFound) {
			t.Fatalf("use after exhaustion: %v", r.Err)
		}
	})
}

func TestReapExpired(t *testing.T) {
	at := func(name, parent string, exp int64) Command {
		return CreateToken{Token: with(tok(name, parent), func(t *Token) { t.ExpireTime = exp }), Now: t0}
	}
	setup := []Command{
		at("e3", "", t0+3*sec), at("e1", "", t0+1*sec), at("e2", "", t0+2*sec),
		at("child", "e2", t0+hour), at("forever", "", 0), at("later", "", t0+hour),
	}
	runApplyCases(t, []applyCase{
		{name: "reaps_all_due_with_subtrees", setup: setup, cmd: ReapExpired{Now: t0 + 3*sec, Limit: 100},
			absent: []string{"e1", "e2", "e3", "child"}, present: []string{"forever", "later"}, check: wantRevoked(4)},
		{name: "limit_takes_oldest_first", setup: setup, cmd: ReapExpired{Now: t0 + 3*sec, Limit: 2},
			absent: []string{"e1", "e2", "child"}, present: []string{"e3", "forever", "later"}, check: wantRevoked(3)},
		{name: "expiry_exactly_now_is_due", setup: setup, cmd: ReapExpired{Now: t0 + 1*sec, Limit: 10},
			absent: []string{"e1"}, present: []string{"e2", "e3"}, check: wantRevoked(1)},
		{name: "nothing_due", setup: setup, cmd: ReapExpired{Now: t0, Limit: 10}, check: wantRevoked(0)},
		{name: "zero_limit_is_unlimited", setup: setup, cmd: ReapExpired{Now: t0 + 2*hour},
			present: []string{"forever"}, check: wantRevoked(5)},
	})

	t.Run("next_expiry_follows_reaping", func(t *testing.T) {
		f := New()
		mustApply(t, f, setup...)
		if got := f.NextExpiry(); got != t0+sec {
			t.Fatalf("NextExpiry = %d", got)
		}
		mustApply(t, f, ReapExpired{Now: t0 + sec, Limit: 1})
		if got := f.NextExpiry(); got != t0+2*sec {
			t.Fatalf("NextExpiry after reap = %d", got)
		}
	})
}

func TestInitRoot(t *testing.T) {
	root := func(name string) Command {
		return InitRoot{Token: with(tok(name, ""), func(t *Token) {
			t.Policies, t.ExpireTime, t.TTL, t.CreationTTL, t.Renewable = []string{"root"}, 0, 0, 0, false
		}), Now: t0}
	}
	runApplyCases(t, []applyCase{
		{name: "first_initializes", cmd: root("r"), present: []string{"r"},
			check: func(t *testing.T, f *FSM, _ Result) {
				if !f.Initialized() {
					t.Error("not initialized")
				}
				if got, ok := f.Valid(h("r"), t0+1000*hour); !ok || !got.IsRoot() {
					t.Error("root token not valid forever")
				}
			}},
		{name: "second_is_rejected", setup: []Command{root("r")}, cmd: root("r2"), wantErr: ErrAlreadyInitialized, absent: []string{"r2"}},
		{name: "second_after_root_revoked_is_rejected", setup: []Command{root("r"), RevokeTree{Hash: h("r")}}, cmd: root("r2"), wantErr: ErrAlreadyInitialized},
		{name: "root_with_parent_is_rejected", setup: []Command{create("p", "")},
			cmd: InitRoot{Token: tok("r", "p"), Now: t0}, wantErr: ErrInvalidCommand},
	})
}

func TestSetClusterIdent(t *testing.T) {
	runApplyCases(t, []applyCase{
		{name: "first_wins", setup: []Command{SetClusterIdent{ClusterID: "one", IndexKey: []byte("k1")}},
			cmd: SetClusterIdent{ClusterID: "two", IndexKey: []byte("k2")},
			check: func(t *testing.T, f *FSM, _ Result) {
				if id, key := f.ClusterIdent(); id != "one" || string(key) != "k1" {
					t.Errorf("ident = %q %q", id, key)
				}
			}},
		{name: "empty_id_is_rejected", cmd: SetClusterIdent{}, wantErr: ErrInvalidCommand},
	})
}

func TestRenewToken(t *testing.T) {
	renewable := func(name string, fn func(*Token)) Command {
		return CreateToken{Token: with(tok(name, ""), fn), Now: t0}
	}
	want := func(ttl int64, now int64, warn string) func(*testing.T, *FSM, Result) {
		return func(t *testing.T, f *FSM, r Result) {
			t.Helper()
			if r.Token == nil || r.Token.TTL != ttl || r.Token.ExpireTime != now+ttl*sec || r.Token.LastRenewalTime != now {
				t.Fatalf("result token = %+v, want ttl %d", r.Token, ttl)
			}
			stored, _ := f.Token(r.Token.Hash)
			if stored.TTL != ttl || f.NextExpiry() != now+ttl*sec {
				t.Errorf("stored ttl %d, next expiry %d", stored.TTL, f.NextExpiry())
			}
			switch {
			case warn == "" && len(r.Warnings) != 0:
				t.Errorf("unexpected warnings %q", r.Warnings)
			case warn != "" && (len(r.Warnings) != 1 || r.Warnings[0] != warn):
				t.Errorf("warnings = %q, want %q", r.Warnings, warn)
			}
		}
	}
	plain := renewable("a", func(*Token) {})
	runApplyCases(t, []applyCase{
		{name: "increment_may_exceed_original_ttl", setup: []Command{plain},
			cmd: RenewToken{Hash: h("a"), Increment: 7200, MaxTTL: DefaultMaxTTL, Now: t0 + 10*sec}, check: want(7200, t0+10*sec, "")},
		{name: "no_increment_regrants_last_ttl", setup: []Command{plain},
			cmd: RenewToken{Hash: h("a"), MaxTTL: DefaultMaxTTL, Now: t0 + 10*sec}, check: want(3600, t0+10*sec, "")},
		{name: "by_accessor", setup: []Command{plain},
			cmd: RenewToken{Accessor: acc("a"), MaxTTL: DefaultMaxTTL, Now: t0 + 10*sec}, check: want(3600, t0+10*sec, "")},
		{name: "capped_by_system_max", setup: []Command{plain},
			cmd:   RenewToken{Hash: h("a"), Increment: 7200, MaxTTL: 3600, Now: t0 + 1800*sec},
			check: want(1800, t0+1800*sec, `TTL of "2h" exceeded the effective max_ttl of "30m"; TTL value is capped accordingly`)},
		{name: "zero_max_ttl_means_default", setup: []Command{plain},
			cmd:   RenewToken{Hash: h("a"), Increment: 1000 * 3600, Now: t0},
			check: want(DefaultMaxTTL, t0, `TTL of "1000h" exceeded the effective max_ttl of "768h"; TTL value is capped accordingly`)},
		{name: "capped_by_explicit_max", setup: []Command{renewable("a", func(t *Token) { t.ExplicitMaxTTL = 5400 })},
			cmd:   RenewToken{Hash: h("a"), Increment: 7200, MaxTTL: DefaultMaxTTL, Now: t0 + 1800*sec},
			check: want(3600, t0+1800*sec, `TTL of "2h" exceeded the effective max_ttl of "1h"; TTL value is capped accordingly`)},
		{name: "periodic_resets_to_period_ignoring_increment",
			setup: []Command{renewable("a", func(t *Token) { t.Period = 600; t.TTL = 600; t.ExpireTime = t0 + 600*sec })},
			cmd:   RenewToken{Hash: h("a"), Increment: 7200, MaxTTL: DefaultMaxTTL, Now: t0 + 300*sec}, check: want(600, t0+300*sec, "")},
		{name: "periodic_lives_past_system_max",
			setup: []Command{renewable("a", func(t *Token) { t.Period = 600; t.TTL = 600; t.ExpireTime = t0 + 10000*hour })},
			cmd:   RenewToken{Hash: h("a"), MaxTTL: DefaultMaxTTL, Now: t0 + 9999*hour}, check: want(600, t0+9999*hour, "")},
		{name: "periodic_capped_by_explicit_max",
			setup: []Command{renewable("a", func(t *Token) { t.Period = 600; t.ExplicitMaxTTL = 900; t.ExpireTime = t0 + 600*sec })},
			cmd:   RenewToken{Hash: h("a"), MaxTTL: DefaultMaxTTL, Now: t0 + 500*sec},
			check: want(400, t0+500*sec, `TTL of "10m" exceeded the effective max_ttl of "6m40s"; TTL value is capped accordingly`)},
		{name: "period_over_max_is_capped_with_warning",
			setup: []Command{renewable("a", func(t *Token) { t.Period = 7200; t.ExplicitMaxTTL = 3600 })},
			cmd:   RenewToken{Hash: h("a"), MaxTTL: DefaultMaxTTL, Now: t0},
			check: want(3600, t0, `period of "2h" exceeded the effective max_ttl of "1h"; period value is capped accordingly`)},
		{name: "past_max_ttl", setup: []Command{renewable("a", func(t *Token) { t.ExpireTime = t0 + 2*hour })},
			cmd: RenewToken{Hash: h("a"), MaxTTL: 3600, Now: t0 + hour}, wantErr: ErrPastMaxTTL},
		{name: "not_renewable", setup: []Command{renewable("a", func(t *Token) { t.Renewable = false })},
			cmd: RenewToken{Hash: h("a"), MaxTTL: DefaultMaxTTL, Now: t0}, wantErr: ErrNotRenewable},
		{name: "expired", setup: []Command{plain},
			cmd: RenewToken{Hash: h("a"), MaxTTL: DefaultMaxTTL, Now: t0 + hour}, wantErr: ErrLeaseExpired},
		{name: "non_expiring_root_has_no_lease", setup: []Command{renewable("a", func(t *Token) { t.ExpireTime = 0; t.TTL = 0; t.Policies = []string{"root"} })},
			cmd: RenewToken{Hash: h("a"), MaxTTL: DefaultMaxTTL, Now: t0}, wantErr: ErrInvalidLease},
		{name: "unknown", cmd: RenewToken{Hash: h("a"), MaxTTL: DefaultMaxTTL, Now: t0}, wantErr: ErrTokenNotFound},
		{name: "unknown_accessor", setup: []Command{plain}, cmd: RenewToken{Accessor: "nope", MaxTTL: DefaultMaxTTL, Now: t0}, wantErr: ErrTokenNotFound},
		{name: "parent_expired_is_not_found",
			setup: []Command{renewable("p", func(t *Token) { t.ExpireTime = t0 + sec }), create("c", "p")},
			cmd:   RenewToken{Hash: h("c"), MaxTTL: DefaultMaxTTL, Now: t0 + 2*sec}, wantErr: ErrTokenNotFound},
	})
}

func TestErrorsCarryNoHashBeyondPrefix(t *testing.T) {
	f := New()
	mustApply(t, f, create("a", ""))
	r := applyCmd(t, f, CreateToken{Token: with(tok("a", ""), func(t *Token) { t.Accessor = "x" }), Now: t0})
	if r.Err == nil || strings.Contains(r.Err.Error(), h("a")) {
		t.Fatalf("error %q", r.Err)
	}
}

func TestReadersReturnCopies(t *testing.T) {
	f := New()
	mustApply(t, f, CreateToken{Token: with(tok("a", ""), func(t *Token) {
		t.Meta = map[string]string{"k": "v"}
		t.Ext = map[string][]byte{"x": []byte("y")}
	}), Now: t0})
	got, _ := f.Token(h("a"))
	got.Policies[0] = "mutated"
	got.Meta["k"] = "mutated"
	got.Ext["x"][0] = 'z'
	again, _ := f.Token(h("a"))
	if again.Policies[0] != "default" || again.Meta["k"] != "v" || string(again.Ext["x"]) != "y" {
		t.Fatalf("reader mutation leaked into state: %+v", again)
	}
}

func TestAccessorsSorted(t *testing.T) {
	f := New()
	mustApply(t, f, create("c", ""), create("a", ""), create("b", ""))
	if got := f.Accessors(); !slices.Equal(got, []string{acc("a"), acc("b"), acc("c")}) {
		t.Fatalf("Accessors = %v", got)
	}
	if f.Len() != 3 || f.LastApplied() != 3 {
		t.Fatalf("Len %d LastApplied %d", f.Len(), f.LastApplied())
	}
}
