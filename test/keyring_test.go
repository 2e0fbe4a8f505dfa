package test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/test/inproc"
)

func gossipKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

// keyringCluster is a 3-node cluster with encrypted gossip. FailedGrace is
// long so that a stopped node is a member that is away, not one the leader
// gives up on while the test looks at it. Raft runs with the library's
// default timers (1 s): these tests are about gossip, and 200 ms raft
// heartbeats miss on an overloaded machine, causing elections (and 503s)
// that have nothing to do with the keyring.
func keyringCluster(t *testing.T, key []byte) *inproc.Cluster {
	timing := cluster.FastTiming()
	timing.FailedGrace = time.Minute
	timing.HeartbeatTimeout, timing.ElectionTimeout, timing.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
	return inproc.NewWith(t, 3, inproc.Options{ClusterKey: key, Timing: timing})
}

// retryable reports a 503 (no leader, election, fence timeout): the
// class of error a client retries.
func retryable(err error) bool { return err != nil && strings.Contains(err.Error(), "Code: 503") }

// keyringStep runs install, use or remove on node i and returns the data.
// A 503 is retried as an operator would; every step is idempotent, except
// that a remove whose first try committed answers "not installed".
func keyringStep(t *testing.T, c *inproc.Cluster, i int, op string, key []byte) map[string]any {
	t.Helper()
	var s *vaultapi.Secret
	var err error
	for try := 0; try < 5; try++ {
		s, err = c.Client(i).Logical().Write("sys/keyring/gossip/"+op, map[string]any{"key": base64.StdEncoding.EncodeToString(key)})
		if try > 0 && op == "remove" && err != nil && strings.Contains(err.Error(), "key is not installed") {
			s, err = c.Client(i).Logical().Read("sys/keyring/gossip")
		}
		if !retryable(err) {
			break
		}
		time.Sleep(200 * time.Millisecond) // operator retry interval
	}
	if err != nil {
		t.Fatalf("keyring %s via node %d: %v", op, i, err)
	}
	if len(s.Warnings) > 0 {
		t.Fatalf("keyring %s via node %d warned: %v", op, i, s.Warnings)
	}
	return s.Data
}

// liveMembers counts the members node i sees alive or suspect (not dead).
func liveMembers(c *inproc.Cluster, i int) int {
	node := c.Cluster(i)
	if node == nil {
		return 0
	}
	n := 0
	for _, m := range node.Members() {
		if m.Status == "alive" || m.Status == "suspect" {
			n++
		}
	}
	return n
}

// localKeysAre reports whether node i gossips with exactly keys.
func localKeysAre(c *inproc.Cluster, i int, keys ...[]byte) bool {
	got := c.Cluster(i).GossipKeyring().Local
	if len(got) != len(keys) {
		return false
	}
	for j := range keys {
		if !bytes.Equal(got[j], keys[j]) {
			return false
		}
	}
	return true
}

// load creates tokens and reads (lookup-self of the root token)
// round-robin over the nodes until stopped; it counts requests and
// failures.
type load struct {
	ok, failed, retried atomic.Int64
	mu                  sync.Mutex
	firstErrs           []string
	stop                chan struct{}
	once                sync.Once
	wg                  sync.WaitGroup
}

func startLoad(t *testing.T, c *inproc.Cluster, nodes []int) *load {
	l := &load{stop: make(chan struct{})}
	// Stops the workers when the test fails before finish.
	t.Cleanup(l.halt)
	clients := make([]*vaultapi.Client, len(nodes))
	for j, i := range nodes {
		clients[j] = c.Client(i)
	}
	for w := 0; w < 2; w++ {
		l.wg.Add(1)
		go func(w int) {
			defer l.wg.Done()
			for k := w; ; k++ {
				select {
				case <-l.stop:
					return
				default:
				}
				// A write through each node (followers forward it) and a
				// read served by each node itself.
				// A 503 (an election on the loaded machine) is retried once,
				// as RELIABILITY.md T9 lets a client do; a second failure
				// counts.
				cl := clients[k%len(clients)]
				_, err := cl.Auth().Token().Create(&vaultapi.TokenCreateRequest{TTL: "1h"})
				if retryable(err) {
					l.retried.Add(1)
					time.Sleep(100 * time.Millisecond) // client retry interval
					_, err = cl.Auth().Token().Create(&vaultapi.TokenCreateRequest{TTL: "1h"})
				}
				if err == nil {
					rd := clients[(k+1)%len(clients)]
					if _, err = rd.Auth().Token().LookupSelf(); retryable(err) {
						l.retried.Add(1)
						time.Sleep(100 * time.Millisecond) // client retry interval
						_, err = rd.Auth().Token().LookupSelf()
					}
				}
				if err != nil {
					l.failed.Add(1)
					l.mu.Lock()
					if len(l.firstErrs) < 5 {
						l.firstErrs = append(l.firstErrs, err.Error())
					}
					l.mu.Unlock()
					continue
				}
				l.ok.Add(1)
			}
		}(w)
	}
	return l
}

func (l *load) halt() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

func (l *load) finish(t *testing.T) {
	t.Helper()
	l.halt()
	if l.failed.Load() > 0 || l.ok.Load() == 0 {
		t.Fatalf("requests during the rotation: %d ok, %d failed; first errors: %s", l.ok.Load(), l.failed.Load(), strings.Join(l.firstErrs, " | "))
	}
	t.Logf("requests during the rotation: %d ok, 0 failed (%d retried after a 503)", l.ok.Load(), l.retried.Load())
}

func TestGossipKeyringRotationWithoutOutage(t *testing.T) {
	k1, k2 := gossipKey(t), gossipKey(t)
	c := keyringCluster(t, k1)
	for i := range c.Nodes {
		c.WaitFor(10*time.Second, fmt.Sprintf("node %d to see 3 members", i), func() bool { return liveMembers(c, i) == 3 })
	}

	// Membership watcher: no node may lose sight of another while keys change.
	var lost atomic.Value
	watchStop := make(chan struct{})
	var watchWG sync.WaitGroup
	var stopOnce sync.Once
	stopWatch := func() { stopOnce.Do(func() { close(watchStop) }); watchWG.Wait() }
	t.Cleanup(stopWatch) // runs before the cluster's cleanup (LIFO)
	watchWG.Add(1)
	go func() {
		defer watchWG.Done()
		for {
			select {
			case <-watchStop:
				return
			case <-time.After(20 * time.Millisecond): // sampling interval
			}
			for i := range c.Nodes {
				if n := liveMembers(c, i); n != 3 {
					lost.CompareAndSwap(nil, fmt.Sprintf("node %d saw %d live members", i, n))
				}
			}
		}
	}()
	l := startLoad(t, c, []int{0, 1, 2})

	leader := c.LeaderIndex()
	follower := c.Followers()[0]
	keyringStep(t, c, follower, "install", k2) // forwarded to the leader
	for i := range c.Nodes {
		if !localKeysAre(c, i, k1, k2) {
			t.Fatalf("after install node %d has %d keys", i, len(c.Cluster(i).GossipKeyring().Local))
		}
	}
	keyringStep(t, c, leader, "use", k2)
	for i := range c.Nodes {
		if !localKeysAre(c, i, k2, k1) {
			t.Fatalf("after use node %d does not encrypt with the new key", i)
		}
	}
	data := keyringStep(t, c, follower, "remove", k1)
	keys := data["keys"].([]any)
	if len(keys) != 1 || keys[0].(map[string]any)["key"] != base64.StdEncoding.EncodeToString(k2) {
		t.Fatalf("keyring after remove: %v", data)
	}
	for i := range c.Nodes {
		if !localKeysAre(c, i, k2) {
			t.Fatalf("after remove node %d still holds the old key", i)
		}
	}
	// Let gossip run a few probe rounds on the new key alone.
	time.Sleep(time.Second) // observation window for the watcher and the load
	l.finish(t)
	stopWatch()
	if v := lost.Load(); v != nil {
		t.Fatalf("gossip membership broke during the rotation: %s", v)
	}
	c.WaitForVoters(3)

	// Every step is checked: the primary cannot go, bad keys are 400s.
	for _, tc := range []struct {
		op   string
		key  string
		want string
	}{
		{"remove", base64.StdEncoding.EncodeToString(k2), "cannot remove the primary gossip key"},
		{"install", "AAAA", "key must be 16, 24 or 32 bytes"},
		{"use", base64.StdEncoding.EncodeToString(k1), "key is not installed"},
	} {
		_, err := c.Client(leader).Logical().Write("sys/keyring/gossip/"+tc.op, map[string]any{"key": tc.key})
		if err == nil || !strings.Contains(err.Error(), "Code: 400") || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%s: err = %v, want 400 %q", tc.op, err, tc.want)
		}
	}

	// A restarted node uses the rotated keyring, not its -cluster-key (k1,
	// which no member accepts any more).
	c.Stop(follower)
	c.Restart(follower)
	for i := range c.Nodes {
		c.WaitFor(15*time.Second, fmt.Sprintf("node %d to see 3 members after the restart", i), func() bool { return liveMembers(c, i) == 3 })
	}
	if !localKeysAre(c, follower, k2) {
		t.Fatal("the restarted node does not gossip with the current keyring")
	}
	c.WaitForVoters(3)
	createEventually(t, c, follower)
}

// createEventually creates a token through node i, retrying a 503 (a
// leadership change after a member came back) as a client would.
func createEventually(t *testing.T, c *inproc.Cluster, i int) {
	t.Helper()
	var err error
	c.WaitFor(10*time.Second, fmt.Sprintf("a create through node %d", i), func() bool {
		_, err = c.Client(i).Auth().Token().Create(&vaultapi.TokenCreateRequest{TTL: "1h"})
		if err != nil && !strings.Contains(err.Error(), "Code: 503") {
			t.Fatalf("create through node %d: %v", i, err)
		}
		return err == nil
	})
}

func TestGossipKeyringReachesNodeThatWasDown(t *testing.T) {
	k1, k2 := gossipKey(t), gossipKey(t)
	c := keyringCluster(t, k1)
	leader := c.LeaderIndex()
	away := c.Followers()[0]
	c.WaitFor(10*time.Second, "the away node to know its peers", func() bool { return liveMembers(c, away) == 3 })
	// The keyring loop saves the peers it sees every ReconcileInterval.
	time.Sleep(300 * time.Millisecond) // a few reconcile intervals (100 ms)
	c.Stop(away)

	keyringStep(t, c, leader, "install", k2)
	keyringStep(t, c, leader, "use", k2)
	keyringStep(t, c, leader, "remove", k1)

	// It comes back knowing only k1: it must fetch the keyring (or replay
	// it from raft) and rejoin.
	c.Restart(away)
	for i := range c.Nodes {
		c.WaitFor(20*time.Second, fmt.Sprintf("node %d to see 3 members", i), func() bool { return liveMembers(c, i) == 3 })
	}
	if !localKeysAre(c, away, k2) {
		t.Fatal("the node that was away does not gossip with the current keyring")
	}
	c.WaitForVoters(3)
	createEventually(t, c, away)
}

// S8(a): a node without the gossip key, or with a wrong one, cannot join
// gossip and never becomes a raft voter; a node with another token hash key
// joins gossip but never becomes a voter either.
func TestGossipWrongKeyCannotJoin(t *testing.T) {
	k1 := gossipKey(t)
	c := keyringCluster(t, k1)
	wrong := c.AddNodeWith(inproc.NodeOptions{ClusterKey: gossipKey(t)})
	none := c.AddNodeWith(inproc.NodeOptions{ClusterKey: []byte{}})
	otherHash := c.AddNodeWith(inproc.NodeOptions{TokenHashKey: gossipKey(t)})
	c.WaitFor(10*time.Second, "the node with another token hash key in gossip", func() bool {
		l := c.LeaderIndex()
		return l >= 0 && liveMembers(c, l) == 4
	})
	// Watch for a while: joins are retried every 200 ms, the leader
	// reconciles every 100 ms.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		leader := c.LeaderIndex()
		servers, err := []status.RaftServer(nil), error(nil)
		if leader >= 0 {
			servers, err = c.Cluster(leader).RaftServers()
		}
		if leader < 0 || err != nil {
			// An election under load: nothing to sample this round.
			time.Sleep(50 * time.Millisecond) // sampling interval
			continue
		}
		for _, s := range servers {
			if s.NodeID == c.Nodes[wrong].ID || s.NodeID == c.Nodes[none].ID || s.NodeID == c.Nodes[otherHash].ID {
				t.Fatalf("%s became a raft server (voter=%v)", s.NodeID, s.Voter)
			}
		}
		for _, m := range c.Cluster(leader).Members() {
			if (m.Name == c.Nodes[wrong].ID || m.Name == c.Nodes[none].ID) && m.Status == "alive" {
				t.Fatalf("%s joined gossip", m.Name)
			}
		}
		for _, i := range []int{wrong, none} {
			if n := liveMembers(c, i); n != 1 {
				t.Fatalf("%s sees %d members", c.Nodes[i].ID, n)
			}
		}
		time.Sleep(50 * time.Millisecond) // sampling interval
	}
	if !strings.Contains(c.LogOutput(), "member uses a different token hash key; it will not become a raft voter") {
		t.Fatal("the leader did not report the member with another token hash key")
	}
}
