// Package inproc starts a real tokend cluster inside one test process: real
// raft with bolt on disk, real memberlist on loopback, real HTTP, each node on
// ports the OS picks. Tests use it through the official Vault API client.
package inproc

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	vaultapi "github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/fsm"
	"github.com/tokend/tokend/httpapi"
)

// Node is one member of an in-process cluster.
type Node struct {
	ID       string
	DataDir  string
	HTTPAddr string
	// TLS is the node's cluster identity (nil: plain TCP between nodes).
	TLS *cluster.ClusterTLS
	// ClusterKey and TokenHashKey override the cluster's for this node
	// (AddNodeWith): a node with another key must not get in.
	ClusterKey   []byte
	TokenHashKey []byte
	raftAddr     string
	gossip       string

	mu     sync.Mutex
	node   *cluster.Node
	server *http.Server
	// blockLeases makes the node's HTTP server refuse the leader's read
	// lease grants (BlockLeases).
	blockLeases atomic.Bool
}

// Cluster is a set of in-process nodes that found each other by gossip.
type Cluster struct {
	t      testing.TB
	Nodes  []*Node
	Logger hclog.Logger
	// RootToken is the token returned by sys/init.
	RootToken string
	// MaxStale is passed to every node.
	MaxStale time.Duration

	// CA issued every node's cluster certificate (Options.ClusterTLS).
	CA *cluster.CA
	// ClusterKey is every node's -cluster-key (nil: gossip unencrypted).
	ClusterKey []byte
	// TokenHashKey is every node's token hash key; Hasher hashes with it.
	TokenHashKey []byte
	Hasher       *fsm.Hasher

	logs   *logSink
	timing cluster.Timing
	opts   Options
}

// Options tune an in-process cluster; zero fields take the defaults.
type Options struct {
	// Timing of raft and gossip (default cluster.FastTiming()). Benchmarks
	// use cluster.DefaultTiming(): millisecond timers cause elections when
	// the load saturates both cores.
	Timing cluster.Timing
	// MaxStale of every node (default 2s).
	MaxStale time.Duration
	// ClusterTLS runs raft, forwarding and lease grants over mutual TLS:
	// the cluster gets a fresh CA (Cluster.CA) and every node a
	// certificate from it, made with the code of tokend operator gen-certs.
	ClusterTLS bool
	// WrapPeerConn, when set, wraps every connection a node opens to
	// another node (cluster.Config.WrapPeerConn); node is the dialer's id.
	WrapPeerConn func(node string, c net.Conn) net.Conn
	// ClusterKey encrypts gossip (default none).
	ClusterKey []byte
	// TokenHashKey is the token hash key of every node (default: 32 random
	// bytes per cluster).
	TokenHashKey []byte
}

// NodeOptions override how AddNodeWith starts one node.
type NodeOptions struct {
	// TLS is the node's cluster identity instead of one from Cluster.CA
	// (for example a certificate from another CA).
	TLS *cluster.ClusterTLS
	// NoTLS starts the node without cluster TLS even in a TLS cluster.
	NoTLS bool
	// ClusterKey and TokenHashKey replace the cluster's keys for this node
	// (nil: the cluster's).
	ClusterKey   []byte
	TokenHashKey []byte
}

// New starts n nodes with -bootstrap-expect n, waits for a leader, and
// initialises the cluster (sys/init) so RootToken is set. Everything is
// stopped by t.Cleanup.
func New(t testing.TB, n int) *Cluster {
	t.Helper()
	return NewWith(t, n, Options{})
}

// NewWith is New with options.
func NewWith(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.Timing == (cluster.Timing{}) {
		opts.Timing = cluster.FastTiming()
	}
	if opts.MaxStale == 0 {
		opts.MaxStale = 2 * time.Second
	}
	if opts.TokenHashKey == nil {
		opts.TokenHashKey = make([]byte, 32)
		if _, err := rand.Read(opts.TokenHashKey); err != nil {
			t.Fatal(err)
		}
	}
	hasher, err := fsm.NewHasher(opts.TokenHashKey)
	if err != nil {
		t.Fatalf("token hash key: %v", err)
	}
	c := &Cluster{
		t:            t,
		MaxStale:     opts.MaxStale,
		ClusterKey:   opts.ClusterKey,
		TokenHashKey: opts.TokenHashKey,
		Hasher:       hasher,
		timing:       opts.Timing,
		logs:         &logSink{t: t, verbose: os.Getenv("TOKEND_TEST_LOG") != ""},
		opts:         opts,
	}
	if opts.ClusterTLS {
		ca, err := cluster.NewCA("tokend test cluster CA", time.Hour)
		if err != nil {
			t.Fatalf("cluster CA: %v", err)
		}
		c.CA = ca
	}
	// Trace level so the secret-grep tests see every log line there is;
	// benchmarks log at Info, since the shared sink's lock would otherwise
	// be measured too.
	level := hclog.Trace
	if _, bench := t.(*testing.B); bench {
		level = hclog.Info
	}
	c.Logger = hclog.New(&hclog.LoggerOptions{Name: "tokend", Level: level, Output: c.logs})
	for i := 0; i < n; i++ {
		c.Nodes = append(c.Nodes, c.newNode(fmt.Sprintf("node%d", i), NodeOptions{}))
	}
	t.Cleanup(c.StopAll)
	for i := range c.Nodes {
		c.start(i, n)
	}
	c.WaitForLeader()
	c.WaitForVoters(n)
	c.init()
	return c
}

// AddNode starts one more node that joins the existing cluster by gossip.
func (c *Cluster) AddNode() int {
	c.t.Helper()
	return c.AddNodeWith(NodeOptions{})
}

// AddNodeWith is AddNode with per-node options.
func (c *Cluster) AddNodeWith(o NodeOptions) int {
	c.t.Helper()
	c.Nodes = append(c.Nodes, c.newNode(fmt.Sprintf("node%d", len(c.Nodes)), o))
	i := len(c.Nodes) - 1
	c.start(i, len(c.Nodes)-1)
	return i
}

// newNode prepares a node's data dir and, in a TLS cluster, its identity.
func (c *Cluster) newNode(id string, o NodeOptions) *Node {
	c.t.Helper()
	n := &Node{ID: id, DataDir: c.t.TempDir(), TLS: o.TLS, ClusterKey: o.ClusterKey, TokenHashKey: o.TokenHashKey}
	if n.TLS == nil && c.CA != nil && !o.NoTLS {
		nc, err := c.CA.IssueNode(id, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
		if err != nil {
			c.t.Fatalf("issue certificate for %s: %v", id, err)
		}
		if n.TLS, err = nc.TLS(c.CA); err != nil {
			c.t.Fatalf("cluster TLS for %s: %v", id, err)
		}
	}
	return n
}

func (c *Cluster) start(i, bootstrapExpect int) {
	c.t.Helper()
	n := c.Nodes[i]
	addr := n.HTTPAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := listenRetry(addr)
	if err != nil {
		c.t.Fatalf("listen http for %s: %v", n.ID, err)
	}
	n.HTTPAddr = ln.Addr().String()
	raftAddr, gossipAddr := n.raftAddr, n.gossip
	if raftAddr == "" {
		raftAddr = "127.0.0.1:0"
		gossipAddr = "127.0.0.1:0"
	}
	var join []string
	for j, other := range c.Nodes {
		if j != i && other.gossip != "" {
			join = append(join, other.gossip)
		}
	}
	logger := c.Logger.Named(n.ID)
	var wrap func(net.Conn) net.Conn
	if w := c.opts.WrapPeerConn; w != nil {
		id := n.ID
		wrap = func(conn net.Conn) net.Conn { return w(id, conn) }
	}
	gossipKey, hashKey := c.ClusterKey, c.TokenHashKey
	if n.ClusterKey != nil {
		gossipKey = n.ClusterKey
	}
	if n.TokenHashKey != nil {
		hashKey = n.TokenHashKey
	}
	node, err := cluster.New(cluster.Config{
		NodeID:          n.ID,
		DataDir:         n.DataDir,
		HTTPAddr:        n.HTTPAddr,
		RaftAddr:        raftAddr,
		GossipAddr:      gossipAddr,
		Join:            join,
		BootstrapExpect: bootstrapExpect,
		ClusterKey:      gossipKey,
		TokenHashKey:    hashKey,
		MaxStale:        c.MaxStale,
		Logger:          logger,
		Version:         "test",
		Timing:          c.timing,
		TLS:             n.TLS,
		WrapPeerConn:    wrap,
	})
	if err != nil {
		ln.Close()
		c.t.Fatalf("start %s: %v", n.ID, err)
	}
	// Each node its own registry, as in cmd/tokend minus the go-metrics
	// bridge (go-metrics has one sink per process, not per node).
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), node.Collector())
	handler := httpapi.New(node, httpapi.Options{Logger: logger.Named("http"), MaxStale: c.MaxStale, Version: "test", Metrics: metrics})
	node.SetForwardHandler(handler)
	srv := &http.Server{Handler: n.leaseFilter(node.ClientHandler(handler)), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // returns ErrServerClosed on Stop
	n.mu.Lock()
	n.node, n.server = node, srv
	n.raftAddr, n.gossip = node.RaftAddr(), node.GossipAddr()
	n.mu.Unlock()
}

// leaseFilter answers 503 to node-to-node requests while BlockLeases is on.
func (n *Node) leaseFilter(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.blockLeases.Load() && strings.HasPrefix(r.URL.Path, cluster.InternalPathPrefix) {
			http.Error(w, "blocked by the test", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// BlockLeases makes node i refuse (block=true) or accept again the leader's
// read-lease grants, as if the leader could not reach its HTTP API while
// raft still replicates to it. The setting survives Restart. It filters the
// HTTP listener, so it has no effect with Options.ClusterTLS (grants then
// arrive on the cluster port).
func (c *Cluster) BlockLeases(i int, block bool) {
	c.Nodes[i].blockLeases.Store(block)
}

// listenRetry binds addr, retrying briefly: a restarted node reuses its old
// port, which the kernel may hold for a moment after the previous close.
func listenRetry(addr string) (net.Listener, error) {
	var err error
	for i := 0; i < 50; i++ {
		var ln net.Listener
		if ln, err = net.Listen("tcp", addr); err == nil {
			return ln, nil
		}
		time.Sleep(100 * time.Millisecond) // waiting for the kernel to release the port
	}
	return nil, err
}

func (c *Cluster) init() {
	c.t.Helper()
	// A leadership change right after the election makes init answer 503;
	// retry it as an operator would.
	var resp *vaultapi.InitResponse
	c.WaitFor(15*time.Second, "sys/init to succeed", func() bool {
		leader := c.LeaderIndex()
		if leader < 0 {
			return false
		}
		var err error
		resp, err = c.Client(leader).Sys().Init(&vaultapi.InitRequest{})
		if err != nil {
			c.t.Logf("sys/init: %v (retrying)", err)
			return false
		}
		return true
	})
	c.RootToken = resp.RootToken
	for i := range c.Nodes {
		c.Client(i).SetToken(c.RootToken)
	}
}

// Cluster returns node i's cluster.Node (nil when stopped).
func (c *Cluster) Cluster(i int) *cluster.Node {
	n := c.Nodes[i]
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.node
}

// Running reports whether node i is started.
func (c *Cluster) Running(i int) bool { return c.Cluster(i) != nil }

// Addr is node i's HTTP API URL.
func (c *Cluster) Addr(i int) string { return "http://" + c.Nodes[i].HTTPAddr }

// Client returns a new official Vault API client for node i, with the root
// token set (once initialised) and retries disabled so tests see every error.
func (c *Cluster) Client(i int) *vaultapi.Client {
	c.t.Helper()
	cfg := vaultapi.DefaultConfig()
	cfg.Address = c.Addr(i)
	cfg.MaxRetries = 0
	client, err := vaultapi.NewClient(cfg)
	if err != nil {
		c.t.Fatalf("vault client: %v", err)
	}
	client.SetToken(c.RootToken)
	return client
}

// LeaderIndex returns the index of the running node that is leader, or -1.
func (c *Cluster) LeaderIndex() int {
	for i := range c.Nodes {
		if n := c.Cluster(i); n != nil && n.Health().IsLeader {
			return i
		}
	}
	return -1
}

// Followers returns the indexes of running nodes that are not the leader.
func (c *Cluster) Followers() []int {
	var out []int
	for i := range c.Nodes {
		if n := c.Cluster(i); n != nil && !n.Health().IsLeader {
			out = append(out, i)
		}
	}
	return out
}

// WaitForLeader waits until exactly one running node leads and every running
// node knows it.
func (c *Cluster) WaitForLeader() int {
	c.t.Helper()
	leader := -1
	c.WaitFor(10*time.Second, "a leader known to every node", func() bool {
		leader = c.LeaderIndex()
		if leader < 0 {
			return false
		}
		for i := range c.Nodes {
			if n := c.Cluster(i); n != nil && n.Health().LeaderID != c.Nodes[leader].ID {
				return false
			}
		}
		return true
	})
	return leader
}

// WaitForVoters waits until the raft configuration has n voters.
func (c *Cluster) WaitForVoters(n int) {
	c.t.Helper()
	c.WaitFor(15*time.Second, fmt.Sprintf("%d raft voters", n), func() bool {
		l := c.LeaderIndex()
		if l < 0 {
			return false
		}
		servers, err := c.Cluster(l).RaftServers()
		if err != nil {
			return false
		}
		voters := 0
		for _, s := range servers {
			if s.Voter {
				voters++
			}
		}
		return voters == n
	})
}

// WaitForIndex waits until every running node has applied at least index.
func (c *Cluster) WaitForIndex(index uint64) {
	c.t.Helper()
	c.WaitFor(10*time.Second, fmt.Sprintf("index %d on every node", index), func() bool {
		for i := range c.Nodes {
			if n := c.Cluster(i); n != nil && n.AppliedIndex() < index {
				return false
			}
		}
		return true
	})
}

// Stop shuts node i down gracefully (it leaves gossip).
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	n.mu.Lock()
	node, srv := n.node, n.server
	n.node, n.server = nil, nil
	n.mu.Unlock()
	if node == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	if err := node.Shutdown(ctx); err != nil {
		c.t.Errorf("shutdown %s: %v", n.ID, err)
	}
}

// Restart starts a stopped node again on its data dir and its old addresses.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.start(i, len(c.Nodes))
}

// StopAll stops every running node.
func (c *Cluster) StopAll() {
	for i := range c.Nodes {
		c.Stop(i)
	}
	c.logs.close()
}

// WaitFor polls cond until it holds or the timeout ends the test.
func (c *Cluster) WaitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// LogOutput returns everything every node logged so far (tests grep it for
// token secrets).
func (c *Cluster) LogOutput() string {
	c.logs.mu.Lock()
	defer c.logs.mu.Unlock()
	return c.logs.buf.String()
}

// logSink copies log lines to the test log while the test runs, and keeps
// them all in memory. Raft goroutines may log after the test body returned,
// so writes to t.Log stop once the cluster is stopped.
type logSink struct {
	t       testing.TB
	verbose bool
	mu      sync.Mutex
	buf     bytes.Buffer
	closed  bool
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Write(p)
	if s.verbose && !s.closed {
		s.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (s *logSink) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
