package fsm

import (
	"errors"
	"fmt"
	"slices"
)

// MaxRemovedPeers bounds the removed-peer tombstones kept in the state: the
// oldest is dropped when a new one would exceed it. A tombstone only matters
// while the removed process may still run, so a bounded list is enough.
const MaxRemovedPeers = 64

// ErrPeerTombstoneInvalid: a RemovePeer command without a server id.
var ErrPeerTombstoneInvalid = errors.New("remove peer: server id required")

// RemovePeer records that an operator removed raft server ServerID
// (sys/storage/raft/remove-peer). The leader proposes it before it removes
// the server from the raft configuration, and its gossip reconcile never
// adds a member back as a voter while the member's (ServerID, InstanceID)
// matches a tombstone. InstanceID is the random id the server's data dir got
// at its first start ("" when the leader did not know it: then any instance
// of ServerID is refused). A node wiped and started fresh has a new
// instance id, so it may join again once it passed the cluster TLS check,
// which is the authenticated re-join.
//
// Time is the leader's wall clock (Unix nanoseconds), for display only.
type RemovePeer struct {
	ServerID   string `json:"server_id"`
	InstanceID string `json:"instance_id,omitempty"`
	Time       int64  `json:"time,omitempty"`
}

// CommandType implements Command.
func (RemovePeer) CommandType() Type { return TypeRemovePeer }

// PeerTombstone is one removed peer (RemovePeer).
type PeerTombstone struct {
	ServerID   string `json:"server_id"`
	InstanceID string `json:"instance_id,omitempty"`
	Time       int64  `json:"time,omitempty"`
}

// Matches reports whether the tombstone covers the server id and instance
// id a member advertises.
func (p PeerTombstone) Matches(serverID, instanceID string) bool {
	return p.ServerID == serverID && (p.InstanceID == "" || p.InstanceID == instanceID)
}

func applyRemovePeer(s *state, c RemovePeer) Result {
	if c.ServerID == "" {
		return Result{Err: fmt.Errorf("%w: %w", ErrPeerTombstoneInvalid, ErrInvalidCommand)}
	}
	// The list is replaced whole (Snapshot copies the slice header).
	next := make([]PeerTombstone, 0, min(len(s.removedPeers)+1, MaxRemovedPeers))
	for _, p := range s.removedPeers {
		if p.ServerID == c.ServerID && p.InstanceID == c.InstanceID {
			continue // re-removal: the new record replaces it
		}
		next = append(next, p)
	}
	next = append(next, PeerTombstone(c))
	if len(next) > MaxRemovedPeers {
		next = slices.Clone(next[len(next)-MaxRemovedPeers:])
	}
	s.removedPeers = next
	return Result{}
}

// RemovedPeers returns a copy of the removed-peer tombstones, oldest first.
func (f *FSM) RemovedPeers() []PeerTombstone {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Clone(f.st.removedPeers)
}

// PeerRemoved reports whether a tombstone covers (serverID, instanceID).
func (f *FSM) PeerRemoved(serverID, instanceID string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, p := range f.st.removedPeers {
		if p.Matches(serverID, instanceID) {
			return true
		}
	}
	return false
}

// validTombstones checks restored tombstones.
func validTombstones(ps []PeerTombstone) error {
	if len(ps) > MaxRemovedPeers {
		return fmt.Errorf("%d removed peers, at most %d", len(ps), MaxRemovedPeers)
	}
	for i, p := range ps {
		if p.ServerID == "" {
			return fmt.Errorf("removed peer %d has no server id", i)
		}
	}
	return nil
}
