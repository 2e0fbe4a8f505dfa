package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/tokend/tokend/cluster/status"
)

// PeerRemover is the optional part of Node behind
// sys/storage/raft/remove-peer (cluster.Node implements it; the route
// answers 400 on a Node without it). RemovePeer runs on the leader: it
// records the removal in replicated state, so gossip never adds the server
// back as a voter, and removes it from the raft configuration. It is
// idempotent; status.ErrUnknownPeer when the server is neither in the
// configuration nor removed already.
type PeerRemover interface {
	RemovePeer(ctx context.Context, serverID string) error
}

// raftPeerRoutes is Vault's explicit raft membership endpoint
// (`tokend operator raft remove-peer`).
func (s *server) raftPeerRoutes() []*Route {
	return []*Route{{
		Path: "/v1/sys/storage/raft/remove-peer", MountType: "system",
		Fields: Fields{"server_id": {Type: String, Required: true, MaxLen: 256,
			Missing: "missing server_id", Description: "The node id of the raft server to remove"}},
		Ops: update(&Op{Handler: s.raftRemovePeer, Kind: Write,
			Summary: "Remove a server from the raft configuration for good (root or sudo)"}),
		Description: "Forwarded to the leader. The removal is recorded in replicated state first, so the removed " +
			"node is never re-added as a voter by gossip, also not after a restart on its data dir; a node whose " +
			"data dir was wiped joins again as a new instance. The removed node answers 503 from then on. " +
			"Removing the leader makes it step down. Idempotent: 204 again for a server already removed.",
	}}
}

func (s *server) raftRemovePeer(ctx context.Context, r *Request) (*Response, error) {
	if !s.sudo(r) {
		return nil, newError(http.StatusForbidden, msgACLDenied)
	}
	id := strings.TrimSpace(r.Data.String("server_id"))
	if id == "" {
		return nil, badRequest("missing server_id")
	}
	pr, ok := s.node.(PeerRemover)
	if !ok {
		return nil, badRequest("this node cannot remove raft peers")
	}
	err := pr.RemovePeer(ctx, id)
	switch {
	case errors.Is(err, status.ErrUnknownPeer):
		return nil, badRequest("server " + id + " is not in the raft configuration")
	case err != nil:
		return nil, err
	}
	s.log.Info("raft peer removed", "peer", id)
	return nil, nil
}
