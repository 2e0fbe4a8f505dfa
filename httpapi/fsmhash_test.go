package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

type fsmHashAnswer struct {
	Data struct {
		Hash         string `json:"hash"`
		AppliedIndex uint64 `json:"applied_index"`
		Tokens       int    `json:"tokens"`
	} `json:"data"`
}

func getFSMHash(t *testing.T, url, token string, hdr ...string) (int, fsmHashAnswer, string) {
	t.Helper()
	code, _, body := doRaw(t, url, "GET", "/v1/sys/storage/fsm-hash", token, "", hdr...)
	var a fsmHashAnswer
	if code == 200 {
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
	}
	return code, a, body
}

// TestFSMHash: the leader and a follower that applied the same log report
// the same digest at the same index, the follower answers itself (never
// forwarded, not even for X-Vault-Forward or ?consistent), a follower behind
// reports its own lower index and another hash, and only root or sudo on
// the path may read it.
func TestFSMHash(t *testing.T) {
	c := newCluster2(t)
	c.create(c.root, &vault.TokenCreateRequest{Policies: []string{"default"}})
	c.follower.replicate(0)
	code, lead, body := getFSMHash(t, c.srv.URL, c.root)
	if code != 200 || !strings.HasPrefix(lead.Data.Hash, "sha256:") || len(lead.Data.Hash) != 71 ||
		lead.Data.AppliedIndex != c.node.State().Digest().AppliedIndex || lead.Data.Tokens != c.node.State().Len() {
		t.Fatalf("leader: %d %s", code, body)
	}
	forwards := func() int {
		c.follower.mu.Lock()
		defer c.follower.mu.Unlock()
		return c.follower.forwards
	}
	for _, hdr := range [][]string{nil, {"X-Vault-Forward", "active-node"}} {
		code, fol, body := getFSMHash(t, c.followerSrv.URL, c.root, hdr...)
		if code != 200 || fol.Data != lead.Data || forwards() != 0 {
			t.Fatalf("follower %v: %d forwards=%d %s, leader %+v", hdr, code, forwards(), body, lead.Data)
		}
	}
	// The follower falls behind by one create: its own index and hash.
	c.create(c.root, &vault.TokenCreateRequest{Policies: []string{"default"}})
	code, behind, body := getFSMHash(t, c.followerSrv.URL, c.root)
	if code != 200 || behind.Data != lead.Data {
		t.Fatalf("follower before replicating: %d %s", code, body)
	}
	_, lead2, _ := getFSMHash(t, c.srv.URL, c.root)
	if lead2.Data.Hash == lead.Data.Hash || lead2.Data.AppliedIndex <= lead.Data.AppliedIndex || lead2.Data.Tokens != lead.Data.Tokens+1 {
		t.Fatalf("after a create: %+v then %+v", lead.Data, lead2.Data)
	}
	c.follower.replicate(0)
	if _, fol, _ := getFSMHash(t, c.followerSrv.URL, c.root); fol.Data != lead2.Data {
		t.Fatalf("follower caught up: %+v, leader %+v", fol.Data, lead2.Data)
	}
	c.follower.set(func(n *fakeNode) { n.stale = true })
	if code, _, body := getFSMHash(t, c.followerSrv.URL, c.root); code != 503 || forwards() != 0 {
		t.Fatalf("stale follower: %d forwards=%d %s", code, forwards(), body)
	}
	c.follower.set(func(n *fakeNode) { n.stale = false })

	// Root or sudo only.
	for name, policy := range map[string]string{
		"read": `path "sys/storage/fsm-hash" { capabilities = ["read"] }`,
		"sudo": `path "sys/storage/fsm-hash" { capabilities = ["read", "sudo"] }`,
	} {
		if code, _, body := c.do("PUT", "/v1/sys/policies/acl/hash-"+name, c.root, `{"policy":`+jsonString(policy)+`}`); code != 204 {
			t.Fatalf("write policy: %d %s", code, body)
		}
	}
	def := c.create(c.root, &vault.TokenCreateRequest{Policies: []string{"default"}}).Auth.ClientToken
	readOnly := c.create(c.root, &vault.TokenCreateRequest{Policies: []string{"hash-read"}}).Auth.ClientToken
	sudo := c.create(c.root, &vault.TokenCreateRequest{Policies: []string{"hash-sudo"}}).Auth.ClientToken
	for _, tok := range []string{"", def, readOnly, "hvs.not-a-token"} {
		if code, _, body := getFSMHash(t, c.srv.URL, tok); code != 403 || !strings.HasPrefix(body, `{"errors":[`) {
			t.Fatalf("without root/sudo: %d %s", code, body)
		}
	}
	if code, _, body := getFSMHash(t, c.srv.URL, sudo); code != 200 {
		t.Fatalf("sudo: %d %s", code, body)
	}
}
