package cluster

import (
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tokend/tokend/cluster/raftconf"
)

// HopHeader marks a request that was already forwarded once. It duplicates
// httpapi.HopHeader (cluster must not import httpapi).
const HopHeader = "X-Tokend-Forwarded"

// HopRefusedHeader marks a 503 from a node that refused a forwarded request
// because it does not lead (it never ran it). It duplicates
// httpapi.HopRefusedHeader.
const HopRefusedHeader = "X-Tokend-Hop-Refused"

// clientAddrHeader carries the signed original client address of a
// forwarded request; it duplicates the httpapi constant.
const clientAddrHeader = "X-Tokend-Client-Addr"

// Config configures one cluster node.
type Config struct {
	// NodeID is the raft server ID and the gossip node name. It is stored in
	// <DataDir>/node-id on first start and must match on every later start.
	NodeID string
	// DataDir holds the raft log, stable store and snapshots (created 0700).
	DataDir string
	// HTTPAddr is the advertised host:port of this node's HTTP API; followers
	// forward writes to the leader's HTTPAddr.
	HTTPAddr string
	// RaftAddr is the host:port the raft TCP transport binds and advertises
	// (port 0 picks a free port; RaftAddr() reports the bound address).
	RaftAddr string
	// GossipAddr is the host:port memberlist binds (TCP and UDP; port 0 picks a
	// free port; GossipAddr() reports the bound address).
	GossipAddr string
	// Join lists gossip addresses to join; the node retries in the background
	// until it reaches one of them.
	Join []string
	// BootstrapExpect is the number of servers a fresh cluster waits to see
	// before it bootstraps raft. 1 bootstraps a single node at once; 0 never
	// bootstraps (the node only joins an existing cluster).
	BootstrapExpect int
	// ClusterKey encrypts gossip (16, 24 or 32 bytes); nil disables encryption.
	// It seeds the gossip keyring of a fresh node; after a keyring rotation
	// the node uses the keyring saved in its data dir (keyring.go).
	ClusterKey []byte
	// TokenHashKey keys the HMAC under which token IDs are stored
	// (fsm.NewHasher: 32 to 64 bytes). Every node of a cluster must use the
	// same key; it is never written to the data dir, the log or snapshots.
	TokenHashKey []byte
	// MaxStale (D) is the length of a follower's read lease: a follower cut
	// off from the leader stops serving local reads within D, and a
	// revocation waits at most D for a follower it cannot reach (doc.go,
	// "Read leases"). Default 1s; must exceed Timing.LeaderLeaseTimeout.
	MaxStale time.Duration
	// Logger is the root logger; raft and memberlist log through it.
	Logger hclog.Logger
	// Version is this node's software version, published in gossip metadata.
	Version string
	// Timing holds the raft, gossip and loop timers; the zero value means the
	// production LAN defaults (see DefaultTiming).
	Timing Timing
	// HTTPClient is used to forward requests to the leader without cluster
	// TLS; nil uses a private client with bounded timeouts. With TLS set it
	// is not used: forwarding goes over the cluster port.
	HTTPClient *http.Client

	// TLS, when set, turns the raft port into the authenticated cluster
	// port (doc.go, "Cluster port"): raft, forwarded requests and lease
	// grants all run over mutual TLS with certificates from the cluster CA
	// that name the peer's node id. Its certificate must name NodeID. nil
	// keeps plain TCP for raft and plain HTTP to the leader's HTTP address
	// for forwarding.
	TLS *ClusterTLS
	// RaftListener, when set, is the listener the raft (cluster) port
	// serves instead of one bound on RaftAddr; its address is advertised.
	RaftListener net.Listener
	// WrapPeerConn, when set, wraps every connection this node opens to
	// another node (raft, forwarding, lease grants) before any byte is
	// written; tests use it to capture and inspect the bytes on the wire.
	WrapPeerConn func(net.Conn) net.Conn
	// Clock is the wall clock for the times the leader stamps into
	// commands (the reaper's now, removal times); nil is time.Now. Tests
	// shift it (TOKEND_TEST_CLOCK_OFFSET); raft and every timeout use the
	// monotonic clock and never read it.
	Clock func() time.Time
}

// Timing holds every timer of a node. A zero field takes its value from
// DefaultTiming; tests use FastTiming.
type Timing struct {
	// Raft timers (see raft.Config and doc.go for the reasoning).
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotInterval   time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64
	// TransportTimeout bounds raft RPC I/O.
	TransportTimeout time.Duration

	// Gossip (memberlist) timers.
	GossipProbeInterval    time.Duration
	GossipProbeTimeout     time.Duration
	GossipInterval         time.Duration
	GossipPushPullInterval time.Duration
	GossipSuspicionMult    int

	// ReconcileInterval is how often the leader compares raft membership with
	// gossip even without gossip events.
	ReconcileInterval time.Duration
	// FailedGrace is how long a failed (not gracefully left) member stays a
	// raft voter before the leader removes it.
	FailedGrace time.Duration
	// ReapInterval is how often the leader checks for expired tokens.
	ReapInterval time.Duration
	// LeaderWait bounds how long a forwarded write waits for a leader.
	LeaderWait time.Duration
	// ApplyTimeout caps a Propose whose ctx has no (or a later) deadline.
	ApplyTimeout time.Duration
	// ForwardTimeout bounds one forwarded HTTP request.
	ForwardTimeout time.Duration
	// ForwardDialTimeout bounds connecting to the leader for a forward,
	// the cluster TLS handshake included.
	ForwardDialTimeout time.Duration
	// JoinRetryMin and JoinRetryMax bound the backoff of background joins.
	JoinRetryMin time.Duration
	JoinRetryMax time.Duration
	// LeaveTimeout bounds the gossip leave broadcast on shutdown.
	LeaveTimeout time.Duration
}

// DefaultTiming returns the production timers, tuned for nodes on one LAN
// (round trips well under 1 ms). See doc.go for the reasoning. The raft
// timers come from package raftconf, which test/ceiling shares.
func DefaultTiming() Timing {
	return Timing{
		// The library defaults (1 s / 1 s / 500 ms) make elections take 2-3 s;
		// on a LAN half of that still leaves >100x margin over the RTT and
		// lets a new leader take over well within 2 s of a crash.
		HeartbeatTimeout:   raftconf.HeartbeatTimeout,
		ElectionTimeout:    raftconf.ElectionTimeout,
		LeaderLeaseTimeout: raftconf.LeaderLeaseTimeout,
		// Followers learn the commit index at most 10 ms after the leader.
		CommitTimeout: raftconf.CommitTimeout,
		// Snapshot every 8192 entries (checked every 30 s) and keep 10240
		// entries behind it, so a briefly lagging follower catches up from the
		// log instead of a full snapshot install.
		SnapshotInterval:  raftconf.SnapshotInterval,
		SnapshotThreshold: raftconf.SnapshotThreshold,
		TrailingLogs:      raftconf.TrailingLogs,
		TransportTimeout:  raftconf.TransportTimeout,

		GossipProbeInterval: time.Second,
		GossipProbeTimeout:  500 * time.Millisecond,
		GossipInterval:      200 * time.Millisecond,
		// memberlist's LAN value is 30 s. A node whose outgoing packets
		// were lost for a few seconds is declared dead; it refutes at once,
		// but its refutation is lost too, and after that only a push/pull
		// brings it back: with 30 s the leader removed it from raft (after
		// FailedGrace) although raft reached it fine, and the node stayed
		// out for ~25 s (found by test/chaos, one-way-leader-out). A
		// push/pull with 3-5 nodes is a few KiB.
		GossipPushPullInterval: 5 * time.Second,
		GossipSuspicionMult:    4,

		ReconcileInterval: 2 * time.Second,
		FailedGrace:       10 * time.Second,
		ReapInterval:      time.Second,
		LeaderWait:        5 * time.Second,
		ApplyTimeout:      raftconf.ApplyTimeout,
		ForwardTimeout:    10 * time.Second,
		JoinRetryMin:      250 * time.Millisecond,
		JoinRetryMax:      5 * time.Second,
		LeaveTimeout:      2 * time.Second,

		// A LAN connect and TLS handshake take a few milliseconds; a
		// leader that does not complete one within a second lost the SYN
		// or is not running (the kernel retransmits the SYN after 1 s).
		ForwardDialTimeout: time.Second,
	}
}

// FastTiming returns sub-second timers for in-process tests on loopback:
// raft heartbeat/election 200 ms, gossip probes every 200 ms.
func FastTiming() Timing {
	return Timing{
		// Shorter leases (50-100 ms) make leaders step down when -race tests
		// of several packages share a loaded 2-core machine: a goroutine
		// that is not scheduled for one lease misses a heartbeat round.
		HeartbeatTimeout:   200 * time.Millisecond,
		ElectionTimeout:    200 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotInterval:   time.Second,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
		TransportTimeout:   2 * time.Second,

		GossipProbeInterval:    200 * time.Millisecond,
		GossipProbeTimeout:     150 * time.Millisecond,
		GossipInterval:         20 * time.Millisecond,
		GossipPushPullInterval: time.Second,
		GossipSuspicionMult:    4,

		ReconcileInterval: 100 * time.Millisecond,
		FailedGrace:       3 * time.Second,
		ReapInterval:      50 * time.Millisecond,
		LeaderWait:        5 * time.Second,
		ApplyTimeout:      5 * time.Second,
		ForwardTimeout:    5 * time.Second,
		JoinRetryMin:      20 * time.Millisecond,
		JoinRetryMax:      200 * time.Millisecond,
		LeaveTimeout:      500 * time.Millisecond,

		ForwardDialTimeout: time.Second,
	}
}

// withDefaults fills every zero field from DefaultTiming.
func (t Timing) withDefaults() Timing {
	d := DefaultTiming()
	durs := []struct{ v, def *time.Duration }{
		{&t.HeartbeatTimeout, &d.HeartbeatTimeout},
		{&t.ElectionTimeout, &d.ElectionTimeout},
		{&t.LeaderLeaseTimeout, &d.LeaderLeaseTimeout},
		{&t.CommitTimeout, &d.CommitTimeout},
		{&t.SnapshotInterval, &d.SnapshotInterval},
		{&t.TransportTimeout, &d.TransportTimeout},
		{&t.GossipProbeInterval, &d.GossipProbeInterval},
		{&t.GossipProbeTimeout, &d.GossipProbeTimeout},
		{&t.GossipInterval, &d.GossipInterval},
		{&t.GossipPushPullInterval, &d.GossipPushPullInterval},
		{&t.ReconcileInterval, &d.ReconcileInterval},
		{&t.FailedGrace, &d.FailedGrace},
		{&t.ReapInterval, &d.ReapInterval},
		{&t.LeaderWait, &d.LeaderWait},
		{&t.ApplyTimeout, &d.ApplyTimeout},
		{&t.ForwardTimeout, &d.ForwardTimeout},
		{&t.ForwardDialTimeout, &d.ForwardDialTimeout},
		{&t.JoinRetryMin, &d.JoinRetryMin},
		{&t.JoinRetryMax, &d.JoinRetryMax},
		{&t.LeaveTimeout, &d.LeaveTimeout},
	}
	for _, f := range durs {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if t.SnapshotThreshold == 0 {
		t.SnapshotThreshold = d.SnapshotThreshold
	}
	if t.TrailingLogs == 0 {
		t.TrailingLogs = d.TrailingLogs
	}
	if t.GossipSuspicionMult <= 0 {
		t.GossipSuspicionMult = d.GossipSuspicionMult
	}
	return t
}
