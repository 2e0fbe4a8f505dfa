package fsm

import (
	"errors"
	"testing"
)

// TestRenewByRole: a role token renews with the role's current period and
// explicit max TTL, and not at all once the role is gone.
func TestRenewByRole(t *testing.T) {
	roleTok := with(tok("t", ""), func(t *Token) {
		t.Role = "r"
		t.Path = "auth/token/create/r"
		t.Period = 7200 // the request's own period: ignored ByRole
	})
	setup := func(t *testing.T, role Role) *FSM {
		f := New()
		mustApply(t, f, SetRole{Role: role}, CreateToken{Token: roleTok, Now: t0})
		return f
	}
	t.Run("uses_the_role_period", func(t *testing.T) {
		f := setup(t, Role{Name: "r", TokenPeriod: 600})
		res := applyCmd(t, f, RenewToken{Hash: h("t"), Increment: 5000, Now: t0 + 10*sec, ByRole: true})
		if res.Err != nil || res.Token.TTL != 600 {
			t.Fatalf("res = %+v", res)
		}
	})
	t.Run("uses_the_role_explicit_max", func(t *testing.T) {
		f := setup(t, Role{Name: "r", TokenExplicitMaxTTL: 100})
		res := applyCmd(t, f, RenewToken{Hash: h("t"), Increment: 5000, Now: t0 + 10*sec, ByRole: true})
		if res.Err != nil || res.Token.TTL != 90 {
			t.Fatalf("res = %+v", res)
		}
	})
	t.Run("without_by_role_uses_the_token", func(t *testing.T) {
		f := setup(t, Role{Name: "r", TokenPeriod: 600})
		res := applyCmd(t, f, RenewToken{Hash: h("t"), Increment: 5000, Now: t0 + 10*sec})
		if res.Err != nil || res.Token.TTL != 7200 {
			t.Fatalf("res = %+v", res)
		}
	})
	t.Run("deleted_role_fails_and_changes_nothing", func(t *testing.T) {
		f := setup(t, Role{Name: "r", TokenPeriod: 600})
		mustApply(t, f, DeleteRole{Name: "r"})
		before := f.Hash()
		res := applyCmd(t, f, RenewToken{Hash: h("t"), Now: t0 + 10*sec, ByRole: true})
		if !errors.Is(res.Err, ErrRoleNotFound) {
			t.Fatalf("err = %v", res.Err)
		}
		if f.Hash() != before {
			t.Fatal("state changed")
		}
	})
}
