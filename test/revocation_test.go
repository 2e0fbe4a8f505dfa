package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/test/inproc"
)

// rawClient sends Vault API requests over one keep-alive pool.
type rawClient struct {
	t    *testing.T
	http *http.Client
	root string
}

func newRawClient(t *testing.T, root string) *rawClient {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &rawClient{t: t, http: &http.Client{Transport: tr, Timeout: 10 * time.Second}, root: root}
}

// do sends body as JSON with token and returns the status and decoded body.
func (rc *rawClient) do(base, method, path, token string, body any) (int, map[string]any, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := rc.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out, nil
}

// create makes a token through base and returns its ID and accessor.
func (rc *rawClient) create(base string, req map[string]any) (id, accessor string) {
	rc.t.Helper()
	code, out, err := rc.do(base, "POST", "/v1/auth/token/create", rc.root, req)
	if err != nil || code != http.StatusOK {
		rc.t.Fatalf("create via %s: %d %v %v", base, code, out, err)
	}
	auth, _ := out["auth"].(map[string]any)
	id, _ = auth["client_token"].(string)
	accessor, _ = auth["accessor"].(string)
	if id == "" || accessor == "" {
		rc.t.Fatalf("create via %s: no token in %v", base, out)
	}
	return id, accessor
}

// lookup returns the status of a lookup of token on base (200 = valid).
func (rc *rawClient) lookup(base, token string) (int, error) {
	code, _, err := rc.do(base, "POST", "/v1/auth/token/lookup", rc.root, map[string]any{"token": token})
	return code, err
}

// hammer looks token up on every base from several goroutines at once and
// reports every answer other than 403 (invalid).
func (rc *rawClient) hammer(bases []string, token string, perNode int) []string {
	var mu sync.Mutex
	var bad []string
	var wg sync.WaitGroup
	for _, base := range bases {
		for g := 0; g < perNode; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, err := rc.lookup(base, token)
				if err != nil || code != http.StatusForbidden {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%s: status %d err %v", base, code, err))
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return bad
}

// waitApplied waits until every running node applied index.
func waitApplied(t *testing.T, c *inproc.Cluster, index uint64) {
	t.Helper()
	for i := range c.Nodes {
		n := c.Cluster(i)
		if n == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := n.AwaitIndex(ctx, index)
		cancel()
		if err != nil {
			t.Fatalf("node %d: index %d not applied: %v", i, index, err)
		}
	}
}

// TestRevokedTokenNeverValidAfterAck is the regression test for DESIGN.md
// "Reads": once a revoke returned 2xx, no node in contact with the leader
// validates the token, although followers answer reads from local state.
func TestRevokedTokenNeverValidAfterAck(t *testing.T) {
	c := inproc.New(t, 3)
	leader := c.LeaderIndex()
	followers := c.Followers()
	rc := newRawClient(t, c.RootToken)
	c.WaitFor(5*time.Second, "followers hold read leases", func() bool {
		for _, f := range followers {
			if c.Cluster(f).Health().Stale {
				return false
			}
		}
		return true
	})
	var bases []string
	for _, f := range followers {
		bases = append(bases, c.Addr(f))
	}
	const rounds = 200
	leased := 0
	for i := 0; i < rounds; i++ {
		id, accessor := rc.create(c.Addr(leader), map[string]any{"ttl": "1h"})
		// Every follower has the token: without the fence the revoke below
		// would still be invisible on a follower for a few milliseconds.
		waitApplied(t, c, c.Cluster(leader).AppliedIndex())
		if code, err := rc.lookup(bases[i%2], id); err != nil || code != http.StatusOK {
			t.Fatalf("round %d: fresh token not valid on a follower: %d %v", i, code, err)
		}

		var code int
		var err error
		switch i % 3 {
		case 0:
			code, _, err = rc.do(c.Addr(leader), "POST", "/v1/auth/token/revoke", c.RootToken, map[string]any{"token": id})
		case 1:
			code, _, err = rc.do(c.Addr(leader), "POST", "/v1/auth/token/revoke-accessor", c.RootToken, map[string]any{"accessor": accessor})
		default:
			code, _, err = rc.do(c.Addr(leader), "POST", "/v1/auth/token/revoke-orphan", c.RootToken, map[string]any{"token": id})
		}
		if err != nil || code != http.StatusNoContent {
			t.Fatalf("round %d: revoke: %d %v", i, code, err)
		}
		// The lookups all start after the revoke was acknowledged.
		if bad := rc.hammer(bases, id, 4); len(bad) > 0 {
			t.Fatalf("round %d: revoked token answered after the revoke returned: %v", i, bad)
		}
		if !c.Cluster(followers[0]).Health().Stale && !c.Cluster(followers[1]).Health().Stale {
			leased++
		}
	}
	t.Logf("%d of %d rounds had both followers serving from their own state", leased, rounds)
	if leased < rounds/2 {
		t.Fatalf("followers held read leases in only %d of %d rounds: the test did not exercise local reads", leased, rounds)
	}
}

// TestLastUseRevocationNeverValidAfterAck: the request that consumes a
// token's last use revokes it; once answered, no follower validates it.
func TestLastUseRevocationNeverValidAfterAck(t *testing.T) {
	c := inproc.New(t, 3)
	leader := c.LeaderIndex()
	followers := c.Followers()
	rc := newRawClient(t, c.RootToken)
	var bases []string
	for _, f := range followers {
		bases = append(bases, c.Addr(f))
	}
	for i := 0; i < 30; i++ {
		id, _ := rc.create(c.Addr(leader), map[string]any{"ttl": "1h", "num_uses": 1, "policies": []string{"default"}})
		waitApplied(t, c, c.Cluster(leader).AppliedIndex())
		// The one use, through a follower (it is forwarded: a use is a write).
		code, _, err := rc.do(bases[i%2], "GET", "/v1/auth/token/lookup-self", id, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("round %d: last use: %d %v", i, code, err)
		}
		if bad := rc.hammer(bases, id, 4); len(bad) > 0 {
			t.Fatalf("round %d: exhausted token answered after its last use: %v", i, bad)
		}
	}
}

// TestFollowerWithoutLeaseForwardsReads: a follower the leader cannot grant
// leases to delays revocations at most max-stale once, then stops serving
// reads from its own state (it forwards them to the leader).
func TestFollowerWithoutLeaseForwardsReads(t *testing.T) {
	c := inproc.New(t, 3)
	d := c.MaxStale
	leader := c.LeaderIndex()
	f := c.Followers()[0]
	rc := newRawClient(t, c.RootToken)
	c.WaitFor(5*time.Second, "follower holds a read lease", func() bool { return !c.Cluster(f).Health().Stale })

	id, _ := rc.create(c.Addr(leader), map[string]any{"ttl": "1h"})
	waitApplied(t, c, c.Cluster(leader).AppliedIndex())
	c.BlockLeases(f, true)
	blockedAt := time.Now()

	start := time.Now()
	code, _, err := rc.do(c.Addr(leader), "POST", "/v1/auth/token/revoke", c.RootToken, map[string]any{"token": id})
	took := time.Since(start)
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("revoke: %d %v", code, err)
	}
	t.Logf("revoke with a follower unreachable for grants took %s (max-stale %s)", took, d)
	if took > d+time.Second {
		t.Errorf("revoke took %s, more than max-stale %s (+1s slack)", took, d)
	}
	if code, err := rc.lookup(c.Addr(f), id); err != nil || code != http.StatusForbidden {
		t.Fatalf("revoked token on the follower: %d %v", code, err)
	}

	// Within max-stale of the last grant it could have received, the
	// follower stops serving from its own state.
	c.WaitFor(2*d, "follower stale without grants", func() bool {
		now := time.Now()
		stale := c.Cluster(f).Health().Stale
		if !stale && now.Sub(blockedAt) >= d {
			t.Fatalf("follower still holds a lease %s after grants stopped", now.Sub(blockedAt))
		}
		return stale
	})

	// Reads on it are answered by the leader: a token created a moment ago
	// is valid and a revoked one is not, and none answers 503.
	fresh, _ := rc.create(c.Addr(leader), map[string]any{"ttl": "1h"})
	if code, err := rc.lookup(c.Addr(f), fresh); err != nil || code != http.StatusOK {
		t.Fatalf("lookup through the stale follower: %d %v", code, err)
	}
	if code, err := rc.lookup(c.Addr(f), id); err != nil || code != http.StatusForbidden {
		t.Fatalf("revoked token through the stale follower: %d %v", code, err)
	}
	if !c.Cluster(f).Health().Stale {
		t.Fatal("follower got a lease while grants were blocked")
	}

	// Its lease bound has passed: revocations no longer wait for it.
	start = time.Now()
	code, _, err = rc.do(c.Addr(leader), "POST", "/v1/auth/token/revoke", c.RootToken, map[string]any{"token": fresh})
	took = time.Since(start)
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("second revoke: %d %v", code, err)
	}
	t.Logf("second revoke took %s", took)
	if took > d/2 {
		t.Errorf("second revoke took %s: the unreachable follower still delays fences", took)
	}

	c.BlockLeases(f, false)
	c.WaitFor(5*time.Second, "follower holds a lease again", func() bool { return !c.Cluster(f).Health().Stale })
}
