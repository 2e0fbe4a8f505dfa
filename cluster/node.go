package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/tokend/tokend/cluster/raftconf"
	"github.com/tokend/tokend/fsm"
)

// Node is one tokend server: a raft member with its replicated fsm, a gossip
// member, and the leader-only loops. It implements httpapi.Node.
//
// Ownership: cfg, timing, id, the raft/memberlist handles and addresses are
// set in New and read-only afterwards. mu guards members, meta, leader
// (the leader-session fields) and nothing else; it is never held across raft
// calls, network I/O or channel sends. Lock order: mu before raftFSM.mu
// (never the reverse; in practice they are never nested).
type Node struct {
	cfg    Config
	timing Timing
	logger hclog.Logger
	id     string

	fsm       *fsm.FSM
	adapter   *raftFSM
	raft      *raft.Raft
	transport *raft.NetworkTransport
	store     *raftboltdb.BoltStore
	ml        *memberlist.Memberlist
	observer  *raft.Observer
	client    *http.Client

	// contact wraps transport for raft: the time each peer last answered
	// this node's AppendEntries (contact.go).
	contact *contactTransport

	raftAddr   string
	gossipAddr string

	// stream is the raft (cluster) port. raftReady is raft once NewRaft
	// returned, for the stream's peer checks, which run on other
	// goroutines. With cluster TLS, fwdServer serves forwarded requests
	// and lease grants on the cluster port, forwardHandler is what it
	// hands forwarded requests to, and peerClients holds one HTTP client
	// per peer id (clusterport.go).
	stream         *trackedStream
	raftReady      atomic.Pointer[raft.Raft]
	fwdServer      *http.Server
	fwdDone        chan struct{}
	forwardHandler atomic.Pointer[http.Handler]
	peerMu         sync.Mutex
	peerClients    map[string]*http.Client

	// inflight holds the forwards waiting for the leader's answer
	// (forward.go).
	inflight forwardSet
	// batcher coalesces forwards to the leader (forwardbatch.go).
	batcher forwardBatcher
	// group is the leader's group commit of token writes (groupcommit.go).
	group *groupCommit

	events      chan memberEvent
	eventSeq    atomic.Uint64
	overflowMu  sync.Mutex
	overflow    map[string]memberEvent
	reconcileCh chan struct{}
	observerCh  chan raft.Observation
	metrics     *nodeMetrics // metrics.go; set in New, read-only after

	shutdownCh   chan struct{}
	shuttingDown atomic.Bool
	// steppingDown is set while StepDown hands leadership over.
	steppingDown atomic.Bool
	// removedFromRaft records that a graceful shutdown saw this node's
	// removal reach its own log.
	removedFromRaft atomic.Bool
	shutdownOnce    sync.Once
	shutdownErr     error
	wg              sync.WaitGroup

	// started and incarnation identify this run of the process and its
	// monotonic clock for read leases (lease.go); lease is the follower's
	// read lease (own lock); grantor is the current leader term's lease
	// state, nil while not leading.
	started     time.Time
	incarnation string
	lease       readLease
	grantor     atomic.Pointer[grantor]

	// hasher hashes token IDs with Config.TokenHashKey; keyCheck is its
	// fingerprint, published in gossip metadata (a member whose check
	// differs never becomes a voter).
	hasher   *fsm.Hasher
	keyCheck string

	// instanceID is the data dir's random id (removepeer.go); removed is
	// set once this node learned it was removed.
	instanceID string
	removed    atomic.Bool
	// leaderClock estimates the leader's wall clock (leaderclock.go).
	leaderClock leaderClock

	// keyring is memberlist's gossip keyring (nil: gossip unencrypted; its
	// own lock). keyMu guards keyVersion (the replicated keyring version
	// applied to it) and retired, and serialises keyring changes; it is
	// never held with mu. keyringCh wakes keyringLoop.
	keyring    *memberlist.Keyring
	keyMu      sync.Mutex
	keyVersion uint64
	retired    []string
	peers      []string
	// transferKey seals the keyring for a member that missed a rotation
	// (keyfetch.go); derived from the token hash key.
	transferKey []byte
	keyringCh   chan struct{}

	// addrs is the copy-on-write id → addresses view of members, published
	// under mu and read without it (gossip.go).
	addrs atomic.Pointer[memberAddrs]

	mu      sync.Mutex
	members map[string]*memberRecord
	meta    nodeMeta
	// ready is set after the Barrier that follows taking leadership.
	ready      bool
	activeTime time.Time
}

// New opens (or creates) the node's data dir, starts raft and gossip, and
// starts the background loops. On an existing data dir the node resumes its
// raft state and never bootstraps again.
func New(cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.DataDir == "" {
		return nil, errors.New("data dir is required")
	}
	if cfg.MaxStale <= 0 {
		cfg.MaxStale = time.Second
	}
	hasher, err := fsm.NewHasher(cfg.TokenHashKey)
	if err != nil {
		return nil, err
	}
	timing := cfg.Timing.withDefaults()
	if cfg.MaxStale <= timing.LeaderLeaseTimeout {
		// A leader serves local reads only while a quorum answered it
		// within LeaderLeaseTimeout (the leader gate), and raft steps it
		// down about then; both must stay within the staleness bound
		// that read leases of followers give (doc.go, "Read leases").
		return nil, fmt.Errorf("max-stale (%s) must be longer than the raft leader lease timeout (%s)",
			cfg.MaxStale, timing.LeaderLeaseTimeout)
	}
	n := &Node{
		cfg:         cfg,
		timing:      timing,
		started:     time.Now(),
		incarnation: newIncarnation(),
		logger:      cfg.Logger,
		fsm:         fsm.New(),
		events:      make(chan memberEvent, 256),
		overflow:    make(map[string]memberEvent),
		reconcileCh: make(chan struct{}, 1),
		observerCh:  make(chan raft.Observation, 16),
		shutdownCh:  make(chan struct{}),
		members:     make(map[string]*memberRecord),
		metrics:     newNodeMetrics(),
		peerClients: make(map[string]*http.Client),
		hasher:      hasher,
		keyCheck:    hasher.KeyCheck(),
		keyringCh:   make(chan struct{}, 1),
		transferKey: deriveTransferKey(cfg.TokenHashKey),
	}
	n.adapter = newRaftFSM(n.fsm)
	n.adapter.onKeyring = n.pokeKeyring
	n.group = &groupCommit{
		// n.raft is set below, before anything can propose.
		apply:   func(entry []byte, timeout time.Duration) raft.ApplyFuture { return n.raft.Apply(entry, timeout) },
		timeout: timing.ApplyTimeout,
		observe: func(commands int) { n.metrics.entryCommands.Observe(float64(commands)) },
	}
	n.client = cfg.HTTPClient
	if n.client == nil {
		// No Client.Timeout: sendForward bounds every request with a
		// ForwardTimeout context already, and Client.Timeout would add a
		// second deadline context and body wrapper per request. The dial
		// is bounded by forwardDialer.
		dial := (&net.Dialer{}).DialContext
		if wrap := cfg.WrapPeerConn; wrap != nil {
			inner := dial
			dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := inner(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				return wrap(c), nil
			}
		}
		n.client = &http.Client{
			Transport: &http.Transport{
				DialContext: n.forwardDialer(dial),
				// One idle keep-alive connection per concurrent forward,
				// so a burst of writes through a follower does not close
				// and redial connections (the library default keeps 2).
				MaxIdleConnsPerHost: 256,
				IdleConnTimeout:     forwardIdleTimeout,
				DisableCompression:  true, // loopback/LAN: gzip costs CPU, saves nothing
			},
			// Never follow a redirect on behalf of a client.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}

	id, err := checkNodeID(cfg.DataDir, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	n.id = id
	if n.instanceID, err = loadInstanceID(cfg.DataDir); err != nil {
		return nil, err
	}
	if cfg.TLS != nil && cfg.TLS.NodeID() != id {
		// Peers check the id in the certificate against the raft
		// configuration: a mismatch could never talk to anyone.
		return nil, fmt.Errorf("cluster certificate names node %q, but this node is %q", cfg.TLS.NodeID(), id)
	}

	existing, err := n.setupRaft()
	if err != nil {
		return nil, err
	}
	// After setupRaft: raft creates its snapshot dir with a fixed 0755.
	if err := secureDataDir(cfg.DataDir, n.logger); err != nil {
		n.closeRaft()
		return nil, err
	}
	n.meta = nodeMeta{
		ID:           n.id,
		RaftAddr:     n.raftAddr,
		HTTPAddr:     cfg.HTTPAddr,
		Version:      cfg.Version,
		Bootstrapped: existing,
		HashKeyCheck: n.keyCheck,
		InstanceID:   n.instanceID,
	}
	if err := n.setupGossip(); err != nil {
		n.closeRaft()
		return nil, err
	}
	n.logger.Info("node started", "node_id", n.id, "raft_addr", n.raftAddr,
		"gossip_addr", n.gossipAddr, "http_addr", cfg.HTTPAddr, "existing_state", existing,
		"cluster_tls", cfg.TLS != nil)

	n.wg.Add(5)
	go n.keyringLoop()
	go n.eventLoop()
	go n.observerLoop()
	go n.leaderMonitor()
	go n.reconnectLoop()
	n.wg.Add(1)
	go n.removalWatch()
	if len(cfg.Join) > 0 {
		n.wg.Add(1)
		go n.joinLoop()
	}
	if !existing && cfg.BootstrapExpect > 0 {
		n.wg.Add(1)
		go n.bootstrapLoop()
	}
	return n, nil
}

// checkNodeID stores the node id on first start and checks it afterwards.
func checkNodeID(dataDir, id string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dataDir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		stored := strings.TrimSpace(string(b))
		if id == "" {
			return stored, nil
		}
		if stored != id {
			return "", fmt.Errorf("node id %q does not match %q stored in %s", id, stored, path)
		}
		return id, nil
	case errors.Is(err, os.ErrNotExist):
		if id == "" {
			return "", errors.New("node id is required")
		}
		if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("store node id: %w", err)
		}
		return id, nil
	default:
		return "", fmt.Errorf("read node id: %w", err)
	}
}

// setupRaft opens the stores and transport and starts raft. It reports
// whether the data dir already held raft state.
func (n *Node) setupRaft() (bool, error) {
	t := n.timing
	dir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("create raft dir: %w", err)
	}
	logger := n.logger.Named("raft")

	store, err := raftboltdb.New(raftboltdb.Options{
		Path: filepath.Join(dir, "raft.db"),
		// A second process on the same data dir fails instead of hanging.
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		return false, fmt.Errorf("open raft store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logger)
	if err != nil {
		store.Close()
		return false, fmt.Errorf("open snapshot store: %w", err)
	}
	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		store.Close()
		return false, fmt.Errorf("inspect raft state: %w", err)
	}
	// The stream advertises the bound listener address, so port 0 yields
	// the real port.
	stream, err := newTrackedStream(n.cfg.RaftAddr, t.TransportTimeout, streamOptions{
		ln:               n.cfg.RaftListener,
		tls:              n.cfg.TLS,
		peers:            n,
		wrap:             n.cfg.WrapPeerConn,
		handshakeTimeout: t.TransportTimeout,
	})
	if err != nil {
		store.Close()
		return false, fmt.Errorf("start raft transport on %s: %w", n.cfg.RaftAddr, err)
	}
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:          stream,
		MaxPool:         raftconf.MaxPool,
		MaxRPCsInFlight: raftconf.MaxRPCsInFlight,
		Timeout:         t.TransportTimeout,
		Logger:          logger,
	})
	n.raftAddr = string(trans.LocalAddr())

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(n.id)
	rc.Logger = logger
	rc.HeartbeatTimeout = t.HeartbeatTimeout
	rc.ElectionTimeout = t.ElectionTimeout
	rc.LeaderLeaseTimeout = t.LeaderLeaseTimeout
	rc.CommitTimeout = t.CommitTimeout
	rc.SnapshotInterval = t.SnapshotInterval
	rc.SnapshotThreshold = t.SnapshotThreshold
	rc.TrailingLogs = t.TrailingLogs
	raftconf.Tune(rc)
	// PreVote is on by default in raft v1.7 (PreVoteDisabled=false): a
	// partitioned node that rejoins does not depose a healthy leader.
	if err := raft.ValidateConfig(rc); err != nil {
		trans.Close()
		store.Close()
		return false, fmt.Errorf("raft config: %w", err)
	}
	contact := newContactTransport(trans)
	contact.voters = n.raftVoters
	r, err := raft.NewRaft(rc, measuredFSM{raftFSM: n.adapter, m: n.metrics,
		running: func() bool { return n.raftReady.Load() != nil }, log: n.logger}, raftconf.CachedLogStore(store), store, snaps, contact)
	if err != nil {
		trans.Close()
		store.Close()
		return false, fmt.Errorf("start raft: %w", err)
	}
	n.raft, n.transport, n.contact, n.store, n.stream = r, trans, contact, store, stream
	n.raftReady.Store(r)
	if n.cfg.TLS != nil {
		n.startForwardServer()
	}
	n.observer = raft.NewObserver(n.observerCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	r.RegisterObserver(n.observer)
	return existing, nil
}

// closeRaft stops raft (which closes the transport) and the bolt store.
func (n *Node) closeRaft() error {
	var errs []error
	if n.observer != nil {
		n.raft.DeregisterObserver(n.observer)
	}
	if err := n.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
	}
	// Shutdown closed the transport, whose stream waited for in-flight
	// heartbeat handlers (see trackedStream), so closing the store below is
	// safe. Also close pooled outgoing connections so the peers' handlers
	// see EOF and exit.
	n.transport.CloseStreams()
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close raft store: %w", err))
	}
	return errors.Join(errs...)
}

// observerLoop logs leader changes and cuts off forwards in flight to a
// leader that is no longer the leader (cancelForwards).
func (n *Node) observerLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.shutdownCh:
			return
		case o := <-n.observerCh:
			if lo, ok := o.Data.(raft.LeaderObservation); ok {
				n.cancelForwards(string(lo.LeaderID))
				n.logger.Info("leader changed", "leader", string(lo.LeaderID),
					"leader_addr", string(lo.LeaderAddr), "term", n.raft.CurrentTerm())
			}
		}
	}
}

// StepDown hands leadership to another voter if this node leads (bounded
// by ctx and two election timeouts plus a second), and reports whether it
// led. A graceful shutdown calls it before the HTTP API stops: while the
// API drains, followers still forward writes to it, and a write sent on a
// keep-alive connection the draining server closes as idle is lost in
// flight (net/http cannot resend a POST); once another node leads, the
// followers forward there and this node forwards what it still receives.
func (n *Node) StepDown(ctx context.Context) bool {
	if n.shuttingDown.Load() || n.raft.State() != raft.Leader || !n.hasPeers() {
		return false
	}
	// Writes that arrive meanwhile wait for the next leader and go there
	// (forwardToLeader) instead of failing against the transfer.
	n.steppingDown.Store(true)
	defer n.steppingDown.Store(false)
	tctx, cancel := context.WithTimeout(ctx, 2*n.timing.ElectionTimeout+time.Second)
	defer cancel()
	// raft gives a transfer one election timeout; a target busy catching
	// up can miss it, so try again while the bound allows.
	for attempt := 1; ; attempt++ {
		err := waitFuture(tctx, n.raft.LeadershipTransfer())
		if err == nil {
			break
		}
		if attempt == 3 || tctx.Err() != nil || n.raft.State() != raft.Leader {
			n.logger.Warn("leadership transfer failed", "error", err, "attempts", attempt)
			return true
		}
	}
	// Wait until this node follows the new leader, so its own forwards go
	// there rather than to nobody.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if id, _, _ := n.leaderInfo(); id != "" && id != n.id {
			return true
		}
		select {
		case <-tctx.Done():
			return true
		case <-tick.C:
		}
	}
}

// Shutdown stops the node: it transfers leadership if it leads, leaves
// gossip, stops the loops and closes raft and the store. Safe to call more
// than once; later calls return the first result.
func (n *Node) Shutdown(ctx context.Context) error {
	return n.stop(ctx, true)
}

// stop shuts the node down. graceful=false skips the leadership transfer
// and the gossip leave, which is how tests imitate a crashed process.
func (n *Node) stop(ctx context.Context, graceful bool) error {
	n.shutdownOnce.Do(func() {
		n.shuttingDown.Store(true)
		n.logger.Info("node shutting down", "node_id", n.id, "graceful", graceful)
		var errs []error
		if graceful && n.raft.State() == raft.Leader && n.hasPeers() {
			// Hand over before leaving, so writes resume after one
			// heartbeat instead of a full election timeout.
			tctx, cancel := context.WithTimeout(ctx, 2*n.timing.ElectionTimeout+time.Second)
			if err := waitFuture(tctx, n.raft.LeadershipTransfer()); err != nil {
				n.logger.Warn("leadership transfer failed", "error", err)
			}
			cancel()
		}
		leaveTimeout := n.timing.LeaveTimeout
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < leaveTimeout {
			leaveTimeout = max(time.Until(dl), time.Millisecond)
		}
		if graceful {
			n.announceLeave(leaveTimeout)
			if err := n.ml.Leave(leaveTimeout); err != nil {
				n.logger.Warn("gossip leave failed", "error", err)
			}
			n.awaitRemoval(ctx)
		}
		close(n.shutdownCh)
		n.wg.Wait()
		n.stopForwardServer(ctx)
		if err := n.ml.Shutdown(); err != nil {
			errs = append(errs, fmt.Errorf("gossip shutdown: %w", err))
		}
		if err := n.closeRaft(); err != nil {
			errs = append(errs, err)
		}
		if n.fwdDone != nil {
			<-n.fwdDone // the stream is closed: Serve has returned or is returning
		}
		n.closePeerClients()
		if tr, ok := n.client.Transport.(*http.Transport); ok && n.cfg.HTTPClient == nil {
			tr.CloseIdleConnections()
		}
		n.shutdownErr = errors.Join(errs...)
		n.logger.Info("node stopped", "node_id", n.id)
	})
	return n.shutdownErr
}

// awaitRemoval waits (bounded) until the leader, having seen this node
// leave gossip, has removed it from the raft configuration and that change
// has reached this node's log.
//
// Why: a node that left without the removal in its own log restarts with
// the old configuration. Two such nodes form a majority of that stale
// configuration and can elect a second leader next to the one the rest of
// the cluster kept (whose configuration no longer contains them), and
// entries committed by the remaining leader would later be overwritten.
// With the removal in its log a restarted node is not a voter, never
// campaigns, and waits until the leader adds it back. Consul servers wait
// for the same reason.
func (n *Node) awaitRemoval(ctx context.Context) {
	if !n.hasPeers() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 2*n.timing.LeaveTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.raft.State() == raft.Leader {
			// Leadership transfer failed: nobody else will remove us.
			n.logger.Warn("leaving while still the leader: raft configuration keeps this node")
			return
		}
		f := n.raft.GetConfiguration()
		if f.Error() == nil && !hasServer(f.Configuration(), n.id) {
			n.removedFromRaft.Store(true)
			n.logger.Info("removed from raft configuration", "node_id", n.id)
			return
		}
		select {
		case <-ctx.Done():
			n.logger.Warn("leader did not remove this node from raft before shutdown")
			return
		case <-tick.C:
		}
	}
}

func hasServer(c raft.Configuration, id string) bool {
	for _, s := range c.Servers {
		if s.ID == raft.ServerID(id) {
			return true
		}
	}
	return false
}

// hasPeers reports whether the raft configuration has another voter.
func (n *Node) hasPeers() bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if s.ID != raft.ServerID(n.id) && s.Suffrage == raft.Voter {
			return true
		}
	}
	return false
}

// waitFuture waits for a raft future, bounded by ctx. On ctx expiry the
// future keeps running inside raft and resolves at the latest on shutdown.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NodeID returns this node's id.
func (n *Node) NodeID() string { return n.id }

// RaftAddr returns the address the raft transport is bound to and advertises.
func (n *Node) RaftAddr() string { return n.raftAddr }

// GossipAddr returns the address memberlist is bound to.
func (n *Node) GossipAddr() string { return n.gossipAddr }
