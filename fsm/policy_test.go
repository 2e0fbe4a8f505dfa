package fsm

import (
	"bytes"
	"slices"
	"testing"
)

func wantPolicy(name, text string) func(*testing.T, *FSM, Result) {
	return func(t *testing.T, f *FSM, _ Result) {
		t.Helper()
		got, ok := f.Policy(name)
		if !ok || got != text {
			t.Errorf("Policy(%q) = %q, %v; want %q", name, got, ok, text)
		}
	}
}

func wantNoPolicy(name string) func(*testing.T, *FSM, Result) {
	return func(t *testing.T, f *FSM, _ Result) {
		t.Helper()
		if _, ok := f.Policy(name); ok {
			t.Errorf("policy %q still stored", name)
		}
	}
}

func rootInit(name string) InitRoot {
	return InitRoot{Token: with(tok(name, ""), func(t *Token) {
		t.Policies, t.ExpireTime, t.TTL, t.CreationTTL, t.Renewable = []string{"root"}, 0, 0, 0, false
	}), Now: t0}
}

func TestSetPolicy(t *testing.T) {
	runApplyCases(t, []applyCase{
		{name: "stores_raw_text", cmd: SetPolicy{Name: "dev", Text: `path "a" {}`, Now: t0}, check: wantPolicy("dev", `path "a" {}`)},
		{name: "replaces_existing", setup: []Command{SetPolicy{Name: "dev", Text: "one", Now: t0}},
			cmd: SetPolicy{Name: "dev", Text: "two", Now: t0 + sec}, check: wantPolicy("dev", "two")},
		{name: "default_is_editable", setup: []Command{SetPolicy{Name: "default", Text: "stock"}},
			cmd: SetPolicy{Name: "default", Text: "edited"}, check: wantPolicy("default", "edited")},
		{name: "root_is_read_only", cmd: SetPolicy{Name: "root", Text: "x"}, wantErr: ErrPolicyReadOnly, check: wantNoPolicy("root")},
		{name: "empty_name_is_invalid", cmd: SetPolicy{Text: "x"}, wantErr: ErrInvalidCommand},
		{name: "empty_text_is_stored", cmd: SetPolicy{Name: "blank"}, check: wantPolicy("blank", "")},
	})
}

func TestDeletePolicy(t *testing.T) {
	seeded := []Command{SetPolicy{Name: "default", Text: "d"}, SetPolicy{Name: "dev", Text: "x"}}
	runApplyCases(t, []applyCase{
		{name: "removes", setup: seeded, cmd: DeletePolicy{Name: "dev"}, check: func(t *testing.T, f *FSM, r Result) {
			wantNoPolicy("dev")(t, f, r)
			if got := f.PolicyNames(); !slices.Equal(got, []string{"default"}) {
				t.Errorf("PolicyNames = %v", got)
			}
		}},
		{name: "missing_is_not_an_error", setup: seeded, cmd: DeletePolicy{Name: "nope"}},
		{name: "default_cannot_be_deleted", setup: seeded, cmd: DeletePolicy{Name: "default"}, wantErr: ErrCannotDeleteDefault, check: wantPolicy("default", "d")},
		{name: "root_is_read_only", setup: seeded, cmd: DeletePolicy{Name: "root"}, wantErr: ErrPolicyReadOnly},
	})
}

func TestInitRootSeedsDefaultPolicy(t *testing.T) {
	withDefault := func(name, text string) InitRoot {
		c := rootInit(name)
		c.DefaultPolicyText = text
		return c
	}
	runApplyCases(t, []applyCase{
		{name: "stores_default_with_root", cmd: withDefault("r", "stock"), present: []string{"r"}, check: wantPolicy("default", "stock")},
		{name: "without_text_stores_no_policy", cmd: rootInit("r"), check: wantNoPolicy("default")},
		{name: "never_clobbers_a_stored_default", setup: []Command{SetPolicy{Name: "default", Text: "edited"}},
			cmd: withDefault("r", "stock"), check: wantPolicy("default", "edited")},
		{name: "failed_init_stores_no_policy", setup: []Command{rootInit("r")},
			cmd: withDefault("r2", "stock"), wantErr: ErrAlreadyInitialized, check: wantNoPolicy("default")},
	})
}

func TestPolicyNamesSorted(t *testing.T) {
	f := New()
	mustApply(t, f, SetPolicy{Name: "zeta"}, SetPolicy{Name: "alpha"}, SetPolicy{Name: "default"})
	if got := f.PolicyNames(); !slices.Equal(got, []string{"alpha", "default", "zeta"}) {
		t.Fatalf("PolicyNames = %v", got)
	}
	if got := New().PolicyNames(); len(got) != 0 {
		t.Fatalf("empty FSM PolicyNames = %v", got)
	}
}

func TestPolicyVersion(t *testing.T) {
	f := New()
	v := f.PolicyVersion()
	step := func(name string, c Command, wantChange bool) {
		t.Helper()
		applyCmd(t, f, c)
		nv := f.PolicyVersion()
		switch {
		case nv < v:
			t.Fatalf("%s: version went back from %d to %d", name, v, nv)
		case wantChange && nv == v:
			t.Fatalf("%s: version unchanged", name)
		case !wantChange && nv != v:
			t.Fatalf("%s: version changed", name)
		}
		v = nv
	}
	step("set", SetPolicy{Name: "a", Text: "1"}, true)
	step("set_same_name", SetPolicy{Name: "a", Text: "2"}, true)
	step("token_command", create("x", ""), false)
	step("rejected_set", SetPolicy{Name: "root"}, false)
	step("delete_missing", DeletePolicy{Name: "nope"}, false)
	step("delete", DeletePolicy{Name: "a"}, true)
	c := rootInit("r")
	c.DefaultPolicyText = "stock"
	step("init_root_with_default", c, true)

	// Restore moves the version past everything seen, even when the
	// snapshot came from a node whose own counter is lower.
	snap := snapshotBytes(t, New())
	if err := f.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if f.PolicyVersion() <= v {
		t.Fatalf("version after restore %d, before %d", f.PolicyVersion(), v)
	}
}
