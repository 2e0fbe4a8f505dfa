package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// logSink writes log lines to t.Log until the test's cleanup has finished.
type logSink struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
	buf  strings.Builder // everything written, for output
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if !s.done {
		s.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// output returns every line logged so far.
func (s *logSink) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *logSink) close() {
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
}

// tnode is one slot of a test cluster: a data dir, an HTTP server that
// outlives node restarts, and the current node (nil while stopped).
type tnode struct {
	id         string
	dir        string
	raftAddr   string
	gossipAddr string
	httpAddr   string
	srv        *http.Server
	node       atomic.Pointer[Node]
	// stopped is the node most recently stopped or crashed in this slot.
	stopped *Node
	// blockLeases makes the slot's HTTP server refuse lease grants, as if
	// the leader could not reach this node's HTTP API.
	blockLeases atomic.Bool
	// hold makes the slot's handler, when it leads, keep /hold requests
	// until the client goes away, reporting each on held.
	hold atomic.Bool
	held chan struct{}
}

// tcluster is an in-package cluster of real nodes on 127.0.0.1 port 0.
type tcluster struct {
	t      testing.TB
	sink   *logSink
	logger hclog.Logger
	expect int
	key    []byte // gossip encryption key, nil for none
	nodes  []*tnode
	// ca, when set, issues every slot a cluster certificate (cluster TLS).
	ca *CA
	// tlsFor, when set, overrides a slot's cluster identity (nil = none).
	tlsFor map[string]*ClusterTLS
	// wrap, when set, is every node's Config.WrapPeerConn, told the
	// dialling node's id.
	wrap func(from string, c net.Conn) net.Conn
}

// newCluster starts n nodes with BootstrapExpect n and waits for a leader
// and a full raft configuration.
func newCluster(t testing.TB, n int) *tcluster {
	t.Helper()
	return newClusterKey(t, n, nil)
}

// newClusterKey is newCluster with gossip encrypted by key.
func newClusterKey(t testing.TB, n int, key []byte) *tcluster {
	t.Helper()
	return newClusterWith(t, n, key, nil)
}

// newClusterWith is newCluster with gossip key and cluster CA (either nil);
// opts adjust the cluster before any node starts.
func newClusterWith(t testing.TB, n int, key []byte, ca *CA, opts ...func(*tcluster)) *tcluster {
	t.Helper()
	sink := &logSink{t: t}
	c := &tcluster{
		t:    t,
		sink: sink,
		logger: hclog.New(&hclog.LoggerOptions{
			Name: "test", Output: sink, Level: hclog.Info, TimeFormat: "15:04:05.000",
		}),
		expect: n,
		key:    key,
		ca:     ca,
		tlsFor: make(map[string]*ClusterTLS),
	}
	for _, o := range opts {
		o(c)
	}
	t.Cleanup(c.close)
	for i := 0; i < n; i++ {
		c.add()
	}
	c.waitLeader()
	c.waitVoters(n)
	return c
}

// add creates a slot (data dir and HTTP server) and starts a node in it.
func (c *tcluster) add() *tnode {
	c.t.Helper()
	tn := &tnode{id: fmt.Sprintf("node%d", len(c.nodes)), dir: c.t.TempDir(),
		raftAddr: "127.0.0.1:0", gossipAddr: "127.0.0.1:0", held: make(chan struct{}, 16)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		c.t.Fatal(err)
	}
	tn.httpAddr = ln.Addr().String()
	inner := testHandler(tn)
	tn.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The client listener, filtered as the server's is.
		if n := tn.node.Load(); n != nil {
			n.ClientHandler(inner).ServeHTTP(w, r)
			return
		}
		inner.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = tn.srv.Serve(ln) }()
	c.nodes = append(c.nodes, tn)
	c.start(tn)
	return tn
}

// testHandler answers /write by forwarding to the leader, or (on the leader)
// with the node id, the received hop header, query and body.
func testHandler(tn *tnode) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := tn.node.Load()
		if n == nil {
			http.Error(w, "stopped", http.StatusServiceUnavailable)
			return
		}
		if strings.HasPrefix(r.URL.Path, InternalPathPrefix) {
			if tn.blockLeases.Load() {
				http.Error(w, "blocked by the test", http.StatusServiceUnavailable)
				return
			}
			n.ServeInternal(w, r)
			return
		}
		if r.URL.Path == "/hold" && tn.hold.Load() && n.Health().IsLeader {
			// Read the body first: only then does net/http notice that
			// the client went away and cancel the context.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case tn.held <- struct{}{}:
			default:
			}
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		if r.Header.Get("X-Test-Retry-Safe") != "" {
			r = r.WithContext(status.WithRetrySafe(r.Context()))
		}
		forwarded, err := n.ForwardToLeader(w, r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		if forwarded {
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Served-By", tn.id)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, "id=%s hop=%s query=%s body=%s", tn.id, r.Header.Get(HopHeader), r.URL.RawQuery, body)
	})
}

// config returns the node config for a slot, joining every running node.
func (c *tcluster) config(tn *tnode) Config {
	var join []string
	for _, o := range c.nodes {
		if n := o.node.Load(); n != nil && o != tn {
			join = append(join, n.GossipAddr())
		}
	}
	return Config{
		NodeID:          tn.id,
		DataDir:         tn.dir,
		HTTPAddr:        tn.httpAddr,
		RaftAddr:        tn.raftAddr,
		GossipAddr:      tn.gossipAddr,
		ClusterKey:      c.key,
		TokenHashKey:    testHashKey,
		Join:            join,
		BootstrapExpect: c.expect,
		MaxStale:        time.Second,
		Logger:          c.logger.Named(tn.id),
		Version:         "test",
		Timing:          FastTiming(),
		TLS:             c.slotTLS(tn.id),
		WrapPeerConn:    c.wrapFor(tn.id),
	}
}

// wrapFor returns slot id's Config.WrapPeerConn (nil without c.wrap).
func (c *tcluster) wrapFor(id string) func(net.Conn) net.Conn {
	if c.wrap == nil {
		return nil
	}
	return func(conn net.Conn) net.Conn { return c.wrap(id, conn) }
}

// slotTLS returns the cluster identity of slot id: an override, else one
// issued by the cluster CA, else none.
func (c *tcluster) slotTLS(id string) *ClusterTLS {
	if t, ok := c.tlsFor[id]; ok {
		return t
	}
	if c.ca == nil {
		return nil
	}
	nc, err := c.ca.IssueNode(id, nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	t, err := nc.TLS(c.ca)
	if err != nil {
		c.t.Fatal(err)
	}
	return t
}

// start starts (or restarts) the node of a slot on its data dir.
func (c *tcluster) start(tn *tnode) *Node {
	c.t.Helper()
	n, err := New(c.config(tn))
	if err != nil {
		c.t.Fatalf("start %s: %v", tn.id, err)
	}
	n.SetForwardHandler(testHandler(tn))
	// Keep the raft address across restarts: the raft configuration
	// refers to it.
	tn.raftAddr, tn.gossipAddr = n.RaftAddr(), n.GossipAddr()
	tn.node.Store(n)
	return n
}

// stop shuts a slot's node down gracefully.
func (c *tcluster) stop(tn *tnode) {
	c.t.Helper()
	n := tn.node.Swap(nil)
	if n == nil {
		return
	}
	tn.stopped = n
	tn.stopped = n
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		c.t.Errorf("shutdown %s: %v", tn.id, err)
	}
}

// crash stops a slot's node without leaving gossip or handing over
// leadership, as a killed process would.
func (c *tcluster) crash(tn *tnode) {
	c.t.Helper()
	n := tn.node.Swap(nil)
	if n == nil {
		return
	}
	tn.stopped = n
	tn.stopped = n
	if err := n.stop(context.Background(), false); err != nil {
		c.t.Errorf("crash %s: %v", tn.id, err)
	}
}

func (c *tcluster) close() {
	for _, tn := range c.nodes {
		c.stop(tn)
	}
	for _, tn := range c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = tn.srv.Shutdown(ctx)
		cancel()
	}
	c.sink.close()
}

// running returns the slots whose node is running.
func (c *tcluster) running() []*tnode {
	var out []*tnode
	for _, tn := range c.nodes {
		if tn.node.Load() != nil {
			out = append(out, tn)
		}
	}
	return out
}

// waitLeader waits until exactly one running node leads and every running
// node knows it; it returns the leader's slot.
func (c *tcluster) waitLeader() *tnode {
	c.t.Helper()
	var leader *tnode
	waitFor(c.t, 10*time.Second, "a leader known by every node", func() bool {
		leader = nil
		for _, tn := range c.running() {
			h := tn.node.Load().Health()
			if h.IsLeader {
				if leader != nil {
					return false
				}
				leader = tn
			}
		}
		if leader == nil {
			return false
		}
		for _, tn := range c.running() {
			if h := tn.node.Load().Health(); h.LeaderID != leader.id || h.LeaderHTTPAddr != leader.httpAddr {
				return false
			}
		}
		return true
	})
	return leader
}

// followers returns the running slots other than the leader.
func (c *tcluster) followers(leader *tnode) []*tnode {
	var out []*tnode
	for _, tn := range c.running() {
		if tn != leader {
			out = append(out, tn)
		}
	}
	return out
}

// waitVoters waits until the leader's raft configuration has exactly want
// voters.
func (c *tcluster) waitVoters(want int) {
	c.t.Helper()
	waitFor(c.t, 10*time.Second, fmt.Sprintf("%d raft voters", want), func() bool {
		return c.voters() == want
	})
}

func (c *tcluster) voters() int {
	for _, tn := range c.running() {
		n := tn.node.Load()
		if !n.Health().IsLeader {
			continue
		}
		servers, err := n.RaftServers()
		if err != nil {
			return -1
		}
		v := 0
		for _, s := range servers {
			if s.Voter {
				v++
			}
		}
		return v
	}
	return -1
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// testHashKey is the token hash key of every test node.
var testHashKey = []byte("cluster-test-token-hash-key-0032")

// testHasher hashes token IDs as the test nodes do.
var testHasher = func() *fsm.Hasher {
	h, err := fsm.NewHasher(testHashKey)
	if err != nil {
		panic(err)
	}
	return h
}()

// newToken returns a CreateToken for a fresh random token ID; ttl 0 never
// expires.
func newToken(t testing.TB, ttl time.Duration) (fsm.CreateToken, string) {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	id := "hvs." + hex.EncodeToString(b)
	now := time.Now()
	tok := fsm.Token{
		Hash:         testHasher.Hash(id),
		Accessor:     "acc-" + hex.EncodeToString(b[:8]),
		Policies:     []string{"default"},
		Path:         "auth/token/create",
		CreationTime: now.UnixNano(),
		IssueTime:    now.UnixNano(),
		Type:         fsm.TokenTypeService,
	}
	if ttl > 0 {
		tok.TTL = int64(ttl / time.Second)
		tok.CreationTTL = tok.TTL
		tok.ExpireTime = now.Add(ttl).UnixNano()
	}
	return fsm.CreateToken{Token: tok, Now: now.UnixNano()}, tok.Hash
}

// propose proposes on n and fails the test on any error.
func propose(t testing.TB, n *Node, c fsm.Command) (fsm.Result, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, idx, err := n.Propose(ctx, c)
	if err != nil {
		t.Fatalf("propose %v: %v", c.CommandType(), err)
	}
	if res.Err != nil {
		t.Fatalf("propose %v: result error: %v", c.CommandType(), res.Err)
	}
	return res, idx
}

// proposeAny proposes on whichever node leads, retrying while leadership
// moves (a loaded test machine can stall a process past the leader lease).
// A retry of a create that did commit the first time answers
// ErrTokenExists: the token is committed, so that counts as success.
func (c *tcluster) proposeAny(cmd fsm.Command) (fsm.Result, uint64) {
	c.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	retried := false
	for {
		leader := c.waitLeader()
		n := leader.node.Load()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		res, idx, err := n.Propose(ctx, cmd)
		cancel()
		switch {
		case err == nil && res.Err == nil:
			return res, idx
		case err == nil && retried && errors.Is(res.Err, fsm.ErrTokenExists):
			return res, n.AppliedIndex()
		case err == nil:
			c.t.Fatalf("propose %v: result error: %v", cmd.CommandType(), res.Err)
		case errors.Is(err, status.ErrNotLeader), errors.Is(err, status.ErrTimeout):
			if time.Now().After(deadline) {
				c.t.Fatalf("propose %v: %v", cmd.CommandType(), err)
			}
			c.t.Logf("propose %v on %s: %v; retrying", cmd.CommandType(), leader.id, err)
			retried = true
		default:
			c.t.Fatalf("propose %v: %v", cmd.CommandType(), err)
		}
	}
}

// awaitAll waits until every running node applied index.
func (c *tcluster) awaitAll(index uint64) {
	c.t.Helper()
	for _, tn := range c.running() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := tn.node.Load().AwaitIndex(ctx, index)
		cancel()
		if err != nil {
			c.t.Fatalf("%s: await index %d: %v (applied %d)", tn.id, index, err, tn.node.Load().AppliedIndex())
		}
	}
}

// isErr reports errors.Is for brevity in table checks.
func isErr(err, target error) bool { return errors.Is(err, target) }
