package test

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/test/inproc"
)

// statusOf is the HTTP status of a client call's error (200 for nil).
func policyStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return http.StatusOK
	}
	var re *vaultapi.ResponseError
	if errors.As(err, &re) {
		return re.StatusCode
	}
	t.Fatalf("not a response error: %v", err)
	return 0
}

// withToken returns a client of node i that presents token.
func policyClient(c *inproc.Cluster, i int, token string) *vaultapi.Client {
	cl := c.Client(i)
	cl.SetToken(token)
	return cl
}

const appPolicy = `
path "auth/token/lookup" { capabilities = ["update"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }
path "auth/token/create" { capabilities = ["create", "update"] }
path "auth/token/renew" { capabilities = ["deny"] }
path "auth/token/lookup-self" { capabilities = ["deny"] }
path "auth/token/accessors" { capabilities = ["list"] }
path "sys/policies/acl/*" { capabilities = ["read"] }
`

// TestPolicyEnforcementOnCluster: a token with a custom policy can do
// exactly what its policies grant, on every node; a policy edited through
// one node changes the decisions on all of them.
func TestPolicyEnforcementOnCluster(t *testing.T) {
	c := inproc.New(t, 3)
	follower := c.Followers()[0]
	var state string
	root := c.Client(follower).WithResponseCallbacks(vaultapi.RecordState(&state))
	if err := root.Sys().PutPolicy("app", appPolicy); err != nil {
		t.Fatal(err)
	}
	app := createToken(t, root, &vaultapi.TokenCreateRequest{Policies: []string{"app", "default"}}).Auth.ClientToken
	victim := createToken(t, root, &vaultapi.TokenCreateRequest{TTL: "1h"})

	type check struct {
		name       string
		path, cap  string // what CapabilitiesSelf must report for the decision
		call       func(cl *vaultapi.Client) error
		allowed    bool
		wantStatus int // when allowed: the status the call answers (0 = 200)
	}
	checks := []check{
		{"lookup", "auth/token/lookup", "update", func(cl *vaultapi.Client) error {
			_, err := cl.Auth().Token().Lookup(victim.Auth.ClientToken)
			return err
		}, true, 0},
		{"lookup-accessor", "auth/token/lookup-accessor", "update", func(cl *vaultapi.Client) error {
			_, err := cl.Auth().Token().LookupAccessor(victim.Auth.Accessor)
			return err
		}, true, 0},
		{"create child", "auth/token/create", "update", func(cl *vaultapi.Client) error {
			_, err := cl.Auth().Token().Create(&vaultapi.TokenCreateRequest{TTL: "10m"})
			return err
		}, true, 0},
		{"create child with another policy (needs sudo)", "auth/token/create", "update", func(cl *vaultapi.Client) error {
			_, err := cl.Auth().Token().Create(&vaultapi.TokenCreateRequest{Policies: []string{"other"}})
			return err
		}, true, http.StatusBadRequest},
		{"create-orphan", "auth/token/create-orphan", "update", func(cl *vaultapi.Client) error {
			_, err := cl.Auth().Token().CreateOrphan(&vaultapi.TokenCreateRequest{})
			return err
		}, false, 0},
		{"renew (explicit deny)", "auth/token/renew", "update", func(cl *vaultapi.Client) error {
			_, err := cl.Auth().Token().Renew(victim.Auth.ClientToken, 60)
			return err
		}, false, 0},
		{"lookup-self (deny beats default)", "auth/token/lookup-self", "read", func(cl *vaultapi.Client) error {
			_, err := cl.Auth().Token().LookupSelf()
			return err
		}, false, 0},
		{"list accessors (no sudo)", "auth/token/accessors", "list", func(cl *vaultapi.Client) error {
			_, err := cl.Logical().List("auth/token/accessors")
			return err
		}, false, 0},
		{"revoke-accessor", "auth/token/revoke-accessor", "update", func(cl *vaultapi.Client) error {
			return cl.Auth().Token().RevokeAccessor(victim.Auth.Accessor)
		}, false, 0},
		{"revoke-orphan", "auth/token/revoke-orphan", "update", func(cl *vaultapi.Client) error {
			return cl.Auth().Token().RevokeOrphan(victim.Auth.ClientToken)
		}, false, 0},
		{"revoke", "auth/token/revoke", "update", func(cl *vaultapi.Client) error {
			return cl.Auth().Token().RevokeTree(victim.Auth.ClientToken)
		}, false, 0},
		{"read policy", "sys/policies/acl/app", "read", func(cl *vaultapi.Client) error {
			_, err := cl.Sys().GetPolicy("app")
			return err
		}, true, 0},
		{"list policies", "sys/policies/acl", "list", func(cl *vaultapi.Client) error {
			_, err := cl.Sys().ListPolicies()
			return err
		}, false, 0},
		{"write policy", "sys/policies/acl/app", "update", func(cl *vaultapi.Client) error {
			return cl.Sys().PutPolicy("app", `path "x" { capabilities = ["read"] }`)
		}, false, 0},
		{"renew-self (default)", "auth/token/renew-self", "update", func(cl *vaultapi.Client) error {
			_, err := cl.Auth().Token().RenewSelf(0)
			return err
		}, true, 0},
	}
	for i := range c.Nodes {
		cl := policyClient(c, i, app).WithRequestCallbacks(vaultapi.RequireState(state))
		for _, ck := range checks {
			got := policyStatus(t, ck.call(cl))
			want := http.StatusForbidden
			if ck.allowed {
				want = ck.wantStatus
				if want == 0 {
					want = http.StatusOK
				}
			}
			if got != want {
				t.Errorf("node %d: %s: status %d, want %d", i, ck.name, got, want)
			}
			caps, err := cl.Sys().CapabilitiesSelf(ck.path)
			if err != nil {
				t.Fatalf("node %d: capabilities-self %s: %v", i, ck.path, err)
			}
			if slices.Contains(caps, ck.cap) != ck.allowed && ck.name != "list accessors (no sudo)" {
				t.Errorf("node %d: %s: capabilities %v, allowed=%v", i, ck.path, caps, ck.allowed)
			}
		}
		if caps, _ := cl.Sys().CapabilitiesSelf("auth/token/accessors"); !slices.Equal(caps, []string{"list"}) {
			t.Errorf("node %d: accessors capabilities %v", i, caps)
		}
	}

	// Edit the policy through another follower: renew and sudo-listing
	// become allowed on every node, lookup denied.
	other := c.Followers()[len(c.Followers())-1]
	edit := c.Client(other).WithResponseCallbacks(vaultapi.RecordState(&state))
	if err := edit.Sys().PutPolicy("app", `
path "auth/token/renew" { capabilities = ["update"] }
path "auth/token/accessors/" { capabilities = ["list", "sudo"] }
path "auth/token/lookup" { capabilities = ["deny"] }
`); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		cl := policyClient(c, i, app).WithRequestCallbacks(vaultapi.RequireState(state))
		if _, err := cl.Auth().Token().Renew(victim.Auth.ClientToken, 60); err != nil {
			t.Errorf("node %d: renew after edit: %v", i, err)
		}
		if s, err := cl.Logical().List("auth/token/accessors"); err != nil || s == nil {
			t.Errorf("node %d: list accessors after edit: %v", i, err)
		}
		if got := policyStatus(t, func() error { _, err := cl.Auth().Token().Lookup(victim.Auth.ClientToken); return err }()); got != http.StatusForbidden {
			t.Errorf("node %d: lookup after edit: %d", i, got)
		}
		// The rule is for the slashed path that LIST uses.
		if caps, _ := cl.Sys().CapabilitiesSelf("auth/token/accessors/"); !slices.Equal(caps, []string{"list", "sudo"}) {
			t.Errorf("node %d: accessors capabilities after edit %v", i, caps)
		}
	}

	// Deleting it through a third node: everything it granted is gone.
	if err := c.Client(c.LeaderIndex()).WithResponseCallbacks(vaultapi.RecordState(&state)).Sys().DeletePolicy("app"); err != nil {
		t.Fatal(err)
	}
	for i := range c.Nodes {
		cl := policyClient(c, i, app).WithRequestCallbacks(vaultapi.RequireState(state))
		if got := policyStatus(t, func() error { _, err := cl.Auth().Token().Renew(victim.Auth.ClientToken, 60); return err }()); got != http.StatusForbidden {
			t.Errorf("node %d: renew after delete: %d", i, got)
		}
	}
}

// TestDefaultPolicyOnCluster: a default-only token may use the self
// endpoints, and only those, on every node.
func TestDefaultPolicyOnCluster(t *testing.T) {
	c := inproc.New(t, 3)
	names, err := c.Client(0).Sys().ListPolicies()
	if err != nil || !slices.Equal(names, []string{"default", "root"}) {
		t.Fatalf("policies %v %v", names, err)
	}
	var state string
	root := c.Client(c.Followers()[0]).WithResponseCallbacks(vaultapi.RecordState(&state))
	def := createToken(t, root, &vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"}).Auth.ClientToken
	for i := range c.Nodes {
		cl := policyClient(c, i, def).WithRequestCallbacks(vaultapi.RequireState(state))
		if _, err := cl.Auth().Token().LookupSelf(); err != nil {
			t.Errorf("node %d: lookup-self: %v", i, err)
		}
		if _, err := cl.Auth().Token().RenewSelf(60); err != nil {
			t.Errorf("node %d: renew-self: %v", i, err)
		}
		caps, err := cl.Sys().CapabilitiesSelf("auth/token/renew-self")
		if err != nil || !slices.Equal(caps, []string{"update"}) {
			t.Errorf("node %d: capabilities-self %v %v", i, caps, err)
		}
		if caps, _ := cl.Sys().CapabilitiesSelf("auth/token/create"); !slices.Equal(caps, []string{"deny"}) {
			t.Errorf("node %d: capabilities on create %v", i, caps)
		}
		if got := policyStatus(t, func() error { _, err := cl.Auth().Token().Create(&vaultapi.TokenCreateRequest{}); return err }()); got != http.StatusForbidden {
			t.Errorf("node %d: create: %d", i, got)
		}
		if got := policyStatus(t, func() error { _, err := cl.Sys().ListPolicies(); return err }()); got != http.StatusForbidden {
			t.Errorf("node %d: list policies: %d", i, got)
		}
	}
	if caps, _ := c.Client(1).Sys().CapabilitiesSelf("anything"); !slices.Equal(caps, []string{"root"}) {
		t.Errorf("root capabilities %v", caps)
	}
	if err := policyClient(c, 2, def).Auth().Token().RevokeSelf(""); err != nil {
		t.Fatalf("revoke-self: %v", err)
	}
}
