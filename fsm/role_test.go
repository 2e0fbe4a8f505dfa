package fsm

import (
	"bytes"
	"reflect"
	"slices"
	"testing"
)

func TestSetRole(t *testing.T) {
	full := goldenRole()
	runApplyCases(t, []applyCase{
		{name: "stores_every_field", cmd: SetRole{Role: full}, check: func(t *testing.T, f *FSM, _ Result) {
			got, ok := f.Role(full.Name)
			if !ok || !reflect.DeepEqual(got, full) {
				t.Fatalf("Role = %+v, %v", got, ok)
			}
		}},
		{name: "replaces_existing", setup: []Command{SetRole{Role: full}},
			cmd: SetRole{Role: Role{Name: full.Name, Renewable: true}}, check: func(t *testing.T, f *FSM, _ Result) {
				got, _ := f.Role(full.Name)
				if !reflect.DeepEqual(got, Role{Name: full.Name, Renewable: true}) {
					t.Fatalf("Role = %+v", got)
				}
			}},
		{name: "empty_name_is_invalid", cmd: SetRole{Role: Role{Orphan: true}}, wantErr: ErrInvalidCommand},
		{name: "nil_and_empty_lists_stay_distinct", cmd: SetRole{Role: Role{Name: "r", AllowedPolicies: []string{}}},
			check: func(t *testing.T, f *FSM, _ Result) {
				got, _ := f.Role("r")
				if got.AllowedPolicies == nil || got.DisallowedPolicies != nil {
					t.Fatalf("allowed %#v disallowed %#v", got.AllowedPolicies, got.DisallowedPolicies)
				}
			}},
	})
}

func TestDeleteRole(t *testing.T) {
	issued := CreateToken{Token: with(tok("t", ""), func(t *Token) { t.Role = "r"; t.Path = "auth/token/create/r" }), Now: t0}
	// Restore does not check roles: issued tokens outlive their role.
	t.Run("snapshot_with_token_of_deleted_role_restores", func(t *testing.T) {
		f := New()
		mustApply(t, f, SetRole{Role: Role{Name: "r"}}, issued, DeleteRole{Name: "r"})
		if err := New().Restore(bytes.NewReader(snapshotBytes(t, f))); err != nil {
			t.Fatal(err)
		}
	})
	runApplyCases(t, []applyCase{
		{name: "removes_and_issued_tokens_keep_role_name", setup: []Command{SetRole{Role: Role{Name: "r"}}, issued},
			cmd: DeleteRole{Name: "r"}, present: []string{"t"}, check: func(t *testing.T, f *FSM, _ Result) {
				if _, ok := f.Role("r"); ok {
					t.Error("role still stored")
				}
				if got, _ := f.Token(h("t")); got.Role != "r" {
					t.Errorf("token role = %q", got.Role)
				}
			}},
		{name: "missing_is_not_an_error", cmd: DeleteRole{Name: "nope"}},
	})
}

func TestCreateTokenChecksRole(t *testing.T) {
	withRole := func(name, role string) Command {
		return CreateToken{Token: with(tok(name, ""), func(t *Token) { t.Role = role; t.Path = "auth/token/create/" + role }), Now: t0}
	}
	runApplyCases(t, []applyCase{
		{name: "existing_role", setup: []Command{SetRole{Role: Role{Name: "r"}}}, cmd: withRole("t", "r"), present: []string{"t"}},
		{name: "missing_role_is_rejected", cmd: withRole("t", "r"), wantErr: ErrRoleNotFound, absent: []string{"t"}},
		{name: "deleted_role_is_rejected", setup: []Command{SetRole{Role: Role{Name: "r"}}, DeleteRole{Name: "r"}},
			cmd: withRole("t", "r"), wantErr: ErrRoleNotFound, absent: []string{"t"}},
	})
}

func TestRoleReadersReturnCopies(t *testing.T) {
	f := New()
	mustApply(t, f, SetRole{Role: goldenRole()}, SetRole{Role: Role{Name: "a"}})
	got, _ := f.Role("golden-role")
	got.AllowedPolicies[0] = "mutated"
	got.TokenBoundCIDRs[0] = "mutated"
	again, _ := f.Role("golden-role")
	if !reflect.DeepEqual(again, goldenRole()) {
		t.Fatalf("reader mutation leaked: %+v", again)
	}
	if names := f.RoleNames(); !slices.Equal(names, []string{"a", "golden-role"}) {
		t.Fatalf("RoleNames = %v", names)
	}
}

func TestSetRoleDoesNotAliasCommand(t *testing.T) {
	// The fuzz/Apply path decodes a fresh command, but a caller of the
	// state directly must not be able to reach the stored record either.
	f := New()
	r := goldenRole()
	f.mu.Lock()
	applySetRole(f.st, SetRole{Role: r})
	f.mu.Unlock()
	r.AllowedPolicies[0] = "mutated"
	if got, _ := f.Role(r.Name); got.AllowedPolicies[0] != "dev" {
		t.Fatal("stored role aliases the command")
	}
}
