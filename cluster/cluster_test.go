package cluster

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

func TestSingleNode_bootstrapsAndRestoresAfterRestart(t *testing.T) {
	c := newCluster(t, 1)
	tn := c.nodes[0]
	n := tn.node.Load()

	var hashes []string
	for i := 0; i < 5; i++ {
		cmd, h := newToken(t, 0)
		propose(t, n, cmd)
		hashes = append(hashes, h)
	}
	// Snapshot so the restart goes through the adapter's Restore.
	if err := n.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	cmd, h := newToken(t, 0)
	_, last := propose(t, n, cmd)
	hashes = append(hashes, h)

	// Shutdown is idempotent.
	c.stop(tn)
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatalf("second shutdown: %v", err)
	}

	n = c.start(tn)
	c.waitLeader()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.AwaitIndex(ctx, last); err != nil {
		t.Fatalf("await %d after restart: %v", last, err)
	}
	for _, h := range hashes {
		if _, ok := n.State().Token(h); !ok {
			t.Fatalf("token %s lost across restart", h[:8])
		}
	}
	if id, key := n.State().ClusterIdent(); id == "" || len(key) != 32 {
		t.Fatalf("cluster ident not set: %q, %d-byte key", id, len(key))
	}
}

func TestNodeID_mismatchOnExistingDataDir(t *testing.T) {
	c := newCluster(t, 1)
	tn := c.nodes[0]
	c.stop(tn)
	cfg := c.config(tn)
	cfg.NodeID = "other"
	if n, err := New(cfg); err == nil {
		_ = n.Shutdown(context.Background())
		t.Fatal("New with a different node id on an existing data dir succeeded")
	} else if !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestThreeNodes(t *testing.T) {
	c := newCluster(t, 3)

	t.Run("bootstrap_via_gossip_elects_one_leader", func(t *testing.T) {
		leader := c.waitLeader()
		ln := leader.node.Load()
		servers, err := ln.RaftServers()
		if err != nil || len(servers) != 3 {
			t.Fatalf("raft servers = %v, %v", servers, err)
		}
		waitFor(t, 5*time.Second, "three alive members", func() bool {
			ms := ln.Members()
			if len(ms) != 3 {
				return false
			}
			for _, m := range ms {
				if m.Status != "alive" || m.RaftAddr == "" || m.HTTPAddr == "" || m.Version != "test" {
					return false
				}
			}
			return true
		})
		waitFor(t, 5*time.Second, "cluster ident on every node", func() bool {
			for _, tn := range c.running() {
				if id, _ := tn.node.Load().State().ClusterIdent(); id == "" {
					return false
				}
			}
			return true
		})
	})

	t.Run("propose_on_leader_applies_on_followers", func(t *testing.T) {
		cmd, h := newToken(t, 0)
		res, idx := c.proposeAny(cmd)
		if res.Token == nil || res.Token.Hash != h {
			t.Fatalf("result token = %+v", res.Token)
		}
		c.awaitAll(idx)
		for _, tn := range c.running() {
			n := tn.node.Load()
			if _, ok := n.State().Token(h); !ok {
				t.Fatalf("%s: token missing after AwaitIndex(%d)", tn.id, idx)
			}
			if n.AppliedIndex() < idx {
				t.Fatalf("%s: applied %d < %d", tn.id, n.AppliedIndex(), idx)
			}
		}
	})

	t.Run("propose_on_follower_is_not_leader", func(t *testing.T) {
		leader := c.waitLeader()
		cmd, _ := newToken(t, 0)
		for _, f := range c.followers(leader) {
			_, _, err := f.node.Load().Propose(context.Background(), cmd)
			if !isErr(err, status.ErrNotLeader) {
				t.Fatalf("%s: Propose err = %v, want ErrNotLeader", f.id, err)
			}
		}
	})

	t.Run("verify_leader", func(t *testing.T) {
		leader := c.waitLeader()
		ln := leader.node.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := ln.VerifyLeader(ctx); err != nil {
			t.Fatalf("leader: VerifyLeader = %v", err)
		}
		for _, f := range c.followers(leader) {
			if err := f.node.Load().VerifyLeader(ctx); !isErr(err, status.ErrNotLeader) {
				t.Fatalf("%s: VerifyLeader = %v, want ErrNotLeader", f.id, err)
			}
		}
	})

	t.Run("health", func(t *testing.T) {
		leader := c.waitLeader()
		ln := leader.node.Load()
		h := ln.Health()
		if !h.IsLeader || !h.ReadyForConsistentReads || h.ActiveTime.IsZero() || h.Stale {
			t.Fatalf("leader health = %+v", h)
		}
		for _, f := range c.followers(leader) {
			waitFor(t, 2*time.Second, "fresh follower", func() bool {
				h := f.node.Load().Health()
				return !h.IsLeader && h.KnownLeader && !h.Stale && h.LeaderHTTPAddr == leader.httpAddr &&
					h.LeaderRaftAddr == leader.raftAddr
			})
		}
	})

	t.Run("forward_to_leader", func(t *testing.T) {
		leader := c.waitLeader()
		f := c.followers(leader)[0]
		req, _ := http.NewRequest(http.MethodPost, "http://"+f.httpAddr+"/write?x=1", strings.NewReader("payload"))
		req.Header.Set("X-Vault-Token", "secret-header")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Served-By") != leader.id {
			t.Fatalf("status %d served by %q: %s", resp.StatusCode, resp.Header.Get("X-Served-By"), body)
		}
		want := "id=" + leader.id + " hop=" + f.id + " query=x=1 body=payload"
		if string(body) != want {
			t.Fatalf("body = %q, want %q", body, want)
		}

		// A request already forwarded once that lands on a follower is
		// refused, never forwarded again.
		req, _ = http.NewRequest(http.MethodPost, "http://"+f.httpAddr+"/write", nil)
		req.Header.Set(HopHeader, "someone")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), status.ErrNotLeader.Error()) {
			t.Fatalf("hop request on follower: %d %s", resp.StatusCode, body)
		}

		// On the leader the request is handled locally.
		resp, err = http.Post("http://"+leader.httpAddr+"/write", "text/plain", strings.NewReader("b"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "id=" + leader.id + " hop= query= body=b"; string(body) != want {
			t.Fatalf("leader body = %q, want %q", body, want)
		}
		http.DefaultClient.CloseIdleConnections()
	})

	t.Run("forward_to_unreachable_leader_fails_with_no_leader", func(t *testing.T) {
		leader := c.waitLeader()
		f := c.followers(leader)[0]
		// The leader's raft keeps running; only its HTTP API goes away.
		if err := leader.srv.Close(); err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(http.MethodPost, "/write", strings.NewReader("x"))
		rec := httptest.NewRecorder()
		forwarded, err := f.node.Load().ForwardToLeader(rec, req)
		// Usually the dial is refused (never sent: ErrNoLeader after the
		// retries); when the follower's pooled connection was closed by
		// the server just as the write went out, it reads EOF after
		// sending, and a write that may have been applied is not sent
		// again (ErrLeaderLost). Both answer 503 with Retry-After.
		if forwarded || !isErr(err, status.ErrNoLeader) && !isErr(err, status.ErrLeaderLost) {
			t.Fatalf("ForwardToLeader = %v, %v; want ErrNoLeader or ErrLeaderLost", forwarded, err)
		}
		if rec.Body.Len() != 0 {
			t.Fatalf("failed forward wrote %q", rec.Body.String())
		}
	})

	t.Run("reaper_removes_expired_tokens", func(t *testing.T) {
		cmd, h := newToken(t, time.Second)
		_, idx := c.proposeAny(cmd)
		c.awaitAll(idx)
		waitFor(t, 5*time.Second, "expired token reaped on every node", func() bool {
			for _, tn := range c.running() {
				if _, ok := tn.node.Load().State().Token(h); ok {
					return false
				}
			}
			return true
		})
	})
}

func TestLeaderShutdown_newLeaderAndNoCommittedTokenLost(t *testing.T) {
	c := newCluster(t, 3)
	var hashes []string
	var last uint64
	for i := 0; i < 20; i++ {
		cmd, h := newToken(t, 0)
		_, last = c.proposeAny(cmd)
		hashes = append(hashes, h)
	}
	old := c.waitLeader()
	c.stop(old)
	leader := c.waitLeader()
	if leader == old {
		t.Fatal("stopped node still leads")
	}
	for i := 0; i < 10; i++ {
		cmd, h := newToken(t, 0)
		_, last = c.proposeAny(cmd)
		hashes = append(hashes, h)
	}
	c.awaitAll(last)
	for _, tn := range c.running() {
		for _, h := range hashes {
			if _, ok := tn.node.Load().State().Token(h); !ok {
				t.Fatalf("%s: committed token %s lost", tn.id, h[:8])
			}
		}
	}
	// The old leader left gracefully: gossip says so and it is removed from
	// raft.
	c.waitVoters(2)
	waitFor(t, 5*time.Second, "old leader shown as left", func() bool {
		for _, m := range c.waitLeader().node.Load().Members() {
			if m.Name == old.id {
				return m.Status == "left"
			}
		}
		return false
	})
	if !old.stopped.removedFromRaft.Load() {
		t.Fatal("old leader shut down before its removal reached its log")
	}

	// Restarted on its data dir it catches up and becomes a voter again.
	n := c.start(old)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.AwaitIndex(ctx, last); err != nil {
		t.Fatalf("restarted node: await %d: %v (applied %d)", last, err, n.AppliedIndex())
	}
	for _, h := range hashes {
		if _, ok := n.State().Token(h); !ok {
			t.Fatalf("restarted node: token %s missing", h[:8])
		}
	}
	c.waitVoters(3)
}

func TestFollowerRestart_catchesUp(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	f := c.followers(leader)[0]
	stopped := f.node.Load()
	c.stop(f)
	var last uint64
	var hashes []string
	for i := 0; i < 10; i++ {
		cmd, h := newToken(t, 0)
		_, last = c.proposeAny(cmd)
		hashes = append(hashes, h)
	}
	if !stopped.removedFromRaft.Load() {
		t.Fatal("graceful shutdown returned before the node's removal reached its log")
	}
	n := c.start(f)
	if n.raft.State() == raft.Leader {
		t.Fatal("a removed node restarted as leader")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.AwaitIndex(ctx, last); err != nil {
		t.Fatalf("await %d: %v", last, err)
	}
	for _, h := range hashes {
		if _, ok := n.State().Token(h); !ok {
			t.Fatalf("token %s missing after catch-up", h[:8])
		}
	}
	c.waitVoters(3)
}

func TestFourthNode_joinsByGossipAndBecomesVoter(t *testing.T) {
	c := newCluster(t, 3)
	cmd, h := newToken(t, 0)
	_, idx := c.proposeAny(cmd)

	tn := c.add()
	c.waitVoters(4)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := tn.node.Load()
	if err := n.AwaitIndex(ctx, idx); err != nil {
		t.Fatalf("await: %v", err)
	}
	if _, ok := n.State().Token(h); !ok {
		t.Fatal("4th node misses a token written before it joined")
	}
	servers, err := c.waitLeader().node.Load().RaftServers()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range servers {
		if s.NodeID == tn.id && s.Voter && s.Address == n.RaftAddr() {
			found = true
		}
	}
	if !found {
		t.Fatalf("4th node not a voter: %+v", servers)
	}
}

func TestFailedNode_removedOnlyAfterGrace(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	ln := leader.node.Load()
	f := c.followers(leader)[0]
	crashed := time.Now()
	c.crash(f)

	// Gossip notices the failure well before the grace period ends; the
	// server must still be a voter then.
	waitFor(t, 5*time.Second, "failure detected by gossip", func() bool {
		for _, m := range ln.Members() {
			if m.Name == f.id {
				return m.Status == "dead"
			}
		}
		return false
	})
	if time.Since(crashed) < FastTiming().FailedGrace {
		if v := c.voters(); v != 3 {
			t.Fatalf("failed node removed before the grace period: %d voters", v)
		}
	}
	c.waitVoters(2)
	if time.Since(crashed) < FastTiming().FailedGrace {
		t.Fatalf("removed after %s, grace is %s", time.Since(crashed), FastTiming().FailedGrace)
	}
	// Writes continue on the two remaining voters.
	cmd, _ := newToken(t, 0)
	c.proposeAny(cmd)
}

func TestKeepsQuorum(t *testing.T) {
	for _, tc := range []struct {
		voters, alive int
		voter, want   bool
	}{
		{3, 2, true, true},   // 2 remain, both alive
		{3, 1, true, false},  // 2 remain, only 1 alive
		{5, 3, true, true},   // 4 remain, 3 alive >= 3
		{5, 2, true, false},  // 4 remain, 2 alive < 3
		{4, 2, true, true},   // 3 remain, 2 alive >= 2
		{2, 1, true, true},   // 1 remains, alive
		{1, 1, true, false},  // never empty the configuration
		{3, 2, false, true},  // non-voter: 3 remain, 2 alive
		{3, 1, false, false}, // non-voter: 3 remain, 1 alive
	} {
		if got := keepsQuorum(tc.voters, tc.alive, tc.voter); got != tc.want {
			t.Errorf("keepsQuorum(%d, %d, %v) = %v, want %v", tc.voters, tc.alive, tc.voter, got, tc.want)
		}
	}
}

func TestProposeTimesOutWithoutQuorum(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	for _, f := range c.followers(leader) {
		c.crash(f)
	}
	cmd, _ := newToken(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := leader.node.Load().Propose(ctx, cmd)
	if err == nil {
		t.Fatal("Propose succeeded without a quorum")
	}
	if !isErr(err, status.ErrNotLeader) && !isErr(err, status.ErrTimeout) {
		t.Fatalf("Propose err = %v", err)
	}
	if time.Since(start) > 3*time.Second {
		t.Fatalf("Propose took %s", time.Since(start))
	}
}

func TestDecodeMeta(t *testing.T) {
	for _, tc := range []struct {
		name, meta string
		ok         bool
	}{
		{"a", `{"id":"a","raft_addr":"127.0.0.1:1","http_addr":"127.0.0.1:2"}`, true},
		{"a", `{"id":"b","raft_addr":"127.0.0.1:1"}`, false},
		{"a", `{"id":"a","raft_addr":"nope"}`, false},
		{"a", `{"id":"a","raft_addr":"127.0.0.1:1","http_addr":"x"}`, false},
		{"a", `not json`, false},
		{"a", ``, false},
	} {
		_, err := decodeMeta(tc.name, []byte(tc.meta))
		if (err == nil) != tc.ok {
			t.Errorf("decodeMeta(%q, %q) err = %v, want ok=%v", tc.name, tc.meta, err, tc.ok)
		}
	}
}

var _ fsm.Reader = (*fsm.FSM)(nil)

func TestLeaderCrash_newLeaderAndRestartCatchesUp(t *testing.T) {
	c := newCluster(t, 3)
	var hashes []string
	for i := 0; i < 10; i++ {
		cmd, h := newToken(t, 0)
		c.proposeAny(cmd)
		hashes = append(hashes, h)
	}
	old := c.waitLeader()
	c.crash(old)
	leader := c.waitLeader()
	if leader == old {
		t.Fatal("crashed node still leads")
	}
	cmd, h := newToken(t, 0)
	_, last := c.proposeAny(cmd)
	hashes = append(hashes, h)

	// Restarted on its data dir and addresses before the failed-member grace
	// period ends: it rejoins and catches up.
	n := c.start(old)
	c.awaitAll(last)
	for _, h := range hashes {
		if _, ok := n.State().Token(h); !ok {
			t.Fatalf("restarted node: token %s missing", h[:8])
		}
	}
	c.waitVoters(3)
	waitFor(t, 5*time.Second, "restarted node alive in gossip", func() bool {
		for _, m := range c.waitLeader().node.Load().Members() {
			if m.Name == old.id {
				return m.Status == "alive"
			}
		}
		return false
	})
}

func TestEncryptedGossip_bootstraps(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	c := newClusterKey(t, 3, key)
	cmd, h := newToken(t, 0)
	_, idx := c.proposeAny(cmd)
	c.awaitAll(idx)
	for _, tn := range c.running() {
		if _, ok := tn.node.Load().State().Token(h); !ok {
			t.Fatalf("%s: token missing", tn.id)
		}
	}
}

func TestNoQuorum_forwardAndHealthFailFast(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	n := leader.node.Load()
	for _, f := range c.followers(leader) {
		c.crash(f)
	}
	waitFor(t, 5*time.Second, "leader steps down without a quorum", func() bool {
		return !n.Health().IsLeader
	})
	waitFor(t, 5*time.Second, "node reports itself stale", func() bool {
		return n.Health().Stale
	})
	if err := n.VerifyLeader(context.Background()); !isErr(err, status.ErrNotLeader) {
		t.Fatalf("VerifyLeader = %v, want ErrNotLeader", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/write", strings.NewReader("x"))
	rec := httptest.NewRecorder()
	start := time.Now()
	forwarded, err := n.ForwardToLeader(rec, req)
	if forwarded || !isErr(err, status.ErrNoLeader) {
		t.Fatalf("ForwardToLeader = %v, %v; want ErrNoLeader", forwarded, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("ForwardToLeader took %s", d)
	}
	if b, _ := io.ReadAll(req.Body); string(b) != "x" {
		t.Fatalf("request body not re-readable after a failed forward: %q", b)
	}
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("failed forward wrote a response: %d %q", rec.Code, rec.Body.String())
	}
}

func TestShutdown_proposeFailsCleanly(t *testing.T) {
	c := newCluster(t, 1)
	n := c.nodes[0].node.Load()
	c.stop(c.nodes[0])
	cmd, _ := newToken(t, 0)
	if _, _, err := n.Propose(context.Background(), cmd); !isErr(err, status.ErrShuttingDown) {
		t.Fatalf("Propose after shutdown = %v, want ErrShuttingDown", err)
	}
	if err := n.VerifyLeader(context.Background()); !isErr(err, status.ErrShuttingDown) {
		t.Fatalf("VerifyLeader after shutdown = %v", err)
	}
}
