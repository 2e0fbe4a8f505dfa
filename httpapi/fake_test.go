package httpapi

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	vault "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

// raftLog is the committed log shared by a fake leader and its followers.
type raftLog struct {
	mu      sync.Mutex
	entries [][]byte
}

// fakeNode implements Node on a real *fsm.FSM. A leader's Propose encodes
// and applies with an index counter (and appends to the shared log); a
// follower applies the shared log only when the test calls replicate.
type fakeNode struct {
	fsm *fsm.FSM
	log *raftLog

	mu        sync.Mutex
	leader    bool
	stale     bool
	noLeader  bool
	leaderURL string // follower: base URL of the leader's HTTP server
	applied   chan struct{}
	awaitHook func(index uint64) // called when AwaitIndex starts waiting
	forwards  int
	// retrySafe records status.RetrySafe of each forwarded request.
	retrySafe []bool
	internal  int
	verifyErr error
	// notReady makes a leader one whose post-election barrier has not
	// applied yet (Health().Stale; VerifyLeader times out).
	notReady bool
	// quorumLost makes a leader one that no quorum of voters answered
	// within the leader read bound (Health().Stale); VerifyLeader then
	// returns quorumErr (nil: the next heartbeat round confirmed it).
	quorumLost bool
	quorumErr  error
	httpClient *http.Client
	// keyring, when set, replaces the one-member GossipKeyring view.
	keyring func(status.GossipKeyring) status.GossipKeyring
}

func newFakeLeader() *fakeNode {
	return &fakeNode{fsm: fsm.New(), log: &raftLog{}, leader: true, applied: make(chan struct{})}
}

func newFakeFollower(leader *fakeNode, leaderURL string) *fakeNode {
	return &fakeNode{fsm: fsm.New(), log: leader.log, leaderURL: leaderURL, applied: make(chan struct{}), httpClient: &http.Client{}}
}

func (n *fakeNode) Propose(ctx context.Context, c fsm.Command) (fsm.Result, uint64, error) {
	n.mu.Lock()
	leader := n.leader
	n.mu.Unlock()
	if !leader {
		return fsm.Result{}, 0, status.ErrNotLeader
	}
	entry, err := fsm.Encode(c)
	if err != nil {
		return fsm.Result{}, 0, err
	}
	n.log.mu.Lock()
	n.log.entries = append(n.log.entries, entry)
	idx := uint64(len(n.log.entries))
	res := n.fsm.Apply(idx, entry)
	n.log.mu.Unlock()
	n.notify()
	return res, idx, nil
}

// replicate applies the shared log up to index upTo (0 = everything).
func (n *fakeNode) replicate(upTo uint64) {
	n.log.mu.Lock()
	entries := append([][]byte(nil), n.log.entries...)
	n.log.mu.Unlock()
	if upTo == 0 || upTo > uint64(len(entries)) {
		upTo = uint64(len(entries))
	}
	for i := n.fsm.LastApplied() + 1; i <= upTo; i++ {
		n.fsm.Apply(i, entries[i-1])
	}
	n.notify()
}

func (n *fakeNode) notify() {
	n.mu.Lock()
	close(n.applied)
	n.applied = make(chan struct{})
	n.mu.Unlock()
}

func (n *fakeNode) State() fsm.Reader    { return n.fsm }
func (n *fakeNode) AppliedIndex() uint64 { return n.fsm.LastApplied() }

func (n *fakeNode) AwaitIndex(ctx context.Context, index uint64) error {
	n.mu.Lock()
	hook := n.awaitHook
	n.mu.Unlock()
	if hook != nil {
		hook(index)
	}
	for {
		n.mu.Lock()
		ch := n.applied
		n.mu.Unlock()
		if n.fsm.LastApplied() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return status.ErrTimeout
		}
	}
}

func (n *fakeNode) VerifyLeader(context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.leader {
		return status.ErrNotLeader
	}
	if n.notReady {
		return status.ErrTimeout
	}
	if n.quorumLost {
		return n.quorumErr
	}
	return n.verifyErr
}

func (n *fakeNode) ForwardToLeader(w http.ResponseWriter, r *http.Request) (bool, error) {
	n.mu.Lock()
	leader, url, noLeader := n.leader, n.leaderURL, n.noLeader
	n.forwards++
	n.retrySafe = append(n.retrySafe, status.RetrySafe(r.Context()))
	n.mu.Unlock()
	if leader {
		return false, nil
	}
	if noLeader || url == "" {
		return false, status.ErrNoLeader
	}
	if r.Header.Get(HopHeader) != "" {
		return false, status.ErrHopRefused
	}
	body, _ := io.ReadAll(r.Body)
	out, err := http.NewRequestWithContext(r.Context(), r.Method, url+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	out.Header = r.Header.Clone()
	out.Header.Set(HopHeader, "fake")
	resp, err := n.httpClient.Do(out)
	if err != nil {
		return false, status.ErrNoLeader
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
	return true, nil
}

func (n *fakeNode) Health() status.Health {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := status.Health{
		NodeID:       "fake",
		IsLeader:     n.leader,
		KnownLeader:  n.leader || (!n.noLeader && n.leaderURL != ""),
		Stale:        (!n.leader && (n.stale || n.noLeader)) || (n.leader && (n.notReady || n.quorumLost)),
		AppliedIndex: n.fsm.LastApplied(),
	}
	h.ReadyForConsistentReads = n.leader && !n.notReady
	if n.leader {
		h.ActiveTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		h.LeaderHTTPAddr = "127.0.0.1:8200"
		h.LeaderRaftAddr = "127.0.0.1:8201"
	} else if h.KnownLeader {
		h.LeaderHTTPAddr = strings.TrimPrefix(n.leaderURL, "http://")
		h.LeaderRaftAddr = "127.0.0.1:8201"
		h.LastContact = 10 * time.Millisecond
	}
	return h
}

// ServeInternal counts the call and answers 404 (the fake has no leases).
func (n *fakeNode) ServeInternal(w http.ResponseWriter, _ *http.Request) {
	n.mu.Lock()
	n.internal++
	n.mu.Unlock()
	w.WriteHeader(http.StatusNotFound)
}

// testHasher is the token hasher of every fake node (one cluster key).
var testHasher = func() *fsm.Hasher {
	h, err := fsm.NewHasher([]byte("httpapi-test-token-hash-key-0032"))
	if err != nil {
		panic(err)
	}
	return h
}()

// fakeGossipKey is the -cluster-key the fake gossips with before any change.
var fakeGossipKey = []byte("fake-gossip-key!")

// TokenHasher implements Node.
func (n *fakeNode) TokenHasher() *fsm.Hasher { return testHasher }

// GossipKeyring implements Node: one member that applies every committed
// keyring at once.
func (n *fakeNode) GossipKeyring() status.GossipKeyring {
	rep, version := n.fsm.GossipKeyring()
	local := rep
	if version == 0 {
		local = [][]byte{fakeGossipKey}
	}
	kr := status.GossipKeyring{Enabled: true, Version: version, Replicated: rep, Local: local, Members: 1,
		Installed: map[string]int{}, Primary: map[string]int{}}
	for i, k := range local {
		kr.Installed[status.KeyFingerprint(k)]++
		if i == 0 {
			kr.Primary[status.KeyFingerprint(k)]++
		}
	}
	n.mu.Lock()
	f := n.keyring
	n.mu.Unlock()
	if f != nil {
		return f(kr)
	}
	return kr
}

func (n *fakeNode) Members() []status.Member {
	return []status.Member{{Name: "fake", Addr: "127.0.0.1:8301", RaftAddr: "127.0.0.1:8201", HTTPAddr: "127.0.0.1:8200", Version: "test", Status: "alive"}}
}

func (n *fakeNode) RaftServers() ([]status.RaftServer, error) {
	return []status.RaftServer{{NodeID: "fake", Address: "127.0.0.1:8201", Leader: true, Voter: true}}, nil
}

func (n *fakeNode) set(f func(n *fakeNode)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(n)
}

// env is one fake leader behind an httptest server, initialised with a root token.
type env struct {
	t      *testing.T
	node   *fakeNode
	srv    *httptest.Server
	root   string
	logBuf *syncBuffer
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testOptions(buf io.Writer) Options {
	return Options{
		Logger:    hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: buf}),
		Version:   "0.0.0-test",
		IndexWait: 200 * time.Millisecond,
	}
}

func newEnv(t *testing.T, initialise bool) *env {
	t.Helper()
	e := &env{t: t, node: newFakeLeader(), logBuf: &syncBuffer{}}
	e.srv = httptest.NewServer(New(e.node, testOptions(e.logBuf)))
	t.Cleanup(e.srv.Close)
	if initialise {
		root, err := InitRoot(context.Background(), e.node, "")
		if err != nil {
			t.Fatalf("InitRoot: %v", err)
		}
		e.root = root
	}
	return e
}

// client returns an official Vault client for the env's server.
func (e *env) client(token string) *vault.Client {
	return newClient(e.t, e.srv.URL, token)
}

func newClient(t *testing.T, addr, token string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = addr
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(token)
	return c
}

// do sends a raw request and returns status, headers and body.
func (e *env) do(method, path, token, body string, hdr ...string) (int, http.Header, string) {
	e.t.Helper()
	return doRaw(e.t, e.srv.URL, method, path, token, body, hdr...)
}

func doRaw(t *testing.T, base, method, path, token, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// create makes a token as the given caller through the official client.
func (e *env) create(caller string, req *vault.TokenCreateRequest) *vault.Secret {
	e.t.Helper()
	s, err := e.client(caller).Auth().Token().Create(req)
	if err != nil {
		e.t.Fatalf("create: %v", err)
	}
	return s
}
