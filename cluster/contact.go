package cluster

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// contactTransport is the raft transport, recording when each peer last
// answered an AppendEntries RPC this node sent. On the leader that is every
// heartbeat (raft sends them every HeartbeatTimeout/10 through
// AppendEntries, never through the pipeline), so the record is the
// leader's own view of whether raft still reaches a follower: what Consul's
// autopilot calls a server's last contact. hashicorp/raft keeps the same
// time per follower but does not export it. Embedding the
// *raft.NetworkTransport keeps every optional interface raft looks for
// (WithClose, WithPeers, WithPreVote).
type contactTransport struct {
	*raft.NetworkTransport
	last sync.Map // raft.ServerID -> *atomic.Int64 (UnixNano)
}

// AppendEntries implements raft.Transport. Any answer counts as contact,
// a rejected one too: the peer is there and talking raft.
func (t *contactTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress,
	args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil {
		v, ok := t.last.Load(id)
		if !ok {
			v, _ = t.last.LoadOrStore(id, new(atomic.Int64))
		}
		v.(*atomic.Int64).Store(time.Now().UnixNano())
	}
	return err
}

// lastContact returns when peer id last answered an AppendEntries RPC of
// this node (zero: never).
func (t *contactTransport) lastContact(id raft.ServerID) time.Time {
	v, ok := t.last.Load(id)
	if !ok {
		return time.Time{}
	}
	return time.Unix(0, v.(*atomic.Int64).Load())
}
