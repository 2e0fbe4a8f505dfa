package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokend/tokend/fsm"
)

// leaseD is the MaxStale the test clusters run with (helper_test.go).
const leaseD = time.Second

// serveGrant hands a raw body to a node's lease endpoint and returns the
// status and decoded answer.
func serveGrant(n *Node, method, path, body string) (int, leaseAck) {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	rec := httptest.NewRecorder()
	n.ServeInternal(rec, req)
	var ack leaseAck
	_ = json.Unmarshal(rec.Body.Bytes(), &ack)
	return rec.Code, ack
}

func grantBody(t *testing.T, g leaseGrant, key []byte) string {
	t.Helper()
	g.MAC = g.sign(key)
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// checkFenced asserts the revocation fence's promise right after a revoke at
// index returned: every other node has applied index or holds no lease.
func checkFenced(t *testing.T, c *tcluster, leader *tnode, index uint64) {
	t.Helper()
	for _, f := range c.followers(leader) {
		n := f.node.Load()
		// Read Health before the applied index: a node that applied the
		// index in between is fine either way.
		h := n.Health()
		if !h.Stale && n.AppliedIndex() < index {
			t.Errorf("%s holds a read lease (%s left) but has applied %d < %d after the revoke returned",
				f.id, h.LeaseRemaining, n.AppliedIndex(), index)
		}
	}
}

func TestReadLeases(t *testing.T) {
	c := newCluster(t, 3)
	leader := c.waitLeader()
	ln := leader.node.Load()
	followers := c.followers(leader)
	waitFor(t, 5*time.Second, "cluster key on every node", func() bool {
		for _, tn := range c.running() {
			if _, key := tn.node.Load().State().ClusterIdent(); len(key) == 0 {
				return false
			}
		}
		return true
	})
	_, key := ln.State().ClusterIdent()

	t.Run("followers_hold_leases", func(t *testing.T) {
		for _, f := range followers {
			waitFor(t, 3*time.Second, f.id+" holds a lease", func() bool {
				h := f.node.Load().Health()
				return !h.Stale && h.LeaseRemaining > 0
			})
			if h := f.node.Load().Health(); h.LeaseRemaining > leaseD {
				t.Errorf("%s: lease of %s exceeds max-stale %s", f.id, h.LeaseRemaining, leaseD)
			}
		}
		if h := ln.Health(); h.Stale || h.LeaseRemaining != 0 {
			t.Errorf("leader health = %+v", h)
		}
	})

	t.Run("grant_handler", func(t *testing.T) {
		f := followers[0].node.Load()
		other := followers[1].id
		term := f.raft.CurrentTerm()
		valid := leaseGrant{LeaderID: ln.id, To: f.id, Term: term, Index: 1, DurationNS: int64(leaseD), Seq: 1}
		badMAC := valid
		badMAC.MAC = strings.Repeat("ab", 32)
		badMACBody, _ := json.Marshal(badMAC)
		wrongTo, wrongLeader, wrongTerm := valid, valid, valid
		wrongTo.To = other
		wrongLeader.LeaderID = other
		wrongTerm.Term = term + 1
		otherKey := bytes.Repeat([]byte{7}, 32)
		cases := []struct {
			name, method, path, body string
			want                     int
		}{
			{"unknown_path", "POST", InternalPathPrefix + "nope", grantBody(t, valid, key), http.StatusNotFound},
			{"wrong_method", "GET", LeasePath, "", http.StatusMethodNotAllowed},
			{"malformed_json", "POST", LeasePath, `{"leader_id":`, http.StatusBadRequest},
			{"not_an_object", "POST", LeasePath, `[1,2]`, http.StatusBadRequest},
			{"unknown_field", "POST", LeasePath, `{"leader_id":"x","mac":"00","duration_ns":1,"extra":1}`, http.StatusBadRequest},
			{"missing_mac", "POST", LeasePath, `{"leader_id":"x","duration_ns":1}`, http.StatusBadRequest},
			{"bad_mac", "POST", LeasePath, string(badMACBody), http.StatusForbidden},
			{"other_key", "POST", LeasePath, grantBody(t, valid, otherKey), http.StatusForbidden},
			{"meant_for_another_node", "POST", LeasePath, grantBody(t, wrongTo, key), http.StatusForbidden},
			{"not_the_leader", "POST", LeasePath, grantBody(t, wrongLeader, key), http.StatusConflict},
			{"wrong_term", "POST", LeasePath, grantBody(t, wrongTerm, key), http.StatusConflict},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				if code, _ := serveGrant(f, tc.method, tc.path, tc.body); code != tc.want {
					t.Fatalf("status = %d, want %d", code, tc.want)
				}
			})
		}

		// From here the real leader's grants cannot reach f (the test
		// handler refuses them; ServeInternal is called directly below), so
		// f's lease state is the test's alone once the current one lapsed.
		followers[0].blockLeases.Store(true)
		defer followers[0].blockLeases.Store(false)
		waitFor(t, 3*leaseD, f.id+" stale without grants", func() bool { return f.Health().Stale })

		// A verified grant without an echo answers with the follower's
		// clock but does not extend a lease.
		code, ack := serveGrant(f, "POST", LeasePath, grantBody(t, valid, key))
		if code != http.StatusOK || ack.NodeID != f.id || ack.Seq != 1 || ack.Incarnation != f.incarnation ||
			ack.AppliedIndex < 1 || ack.Lease || ack.MAC != ack.sign(key) {
			t.Fatalf("valid grant: %d %+v", code, ack)
		}
		if h := f.Health(); !h.Stale {
			t.Fatalf("a grant without an echo gave a lease: %+v", h)
		}
		// An echo from another incarnation (a restarted process) or from
		// the future never extends a lease; a grant whose index is not
		// applied within D/2 neither.
		for i, bad := range []leaseGrant{
			{EchoIncarnation: "other", EchoStamp: ack.Stamp},
			{EchoIncarnation: ack.Incarnation, EchoStamp: ack.Stamp + int64(time.Hour)},
			{EchoIncarnation: ack.Incarnation, EchoStamp: ack.Stamp, Index: 1 << 40},
		} {
			bad.LeaderID, bad.To, bad.Term, bad.DurationNS, bad.Seq = ln.id, f.id, term, int64(leaseD), uint64(10+i)
			if bad.Index == 0 {
				bad.Index = 1
			}
			code, a := serveGrant(f, "POST", LeasePath, grantBody(t, bad, key))
			if code != http.StatusOK || a.Lease || !f.Health().Stale {
				t.Fatalf("bad grant %d extended the lease: %d %+v", i, code, a)
			}
		}
		// Echoing its own clock reading does: the lease runs D from it.
		echoed := valid
		echoed.Seq, echoed.EchoIncarnation, echoed.EchoStamp = 2, ack.Incarnation, ack.Stamp
		code, ack2 := serveGrant(f, "POST", LeasePath, grantBody(t, echoed, key))
		h := f.Health()
		if code != http.StatusOK || !ack2.Lease || ack2.Stamp < ack.Stamp || h.Stale || h.LeaseRemaining > leaseD {
			t.Fatalf("echoed grant: %d %+v, health %+v", code, ack2, h)
		}
	})

	t.Run("fence_waits_for_unreachable_follower_at_most_D", func(t *testing.T) {
		blocked := followers[1]
		create, hash := newToken(t, 0)
		propose(t, ln, create)
		blocked.blockLeases.Store(true)
		defer blocked.blockLeases.Store(false)
		blockedAt := time.Now()

		start := time.Now()
		_, idx := propose(t, ln, fsm.RevokeTree{Hash: hash, Now: time.Now().UnixNano()})
		took := time.Since(start)
		checkFenced(t, c, leader, idx)
		if took > leaseD+500*time.Millisecond {
			t.Errorf("revoke with an unreachable follower took %s, want <= max-stale %s (+ slack)", took, leaseD)
		}
		t.Logf("first revoke with an unreachable follower took %s", took)

		// The unreachable follower's lease lapses within D of the last
		// grant it could have received, and it stays stale.
		for {
			now := time.Now()
			h := blocked.node.Load().Health()
			if now.Sub(blockedAt) >= leaseD && !h.Stale {
				t.Fatalf("%s still holds a lease (%s) %s after grants stopped", blocked.id, h.LeaseRemaining, now.Sub(blockedAt))
			}
			if now.Sub(blockedAt) > leaseD+100*time.Millisecond {
				break
			}
			time.Sleep(10 * time.Millisecond) // sampling the lease over time, not synchronising
		}

		// Its bound has passed: later revocations do not wait for it.
		create, hash = newToken(t, 0)
		propose(t, ln, create)
		start = time.Now()
		_, idx = propose(t, ln, fsm.RevokeTree{Hash: hash, Now: time.Now().UnixNano()})
		took = time.Since(start)
		checkFenced(t, c, leader, idx)
		if took > leaseD/2 {
			t.Errorf("revoke after the unreachable follower's lease lapsed took %s", took)
		}
		t.Logf("second revoke took %s", took)

		// Reachable again: it gets a lease back.
		blocked.blockLeases.Store(false)
		waitFor(t, 3*time.Second, blocked.id+" holds a lease again", func() bool {
			return !blocked.node.Load().Health().Stale
		})
	})

	t.Run("revoke_of_unknown_token_is_fenced_too", func(t *testing.T) {
		// A second revoke of a token whose first revoke is still fencing
		// finds nothing; it must not return before the first is visible.
		_, idx := propose(t, ln, fsm.RevokeTree{Hash: testHasher.Hash("never-created"), Now: time.Now().UnixNano()})
		checkFenced(t, c, leader, idx)
	})

	t.Run("fence_times_out_with_ctx", func(t *testing.T) {
		blocked := followers[0]
		create, hash := newToken(t, 0)
		propose(t, ln, create)
		blocked.blockLeases.Store(true)
		defer blocked.blockLeases.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		res, idx, err := ln.Propose(ctx, fsm.RevokeTree{Hash: hash, Now: time.Now().UnixNano()})
		switch {
		case err == nil:
			// The follower may have acknowledged the index in a grant that
			// was in flight when the test blocked it.
			checkFenced(t, c, leader, idx)
		case !strings.Contains(err.Error(), "committed") || idx == 0 || res.Revoked != 1:
			t.Fatalf("Propose = %+v, %d, %v; want the committed result and an unconfirmed error", res, idx, err)
		}
	})

	t.Run("follower_without_leader_becomes_stale_within_D", func(t *testing.T) {
		f := followers[0]
		c.crash(followers[1])
		stoppedAt := time.Now()
		c.crash(leader)
		for {
			now := time.Now()
			h := f.node.Load().Health()
			if now.Sub(stoppedAt) >= leaseD && !h.Stale {
				t.Fatalf("%s not stale %s after its leader stopped: %+v", f.id, now.Sub(stoppedAt), h)
			}
			if now.Sub(stoppedAt) > leaseD+100*time.Millisecond {
				break
			}
			time.Sleep(10 * time.Millisecond) // sampling the lease over time, not synchronising
		}
	})
}

func TestNew_rejectsMaxStaleNotAboveLeaderLease(t *testing.T) {
	_, err := New(Config{NodeID: "a", DataDir: t.TempDir(), TokenHashKey: testHashKey, MaxStale: 100 * time.Millisecond, Timing: FastTiming()})
	if err == nil || !strings.Contains(err.Error(), "max-stale (100ms) must be longer than the raft leader lease timeout (150ms)") {
		t.Fatalf("New = %v", err)
	}
}

func TestNeedsFence(t *testing.T) {
	final := &fsm.Token{NumUses: -1}
	left := &fsm.Token{NumUses: 2}
	cases := []struct {
		c    fsm.Command
		res  fsm.Result
		want bool
	}{
		{fsm.RevokeTree{}, fsm.Result{Revoked: 3}, true},
		{fsm.RevokeTree{}, fsm.Result{}, true},
		{fsm.RevokeOrphan{}, fsm.Result{Revoked: 1}, true},
		{fsm.RevokeAccessor{}, fsm.Result{Err: fsm.ErrTokenNotFound}, true},
		{fsm.UseToken{}, fsm.Result{Token: final, Revoked: 1}, true},
		{fsm.UseToken{}, fsm.Result{Token: left}, false},
		{fsm.UseToken{}, fsm.Result{Err: fsm.ErrTokenNotFound}, false},
		{fsm.CreateToken{}, fsm.Result{}, false},
		{fsm.ReapExpired{}, fsm.Result{Revoked: 5}, false},
		{fsm.RenewToken{}, fsm.Result{}, false},
	}
	for _, tc := range cases {
		if got := needsFence(tc.c, tc.res); got != tc.want {
			t.Errorf("needsFence(%T, %+v) = %v, want %v", tc.c, tc.res, got, tc.want)
		}
	}
}
