package test

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/test/inproc"
)

func createToken(t *testing.T, client *vaultapi.Client, req *vaultapi.TokenCreateRequest) *vaultapi.Secret {
	t.Helper()
	secret, err := client.Auth().Token().Create(req)
	if err != nil {
		t.Fatalf("create token via %s: %v", client.Address(), err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		t.Fatalf("create token via %s: empty auth in %+v", client.Address(), secret)
	}
	return secret
}

// lookupStatus returns the HTTP status of a lookup of token on the client's node
// (200 when valid).
func lookupStatus(t *testing.T, client *vaultapi.Client, token string) int {
	t.Helper()
	_, err := client.Auth().Token().Lookup(token)
	if err == nil {
		return http.StatusOK
	}
	var respErr *vaultapi.ResponseError
	if errors.As(err, &respErr) {
		return respErr.StatusCode
	}
	t.Fatalf("lookup via %s: %v", client.Address(), err)
	return 0
}

func TestClusterWritesThroughEveryNodeAndReadsOnEvery(t *testing.T) {
	c := inproc.New(t, 3)
	var tokens []string
	for i := range c.Nodes {
		secret := createToken(t, c.Client(i), &vaultapi.TokenCreateRequest{Policies: []string{"web"}, TTL: "1h"})
		tokens = append(tokens, secret.Auth.ClientToken)
	}
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	for i := range c.Nodes {
		for _, tok := range tokens {
			if got := lookupStatus(t, c.Client(i), tok); got != http.StatusOK {
				t.Errorf("node %d: lookup of a created token = %d, want 200", i, got)
			}
		}
	}
}

func TestClusterReadYourWritesWithRecordedState(t *testing.T) {
	c := inproc.New(t, 3)
	leader := c.LeaderIndex()
	follower := c.Followers()[0]
	for round := 0; round < 20; round++ {
		var state string
		writer := c.Client(leader).WithResponseCallbacks(vaultapi.RecordState(&state))
		secret := createToken(t, writer, &vaultapi.TokenCreateRequest{TTL: "1h"})
		if state == "" {
			t.Fatal("create response carried no X-Vault-Index")
		}
		if _, err := vaultapi.ParseReplicationState(state, nil); err != nil {
			t.Fatalf("X-Vault-Index %q does not parse: %v", state, err)
		}
		reader := c.Client(follower).WithRequestCallbacks(vaultapi.RequireState(state))
		reader.SetMaxRetries(3) // a 412 is retried by the client, as with Vault
		if _, err := reader.Auth().Token().Lookup(secret.Auth.ClientToken); err != nil {
			t.Fatalf("round %d: read-your-writes lookup on a follower: %v", round, err)
		}
	}
}

func TestClusterRevokeCascadesOnEveryNode(t *testing.T) {
	c := inproc.New(t, 3)
	parent := createToken(t, c.Client(0), &vaultapi.TokenCreateRequest{Policies: []string{"root"}, TTL: "1h"})
	parentClient := c.Client(1)
	parentClient.SetToken(parent.Auth.ClientToken)
	child := createToken(t, parentClient, &vaultapi.TokenCreateRequest{TTL: "1h"})
	childClient := c.Client(2)
	childClient.SetToken(child.Auth.ClientToken)
	grandchild := createToken(t, childClient, &vaultapi.TokenCreateRequest{TTL: "1h"})

	var state string
	revoker := c.Client(c.Followers()[0]).WithResponseCallbacks(vaultapi.RecordState(&state))
	if err := revoker.Auth().Token().RevokeTree(parent.Auth.ClientToken); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	for i := range c.Nodes {
		reader := c.Client(i).WithRequestCallbacks(vaultapi.RequireState(state))
		reader.SetMaxRetries(3)
		for name, tok := range map[string]string{"parent": parent.Auth.ClientToken, "child": child.Auth.ClientToken, "grandchild": grandchild.Auth.ClientToken} {
			if got := lookupStatus(t, reader, tok); got != http.StatusForbidden {
				t.Errorf("node %d: %s after cascade revoke: lookup = %d, want 403", i, name, got)
			}
		}
	}
}

func TestClusterLeaderStopLosesNothing(t *testing.T) {
	c := inproc.New(t, 3)
	var live, revoked []string
	for i := 0; i < 30; i++ {
		secret := createToken(t, c.Client(i%3), &vaultapi.TokenCreateRequest{TTL: "1h"})
		if i%3 == 0 {
			if err := c.Client((i + 1) % 3).Auth().Token().RevokeTree(secret.Auth.ClientToken); err != nil {
				t.Fatalf("revoke: %v", err)
			}
			revoked = append(revoked, secret.Auth.ClientToken)
			continue
		}
		live = append(live, secret.Auth.ClientToken)
	}
	old := c.LeaderIndex()
	c.Stop(old)
	c.WaitForLeader()
	// Writes continue through every surviving node.
	for i := range c.Nodes {
		if !c.Running(i) {
			continue
		}
		live = append(live, createToken(t, c.Client(i), &vaultapi.TokenCreateRequest{TTL: "1h"}).Auth.ClientToken)
	}
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	for i := range c.Nodes {
		if !c.Running(i) {
			continue
		}
		for _, tok := range live {
			if got := lookupStatus(t, c.Client(i), tok); got != http.StatusOK {
				t.Errorf("node %d: acknowledged token lost after leader stop: lookup = %d", i, got)
			}
		}
		for _, tok := range revoked {
			if got := lookupStatus(t, c.Client(i), tok); got != http.StatusForbidden {
				t.Errorf("node %d: revoked token valid again after leader stop: lookup = %d", i, got)
			}
		}
	}
}

func TestClusterRestartedNodeCatchesUp(t *testing.T) {
	c := inproc.New(t, 3)
	f := c.Followers()[0]
	c.Stop(f)
	var tokens []string
	for i := 0; i < 10; i++ {
		tokens = append(tokens, createToken(t, c.Client(c.LeaderIndex()), &vaultapi.TokenCreateRequest{TTL: "1h"}).Auth.ClientToken)
	}
	target := c.Cluster(c.LeaderIndex()).AppliedIndex()
	c.Restart(f)
	c.WaitForIndex(target)
	for _, tok := range tokens {
		if got := lookupStatus(t, c.Client(f), tok); got != http.StatusOK {
			t.Errorf("restarted node: lookup of a token written while it was down = %d", got)
		}
	}
}

func TestClusterFourthNodeJoinsAsVoter(t *testing.T) {
	c := inproc.New(t, 3)
	tok := createToken(t, c.Client(0), &vaultapi.TokenCreateRequest{TTL: "1h"}).Auth.ClientToken
	i := c.AddNode()
	c.WaitForVoters(4)
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	if got := lookupStatus(t, c.Client(i), tok); got != http.StatusOK {
		t.Errorf("new node: lookup of an existing token = %d", got)
	}
	createToken(t, c.Client(i), &vaultapi.TokenCreateRequest{TTL: "1h"})
}

func TestClusterStoresNoPlaintextToken(t *testing.T) {
	c := inproc.New(t, 3)
	tokens := []string{c.RootToken}
	for i := 0; i < 50; i++ {
		secret := createToken(t, c.Client(i%3), &vaultapi.TokenCreateRequest{TTL: "1h", Policies: []string{"root"}})
		tokens = append(tokens, secret.Auth.ClientToken)
		if i%5 == 0 {
			child := c.Client(i % 3)
			child.SetToken(secret.Auth.ClientToken)
			tokens = append(tokens, createToken(t, child, &vaultapi.TokenCreateRequest{TTL: "1h"}).Auth.ClientToken)
		}
		if i%7 == 0 {
			if _, err := c.Client((i+1)%3).Auth().Token().Renew(secret.Auth.ClientToken, 60); err != nil {
				t.Fatalf("renew: %v", err)
			}
		}
		if i%9 == 0 {
			if err := c.Client((i + 2) % 3).Auth().Token().RevokeTree(secret.Auth.ClientToken); err != nil {
				t.Fatalf("revoke: %v", err)
			}
		}
	}
	for i := range c.Nodes {
		if err := c.Cluster(i).Snapshot(); err != nil {
			t.Fatalf("snapshot node %d: %v", i, err)
		}
	}
	c.StopAll()
	logs := c.LogOutput()
	for _, n := range c.Nodes {
		files := 0
		err := filepath.Walk(n.DataDir, func(path string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return err
			}
			files++
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, tok := range tokens {
				body := strings.TrimPrefix(tok, "hvs.")
				if strings.Contains(string(data), body) {
					t.Errorf("%s contains an issued token", path)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if files == 0 {
			t.Fatalf("data dir %s holds no files: nothing was searched", n.DataDir)
		}
	}
	for _, tok := range tokens {
		if strings.Contains(logs, strings.TrimPrefix(tok, "hvs.")) {
			t.Errorf("the logs contain an issued token")
		}
	}
	if !strings.Contains(logs, "raft") {
		t.Fatal("no log output captured: nothing was searched")
	}
	fmt.Fprintf(os.Stderr, "searched %d tokens\n", len(tokens))
}

func TestClusterExpiredTokensAreReaped(t *testing.T) {
	c := inproc.New(t, 3)
	secret := createToken(t, c.Client(0), &vaultapi.TokenCreateRequest{TTL: "1s"})
	leader := c.Cluster(c.LeaderIndex())
	c.WaitFor(10*time.Second, "the reaper to remove the expired token", func() bool {
		return leader.State().Len() == 1 // only the root token is left
	})
	if got := lookupStatus(t, c.Client(1), secret.Auth.ClientToken); got != http.StatusForbidden {
		t.Errorf("expired token lookup = %d, want 403", got)
	}
}
