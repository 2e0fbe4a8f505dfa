// Package status holds the errors and plain structs that cross the seam
// between cluster and httpapi. It is a leaf: it imports nothing of ours and
// nothing of raft or memberlist.
package status

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Errors a Node returns; httpapi maps each to a status code.
var (
	// ErrNotLeader: a write reached a node that is not (or no longer) the leader.
	ErrNotLeader = errors.New("node is not the leader")
	// ErrHopRefused: a request that was already forwarded once reached a
	// node that does not lead; it was not run (and is never forwarded
	// twice).
	ErrHopRefused = fmt.Errorf("%w: a forwarded request is not forwarded again", ErrNotLeader)
	// ErrNoLeader: no leader became known within the bounded wait.
	ErrNoLeader = errors.New("no leader elected")
	// ErrStale: this node has not heard from a leader within max-stale.
	ErrStale = errors.New("node is stale: no recent contact with the leader")
	// ErrTimeout: a bounded wait (raft apply, index wait) ran out.
	ErrTimeout = errors.New("timed out")
	// ErrShuttingDown: the node is stopping.
	ErrShuttingDown = errors.New("node is shutting down")
	// ErrLeaderChanged: a forwarded request was cut off because raft moved
	// to another leader (or lost it) while the old one held the request;
	// the old leader may or may not have applied it.
	ErrLeaderChanged = errors.New("leader changed while the request was forwarded; it may or may not have been applied")
	// ErrUnknownPeer: a peer removal named a server that is neither in
	// the raft configuration nor already removed.
	ErrUnknownPeer = errors.New("server is not in the raft configuration")
	// ErrLeaderLost: the connection to the leader broke after a forwarded
	// write was sent; the leader may have applied it, so it was not sent
	// again (the outcome is unknown to this node).
	ErrLeaderLost = errors.New("connection to the leader lost while forwarding: the request may have been applied")
)

// retrySafeKey keys the mark WithRetrySafe sets.
type retrySafeKey struct{}

// WithRetrySafe marks a request's context as safe to send to the leader
// again: repeating it leaves the same state and gives the caller an answer
// of the same kind. The forwarder then retries a request that a leader
// change cut off on the new leader instead of answering ErrLeaderChanged.
func WithRetrySafe(ctx context.Context) context.Context {
	return context.WithValue(ctx, retrySafeKey{}, true)
}

// RetrySafe reports whether ctx carries the WithRetrySafe mark.
func RetrySafe(ctx context.Context) bool {
	v, _ := ctx.Value(retrySafeKey{}).(bool)
	return v
}

// Health is a node's view of itself and the cluster, for sys/health,
// sys/leader and the read gates.
type Health struct {
	NodeID   string
	IsLeader bool
	// KnownLeader is true when the node knows a current leader.
	KnownLeader    bool
	LeaderID       string
	LeaderHTTPAddr string // host:port of the leader's HTTP API ("" if unknown)
	LeaderRaftAddr string
	// LastContact is the time since the node last heard from the leader (0 on
	// the leader itself).
	LastContact time.Duration
	// Stale is true on a node that must not answer reads from its local
	// state: a follower that holds no valid read lease from the leader it
	// follows (the lease lapses within max-stale of losing contact) or knows
	// no leader, and a leader whose post-election barrier has not applied
	// yet (its state may miss entries committed by earlier leaders).
	Stale bool
	// LeaseRemaining is how long a follower's read lease still runs (0 when
	// it has none, and on the leader).
	LeaseRemaining time.Duration
	// ActiveTime is when this node became leader (zero if it is not).
	ActiveTime   time.Time
	AppliedIndex uint64
	// ReadyForConsistentReads is true on a leader that has applied a barrier
	// since it took office.
	ReadyForConsistentReads bool
	// SteppingDown is true on a leader handing leadership over before it
	// shuts down: requests it receives are forwarded to the next leader
	// once there is one, not handled here.
	SteppingDown bool
}

// Member is one node as gossip sees it.
type Member struct {
	Name     string `json:"name"`
	Addr     string `json:"address"`
	RaftAddr string `json:"raft_address"`
	HTTPAddr string `json:"http_address"`
	Version  string `json:"version"`
	Status   string `json:"status"` // alive, suspect, dead, left
}

// RaftServer is one server in the raft configuration.
type RaftServer struct {
	NodeID  string `json:"node_id"`
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
	Voter   bool   `json:"voter"`
}

// GossipKeyring is the gossip encryption keyring as one node sees it: its
// own keys, the replicated keyring, and which keys the live members report
// in their gossip metadata (by KeyFingerprint).
type GossipKeyring struct {
	// Enabled is false when this node gossips without encryption (no
	// -cluster-key); the keyring cannot be changed then.
	Enabled bool
	// Version counts the keyring changes committed through raft (0: never
	// changed, every node uses its -cluster-key).
	Version uint64
	// Replicated is the committed keyring, primary first (nil at Version 0).
	Replicated [][]byte
	// Local is the keyring this node's gossip uses now, primary first.
	Local [][]byte
	// Members counts the live gossip members, this node included.
	Members int
	// Installed and Primary map a key fingerprint to the number of live
	// members that hold that key, or use it as their primary key.
	Installed map[string]int
	Primary   map[string]int
}

// KeyFingerprint names a gossip key without revealing it: the first 8
// bytes of its SHA-256, in hex. Nodes publish their keys' fingerprints in
// gossip metadata.
func KeyFingerprint(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}
