package test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/test/inproc"
)

// hopHeader duplicates httpapi.HopHeader: a request carrying it that a
// follower would have to forward is answered 503 instead, so a 200 proves
// the follower served it itself.
const hopHeader = "X-Tokend-Forwarded"

func createBatch(t *testing.T, client *vaultapi.Client, req *vaultapi.TokenCreateRequest) string {
	t.Helper()
	req.Type = "batch"
	s := createToken(t, client, req)
	if s.Auth.Accessor != "" || s.Auth.Renewable || !strings.HasPrefix(s.Auth.ClientToken, "hvb.") {
		t.Fatalf("batch create via %s: auth %+v", client.Address(), s.Auth)
	}
	return s.Auth.ClientToken
}

func batchClientAs(c *inproc.Cluster, i int, token string) *vaultapi.Client {
	client := c.Client(i)
	client.SetToken(token)
	return client
}

// lookupSelfCode is the status of lookup-self with token on base.
func lookupSelfCode(t *testing.T, rc *rawClient, base, token string) int {
	t.Helper()
	code, _, err := rc.do(base, "GET", "/v1/auth/token/lookup-self", token, nil)
	if err != nil {
		t.Fatalf("lookup-self via %s: %v", base, err)
	}
	return code
}

func TestClusterBatchTokens(t *testing.T) {
	c := inproc.New(t, 3)
	rc := newRawClient(t, c.RootToken)
	leader := c.LeaderIndex()
	followers := c.Followers()
	f := followers[0]
	bases := []string{c.Addr(0), c.Addr(1), c.Addr(2)}

	// A service parent allowed to create tokens (root policy), on the leader.
	parent := createToken(t, c.Client(leader), &vaultapi.TokenCreateRequest{Policies: []string{"root"}, TTL: "1h"}).Auth.ClientToken
	// The first batch token of the cluster: the follower forwards it, the
	// leader seeds the keyring.
	seed := createBatch(t, batchClientAs(c, f, parent), &vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"})
	c.WaitForIndex(c.Cluster(leader).AppliedIndex())

	// From now on a batch create on a follower is local: with the hop
	// header set, a forwarded request would be a 503. (A follower without a
	// read lease forwards reads and batch creates alike; wait for it.)
	c.WaitFor(5*time.Second, "a read lease on the follower", func() bool { return !c.Cluster(f).Health().Stale })
	code, out, err := rc.do(c.Addr(f), "POST", "/v1/auth/token/create", parent, map[string]any{"type": "batch", "policies": []string{"default"}, "ttl": "1h"})
	if err != nil || code != http.StatusOK {
		t.Fatalf("batch create on follower: %d %v %v", code, out, err)
	}
	req, _ := http.NewRequest("POST", c.Addr(f)+"/v1/auth/token/create", strings.NewReader(`{"type":"batch","policies":["default"]}`))
	req.Header.Set("X-Vault-Token", parent)
	req.Header.Set(hopHeader, "test")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"token_type":"batch"`)) {
		t.Fatalf("batch create with hop header on a follower: %d %s", resp.StatusCode, body)
	}
	child := createBatch(t, batchClientAs(c, followers[1], parent), &vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"})
	orphan := createBatch(t, batchClientAs(c, f, parent), &vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h", NoParent: true})

	// Validated on every node, by the token itself and by root.
	for i := range c.Nodes {
		for name, tok := range map[string]string{"seed": seed, "child": child, "orphan": orphan} {
			s, err := batchClientAs(c, i, tok).Auth().Token().LookupSelf()
			if err != nil {
				t.Fatalf("node %d: %s lookup-self: %v", i, name, err)
			}
			if s.Data["type"] != "batch" || s.Data["accessor"] != "" || s.Data["id"] != tok {
				t.Fatalf("node %d: %s lookup-self data %v", i, name, s.Data)
			}
			if got := lookupStatus(t, c.Client(i), tok); got != http.StatusOK {
				t.Fatalf("node %d: %s lookup by root = %d", i, name, got)
			}
		}
	}
	// Renew and revoke are refused everywhere.
	if _, err := batchClientAs(c, f, child).Auth().Token().RenewSelf(0); err == nil || !strings.Contains(err.Error(), "batch tokens cannot be renewed") {
		t.Fatalf("renew-self: %v", err)
	}
	if err := c.Client(f).Auth().Token().RevokeTree(child); err == nil || !strings.Contains(err.Error(), "batch tokens cannot be revoked") {
		t.Fatalf("revoke: %v", err)
	}

	// Tampering: every byte flipped in turn is a 403 on every node.
	for i := 0; i < len(child); i++ {
		b := []byte(child)
		b[i] ^= 0x01
		base := bases[i%len(bases)]
		if got := lookupSelfCode(t, rc, base, string(b)); got != http.StatusForbidden {
			t.Fatalf("byte %d flipped: %d via %s", i, got, base)
		}
	}

	// Revoking the parent (on a follower, forwarded) invalidates its batch
	// children on every node as soon as the revoke is acknowledged; the
	// orphan lives on.
	if err := c.Client(followers[1]).Auth().Token().RevokeTree(parent); err != nil {
		t.Fatalf("revoke parent: %v", err)
	}
	for _, base := range bases {
		if got := lookupSelfCode(t, rc, base, child); got != http.StatusForbidden {
			t.Fatalf("child after parent revoke via %s: %d", base, got)
		}
		if got := lookupSelfCode(t, rc, base, seed); got != http.StatusForbidden {
			t.Fatalf("seed after parent revoke via %s: %d", base, got)
		}
		if got := lookupSelfCode(t, rc, base, orphan); got != http.StatusOK {
			t.Fatalf("orphan after parent revoke via %s: %d", base, got)
		}
	}
}

func TestClusterBatchKeyRotation(t *testing.T) {
	c := inproc.New(t, 3)
	rc := newRawClient(t, c.RootToken)
	f := c.Followers()[0]
	before := createBatch(t, c.Client(f), &vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"})
	ks, err := c.Client(f).Sys().KeyStatus()
	if err != nil || ks.Term != 1 {
		t.Fatalf("key-status after seeding: %+v %v", ks, err)
	}
	// Rotate through a follower (forwarded to the leader).
	if err := c.Client(f).Sys().Rotate(); err != nil {
		t.Fatalf("rotate: %v", err)
	}
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	for i := range c.Nodes {
		ks, err := c.Client(i).Sys().KeyStatus()
		if err != nil || ks.Term != 2 {
			t.Fatalf("node %d: key-status after rotate: %+v %v", i, ks, err)
		}
	}
	after := createBatch(t, c.Client(f), &vaultapi.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"})
	for i := range c.Nodes {
		for name, tok := range map[string]string{"old key": before, "new key": after} {
			if got := lookupSelfCode(t, rc, c.Addr(i), tok); got != http.StatusOK {
				t.Fatalf("node %d: %s token after rotate: %d", i, name, got)
			}
		}
	}
	// Trace-level logs of every node never show a batch token.
	for _, tok := range []string{before, after} {
		if strings.Contains(c.LogOutput(), tok) {
			t.Fatal("batch token in logs")
		}
	}
}

// BenchmarkFollowerBatchCreate: batch creates on one follower over HTTP
// (local, no raft write). Compare with BenchmarkClusterCreate (service
// tokens, every create a raft write on the leader).
func BenchmarkFollowerBatchCreate(b *testing.B) {
	c := inproc.NewWith(b, 3, inproc.Options{Timing: cluster.DefaultTiming()})
	leaderClient := c.Client(c.LeaderIndex())
	if _, err := leaderClient.Auth().Token().Create(&vaultapi.TokenCreateRequest{Type: "batch", Policies: []string{"default"}, TTL: "1h"}); err != nil {
		b.Fatal(err)
	}
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	url := c.Addr(c.Followers()[0]) + "/v1/auth/token/create"
	runPosts(b, url, c.RootToken, `{"type":"batch","policies":["default"],"ttl":"1h"}`)
}

// BenchmarkFollowerServiceCreate: service creates sent to the same
// follower (forwarded to the leader, one raft write each).
func BenchmarkFollowerServiceCreate(b *testing.B) {
	c := inproc.NewWith(b, 3, inproc.Options{Timing: cluster.DefaultTiming()})
	url := c.Addr(c.Followers()[0]) + "/v1/auth/token/create"
	runPosts(b, url, c.RootToken, `{"policies":["default"],"ttl":"1h"}`)
}

// BenchmarkFollowerBatchLookupSelf: batch-token validation on a follower;
// compare with BenchmarkFollowerLookupSelf.
func BenchmarkFollowerBatchLookupSelf(b *testing.B) {
	c := inproc.NewWith(b, 3, inproc.Options{Timing: cluster.DefaultTiming()})
	secret, err := c.Client(0).Auth().Token().Create(&vaultapi.TokenCreateRequest{Type: "batch", Policies: []string{"default"}, TTL: "24h"})
	if err != nil {
		b.Fatal(err)
	}
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	runGets(b, c.Addr(c.Followers()[0])+"/v1/auth/token/lookup-self", secret.Auth.ClientToken)
}

func runPosts(b *testing.B, url, token, body string) {
	client := benchHTTPClient()
	b.SetParallelism(parallelism())
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
			req.Header.Set("X-Vault-Token", token)
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			out, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d: %s", resp.StatusCode, out)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}
