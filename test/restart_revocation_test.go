package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/test/procs"
)

// TestRevocationSurvivesFullRestart is RELIABILITY.md S9 (CVE-2022-41316
// class): revoke a parent with 50 descendants, kill -9 every node of a
// 3-node real-process cluster, restart them all. From the first request a
// node serves, all 51 tokens are invalid on every node in both read modes,
// and a node that has not loaded its state answers 503, never 403 or 200
// from an empty or partial state: a control token that was never revoked
// must never get a 403.
func TestRevocationSurvivesFullRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("real-process cluster restart: not in testing.Short mode")
	}
	// Bad-auth limiting off: this test presents revoked tokens hundreds of
	// times from one address on purpose.
	c := procs.NewWithArgs(t, 3, "-rate-limit-bad-auth", "0")
	leader := c.WaitForLeader(30 * time.Second)
	create := func(caller, body string) string {
		t.Helper()
		for try := 0; ; try++ {
			status, resp := c.Do(leader, http.MethodPost, "/v1/auth/token/create", caller, body)
			if status == http.StatusOK {
				var out struct {
					Auth struct {
						ClientToken string `json:"client_token"`
					} `json:"auth"`
				}
				if err := json.Unmarshal(resp, &out); err != nil || out.Auth.ClientToken == "" {
					t.Fatalf("create: %s", resp)
				}
				return out.Auth.ClientToken
			}
			if try > 50 {
				t.Fatalf("create: %d %s", status, resp)
			}
			time.Sleep(100 * time.Millisecond) // leader change: retry
			leader = c.WaitForLeader(30 * time.Second)
		}
	}
	parent := create(c.RootToken, `{"ttl":"2h"}`)
	control := create(c.RootToken, `{"ttl":"2h"}`)
	tree := []string{parent}
	// 50 descendants: 10 children, each with 4 grandchildren.
	for i := 0; i < 10; i++ {
		child := create(parent, `{"ttl":"1h"}`)
		tree = append(tree, child)
		for j := 0; j < 4; j++ {
			tree = append(tree, create(child, `{"ttl":"30m"}`))
		}
	}
	if len(tree) != 51 {
		t.Fatalf("tree of %d tokens", len(tree))
	}
	// Every node has them all before the revoke.
	for i := range c.Nodes {
		waitValid(t, c, i, tree[len(tree)-1])
	}
	status, resp := c.Do(leader, http.MethodPost, "/v1/auth/token/revoke", c.RootToken, `{"token":"`+parent+`"}`)
	if status != http.StatusNoContent {
		t.Fatalf("revoke parent: %d %s", status, resp)
	}
	for i := range c.Nodes {
		c.Kill(i)
	}
	restart := time.Now()
	for i := range c.Nodes {
		c.Start(i)
	}

	// Probe every node, in both modes, from the moment it accepts
	// connections, until each node has answered the control token 200 and
	// every tree token 403 in both modes.
	type mode struct {
		name, query string
	}
	modes := []mode{{"default", ""}, {"consistent", "?consistent"}}
	var mu sync.Mutex
	var violations []string
	counts := map[string]int{}
	var wg sync.WaitGroup
	for i := range c.Nodes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			deadline := restart.Add(90 * time.Second)
			done := map[string]bool{}
			var firstServed time.Duration
			for round := 0; time.Now().Before(deadline); round++ {
				all := true
				for _, m := range modes {
					for k, tok := range append([]string{control}, tree...) {
						key := fmt.Sprintf("%s/%d", m.name, k)
						if done[key] {
							continue
						}
						st, body := c.Do(i, http.MethodGet, "/v1/auth/token/lookup-self"+m.query, tok, "")
						mu.Lock()
						counts[fmt.Sprint(st)]++
						mu.Unlock()
						if st != 0 && st != http.StatusServiceUnavailable && firstServed == 0 {
							firstServed = time.Since(restart)
						}
						switch {
						case st == 0 || st == http.StatusServiceUnavailable:
							all = false // not up or not loaded yet: the right answer
						case k == 0 && st == http.StatusOK:
							done[key] = true
						case k > 0 && st == http.StatusForbidden:
							done[key] = true
						default:
							mu.Lock()
							what := "revoked token"
							if k == 0 {
								what = "control token (never revoked)"
							}
							violations = append(violations, fmt.Sprintf("node %d %s mode, %s #%d, %v after restart: %d %.120s", i, m.name, what, k, time.Since(restart).Round(time.Millisecond), st, body))
							mu.Unlock()
							all = false
						}
					}
				}
				if all {
					t.Logf("node %d: first request served %v after the restart; all 51 revoked tokens 403 and the control token 200 in both modes after %v",
						i, firstServed.Round(time.Millisecond), time.Since(restart).Round(time.Millisecond))
					return
				}
				time.Sleep(20 * time.Millisecond) // probe interval
			}
			mu.Lock()
			violations = append(violations, fmt.Sprintf("node %d: not every token settled within 90 s of the restart", i))
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	t.Logf("answers while probing, by status (0 = connection refused): %v", counts)
	for _, v := range violations {
		t.Error(v)
	}
}

// waitValid waits until tok validates on node i.
func waitValid(t *testing.T, c *procs.Cluster, i int, tok string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, body := c.Do(i, http.MethodGet, "/v1/auth/token/lookup-self", tok, "")
		if st == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d: token not valid: %d %s", i, st, body)
		}
		time.Sleep(50 * time.Millisecond) // replication
	}
}
