package httpapi

import (
	"context"
	"net/http"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

// HopHeader marks a request that was already forwarded once; a node that
// receives it and is not the leader answers 503 instead of forwarding again.
const HopHeader = "X-Tokend-Forwarded"

// HopRefusedHeader marks that refusal: the 503 of a node that got a
// forwarded request and does not lead, so it never ran it. The forwarding
// node then sends the request to the next leader, whatever it is.
const HopRefusedHeader = "X-Tokend-Hop-Refused"

// Node is what the HTTP layer may ask of the cluster. cluster.Node implements
// it; tests use a fake backed by a real fsm.FSM.
type Node interface {
	// Propose replicates a command and returns its result and log index once
	// it is committed and applied on this node (the leader). On a follower
	// it returns status.ErrNotLeader.
	Propose(ctx context.Context, c fsm.Command) (fsm.Result, uint64, error)
	// State is the node's local, read-only view of the state machine.
	State() fsm.Reader
	// AppliedIndex is the last raft index applied on this node.
	AppliedIndex() uint64
	// AwaitIndex waits until AppliedIndex >= index or ctx ends.
	AwaitIndex(ctx context.Context, index uint64) error
	// VerifyLeader confirms with a quorum that this node is still the leader
	// and that it has applied everything committed before it took office.
	VerifyLeader(ctx context.Context) error
	// ForwardToLeader sends the request (whose body must be re-readable) to
	// the leader's HTTP address with HopHeader set and copies the answer to
	// w. It waits a bounded time for a leader. forwarded=false with a nil
	// error means this node is the leader and must handle the request itself;
	// an error means nothing was written (status.ErrNoLeader, ErrNotLeader,
	// ErrLeaderChanged). A request whose context carries
	// status.WithRetrySafe may be sent again to a new leader when a leader
	// change cuts it off; any other gets ErrLeaderChanged then.
	ForwardToLeader(w http.ResponseWriter, r *http.Request) (forwarded bool, err error)
	// Health reports leadership and staleness.
	Health() status.Health
	// Members is the gossip view of the cluster.
	Members() []status.Member
	// RaftServers is the current raft configuration.
	RaftServers() ([]status.RaftServer, error)
	// ServeInternal answers the node-to-node endpoints under
	// InternalPathPrefix (read-lease grants). They authenticate their
	// bodies themselves, so the adapter hands them over before any token
	// check.
	ServeInternal(w http.ResponseWriter, r *http.Request)
	// TokenHasher hashes token IDs with the cluster's token hash key (the
	// same on every node; never stored).
	TokenHasher() *fsm.Hasher
	// GossipKeyring is the gossip encryption keyring as this node sees it;
	// changes are proposed as fsm.SetGossipKeyring.
	GossipKeyring() status.GossipKeyring
}

// InternalPathPrefix is where the node-to-node endpoints live; it
// duplicates cluster.InternalPathPrefix (httpapi must not import cluster).
const InternalPathPrefix = "/v1/sys/internal/cluster/"
