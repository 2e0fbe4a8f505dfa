package test

import (
	"net/http"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/test/inproc"
)

// TestMTLSClusterWritesViaFollowersAndSurvivesLeaderStop: a 3-node cluster
// with cluster TLS elects, forwards writes from followers over the cluster
// port, serves reads everywhere, and recovers when the leader stops.
func TestMTLSClusterWritesViaFollowersAndSurvivesLeaderStop(t *testing.T) {
	c := inproc.NewWith(t, 3, inproc.Options{ClusterTLS: true})
	var tokens []string
	for _, f := range c.Followers() {
		for k := 0; k < 5; k++ {
			tokens = append(tokens, createToken(t, c.Client(f), &vaultapi.TokenCreateRequest{TTL: "1h"}).Auth.ClientToken)
		}
	}
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	for i := range c.Nodes {
		for _, tok := range tokens {
			if got := lookupStatus(t, c.Client(i), tok); got != http.StatusOK {
				t.Fatalf("node %d: lookup of a token created via a follower = %d", i, got)
			}
		}
	}
	old := c.LeaderIndex()
	c.Stop(old)
	c.WaitForLeader()
	for i := range c.Nodes {
		if c.Running(i) {
			tokens = append(tokens, createToken(t, c.Client(i), &vaultapi.TokenCreateRequest{TTL: "1h"}).Auth.ClientToken)
		}
	}
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	for i := range c.Nodes {
		if !c.Running(i) {
			continue
		}
		for _, tok := range tokens {
			if got := lookupStatus(t, c.Client(i), tok); got != http.StatusOK {
				t.Errorf("node %d after leader stop: lookup = %d", i, got)
			}
		}
	}
}
