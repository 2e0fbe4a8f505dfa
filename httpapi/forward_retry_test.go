package httpapi

import (
	"encoding/json"
	"testing"
)

// TestForwardRetrySafety: a follower marks a forwarded request retry-safe
// (the cluster may send it again to a new leader after a leader change
// cut it off) only when repeating it cannot change its outcome: reads and
// Idempotent writes under a token without a use limit. Creates,
// revoke-self and revoke-orphan never are.
func TestForwardRetrySafety(t *testing.T) {
	c := newCluster2(t)
	mk := func(body string) (id, acc string) {
		code, _, out := doRaw(t, c.srv.URL, "POST", "/v1/auth/token/create", c.root, body)
		if code != 200 {
			t.Fatalf("create %s: %d %s", body, code, out)
		}
		var r struct {
			Auth struct {
				ClientToken string `json:"client_token"`
				Accessor    string `json:"accessor"`
			} `json:"auth"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatal(err)
		}
		return r.Auth.ClientToken, r.Auth.Accessor
	}
	plain, plainAcc := mk(`{"ttl":"1h"}`)
	limited, _ := mk(`{"ttl":"1h","num_uses":5}`)
	victim, _ := mk(`{"ttl":"1h"}`)
	c.follower.replicate(0)

	for _, tc := range []struct {
		name, method, path, token, body string
		want                            bool
	}{
		{"create", "POST", "/v1/auth/token/create", c.root, `{}`, false},
		{"create with id", "POST", "/v1/auth/token/create", c.root, `{"id":"client-chosen-id-1"}`, false},
		{"create-orphan", "POST", "/v1/auth/token/create-orphan", c.root, `{}`, false},
		{"revoke", "POST", "/v1/auth/token/revoke", c.root, `{"token":"` + victim + `"}`, true},
		{"revoke-accessor", "POST", "/v1/auth/token/revoke-accessor", c.root, `{"accessor":"` + plainAcc + `"}`, true},
		{"revoke-self", "POST", "/v1/auth/token/revoke-self", plain, ``, false},
		{"revoke-orphan", "POST", "/v1/auth/token/revoke-orphan", c.root, `{"token":"` + victim + `"}`, false},
		{"renew-self", "POST", "/v1/auth/token/renew-self", plain, `{}`, true},
		{"renew-self with a limited-use token", "POST", "/v1/auth/token/renew-self", limited, `{}`, false},
		{"consistent lookup-self", "GET", "/v1/auth/token/lookup-self?consistent", plain, ``, true},
		{"consistent lookup-self, limited-use token", "GET", "/v1/auth/token/lookup-self?consistent", limited, ``, false},
		{"unknown token", "POST", "/v1/auth/token/revoke", "s.unknowntokenxxxxxxxxxxxx", `{"token":"x"}`, false},
		{"policy write", "PUT", "/v1/sys/policies/acl/p1", c.root, `{"policy":"path \"x\" {capabilities=[\"read\"]}"}`, true},
		{"role delete", "DELETE", "/v1/auth/token/roles/r1", c.root, ``, true},
		{"sys/init (unauthenticated)", "POST", "/v1/sys/init", "", `{}`, false},
	} {
		c.follower.set(func(n *fakeNode) { n.retrySafe = nil })
		doRaw(t, c.followerSrv.URL, tc.method, tc.path, tc.token, tc.body)
		var got []bool
		c.follower.set(func(n *fakeNode) { got = n.retrySafe })
		if len(got) != 1 || got[0] != tc.want {
			t.Errorf("%s: forwarded with retry-safe %v, want one forward with %v", tc.name, got, tc.want)
		}
	}
}
