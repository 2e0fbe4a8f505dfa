package test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tokend/tokend/test/procs"
)

// TestProcessLeaderKill runs three real tokend processes with the production
// raft timing, kill -9s the leader repeatedly and measures the time from the
// kill until a create through a surviving node succeeds again. It checks that
// no acknowledged token is lost. TOKEND_FAILOVER_TRIES sets the number of
// kills (default 2, so `make test` stays short; the closing-note figure uses 10).
func TestProcessLeaderKill(t *testing.T) {
	tries := 2
	if v := os.Getenv("TOKEND_FAILOVER_TRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("TOKEND_FAILOVER_TRIES=%q: want a positive integer", v)
		}
		tries = n
	}
	leaderKill(t, tries, procs.New(t, 3))
}

// TestProcessLeaderKillClusterTLS is TestProcessLeaderKill with the nodes
// talking over mutual TLS, certificates made by tokend operator gen-certs,
// and the HTTP API served over TLS with the same certificates: client TLS
// on a multi-node cluster (refused before cluster TLS existed, since
// forwarding spoke plain HTTP to the leader's TLS listener). First it
// checks that the real processes refuse plaintext on the raft port (S8c)
// and hop-marked requests on the client port.
func TestProcessLeaderKillClusterTLS(t *testing.T) {
	c := procs.NewWith(t, 3, procs.Options{ClusterTLS: true, ClientTLS: true})
	for i, n := range c.Nodes {
		conn, err := net.DialTimeout("tcp", n.RaftAddr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write([]byte("GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n"))
		b, _ := io.ReadAll(conn)
		conn.Close()
		if len(b) > 0 && b[0] != 0x15 { // at most a TLS alert record
			t.Errorf("node %d: plaintext on the raft port answered %q", i, b)
		}
		status, body := c.Do(i, http.MethodPost, "/v1/auth/token/create", c.RootToken, `{"ttl":"1h"}`, "X-Tokend-Forwarded", "node9")
		if status != http.StatusForbidden {
			t.Errorf("node %d: hop-marked request on the client port: %d %s, want 403", i, status, body)
		}
	}
	leaderKill(t, 2, c)
}

// leaderKill kills the leader tries times and checks writes resume and no
// acknowledged token is lost.
func leaderKill(t *testing.T, tries int, c *procs.Cluster) {
	var tokens []string
	create := func(i int) (string, bool) {
		status, body := c.Do(i, http.MethodPost, "/v1/auth/token/create", c.RootToken, `{"ttl":"1h"}`)
		if status != http.StatusOK {
			return "", false
		}
		var resp struct {
			Auth struct {
				ClientToken string `json:"client_token"`
			} `json:"auth"`
		}
		if err := json.Unmarshal(body, &resp); err != nil || resp.Auth.ClientToken == "" {
			t.Fatalf("create answered 200 with body %s", body)
		}
		return resp.Auth.ClientToken, true
	}
	for i := range c.Nodes {
		tok, ok := create(i)
		if !ok {
			t.Fatalf("create through node %d failed before any fault", i)
		}
		tokens = append(tokens, tok)
	}

	var recoveries []time.Duration
	for try := 0; try < tries; try++ {
		leader := c.WaitForLeader(30 * time.Second)
		c.Kill(leader)
		killed := time.Now()
		survivor := (leader + 1) % len(c.Nodes)
		for {
			if tok, ok := create(survivor); ok {
				recoveries = append(recoveries, time.Since(killed))
				tokens = append(tokens, tok)
				break
			}
			if time.Since(killed) > 30*time.Second {
				t.Fatalf("try %d: no write accepted within 30s of killing the leader", try)
			}
			survivor = (survivor + 1) % len(c.Nodes)
			if survivor == leader {
				survivor = (survivor + 1) % len(c.Nodes)
			}
			time.Sleep(10 * time.Millisecond) // retry interval of a client
		}
		c.Start(leader)
		waitHealthy(t, c, leader)
	}

	// Every acknowledged token is valid on every node.
	for i := range c.Nodes {
		for _, tok := range tokens {
			body := `{"token":"` + tok + `"}`
			deadline := time.Now().Add(10 * time.Second)
			for {
				status, resp := c.Do(i, http.MethodPost, "/v1/auth/token/lookup", c.RootToken, body)
				if status == http.StatusOK {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("node %d: acknowledged token lost: lookup %d %s", i, status, resp)
				}
				time.Sleep(50 * time.Millisecond) // a restarted node may still be catching up
			}
		}
	}
	slices.Sort(recoveries)
	t.Logf("leader kill -> write accepted, %d tries: min %s median %s worst %s all %v",
		len(recoveries), recoveries[0], recoveries[len(recoveries)/2], recoveries[len(recoveries)-1], recoveries)
}

func waitHealthy(t *testing.T, c *procs.Cluster, i int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if status, _ := c.Do(i, http.MethodGet, "/v1/sys/health?standbyok=true", "", ""); status == http.StatusOK {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	t.Fatalf("node %d not healthy within 30s of restart", i)
}
