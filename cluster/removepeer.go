package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

// Explicit peer removal (sys/storage/raft/remove-peer, Vault's endpoint).
//
// Membership is otherwise gossip-driven (reconcile in leader.go): a removed
// server that is still alive in gossip would be added back on the next
// pass. So a removal is recorded in replicated state first (fsm.RemovePeer,
// a tombstone in the log and in snapshots), then the server leaves the raft
// configuration, and reconcile never adds a member whose (node id, instance
// id) matches a tombstone. The instance id is random per data dir
// (instanceIDFile, created at first start, advertised in gossip metadata):
// a node whose data dir was wiped comes back with a new instance id and may
// join again, after the same cluster-TLS check every new voter passes. A
// node restarted on its old data dir keeps its instance id and stays out.
//
// The removed node itself, once it applied its tombstone (or saw a
// configuration without itself), logs an error and reports itself stale,
// so every read and write it gets is answered 503 (removalWatch).

// instanceIDFile holds the data dir's instance id.
const instanceIDFile = "instance-id"

// loadInstanceID returns the data dir's instance id, creating it on first
// start (8 random bytes, hex: enough to tell a data dir's lives apart, and
// short, as gossip metadata is limited to 512 bytes).
func loadInstanceID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, instanceIDFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", fmt.Errorf("read instance id: %w", err)
	}
	raw := make([]byte, 8)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw)
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("store instance id: %w", err)
	}
	return id, nil
}

// InstanceID returns the random id of this node's data dir.
func (n *Node) InstanceID() string { return n.instanceID }

// memberInstance returns the instance id a member advertised in gossip,
// alive or not, and whether the member is known at all.
func (n *Node) memberInstance(id string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	rec := n.members[id]
	if rec == nil || !rec.metaOK {
		return "", false
	}
	return rec.meta.InstanceID, true
}

// RemovePeer removes raft server serverID for good (sys/storage/raft/
// remove-peer): it commits a tombstone naming the server's node id and the
// instance id gossip last reported for it, then removes it from the raft
// configuration. Leader only (status.ErrNotLeader elsewhere; httpapi
// forwards the request). It is idempotent: a server that is tombstoned and
// already out of the configuration succeeds again, so a client may retry
// an indeterminate call. status.ErrUnknownPeer when the server is neither
// in the configuration nor tombstoned. Removing the leader itself is
// allowed: raft commits the change and the leader steps down.
func (n *Node) RemovePeer(ctx context.Context, serverID string) error {
	if n.raft.State() != raft.Leader {
		return status.ErrNotLeader
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return n.mapRaftErr(err)
	}
	inConfig := hasServer(f.Configuration(), serverID)
	instance, known := n.memberInstance(serverID)
	tombstoned := n.fsm.PeerRemoved(serverID, instance)
	if !inConfig && !tombstoned {
		return status.ErrUnknownPeer
	}
	if !tombstoned || !known {
		// Without a gossip record the instance is unknown: the tombstone
		// then covers every instance of the id (fsm.PeerTombstone.Matches).
		res, _, err := n.Propose(ctx, fsm.RemovePeer{ServerID: serverID, InstanceID: instance, Time: n.now().UnixNano()})
		if err != nil {
			return err
		}
		if res.Err != nil {
			return res.Err
		}
	}
	if !inConfig {
		return nil
	}
	n.logger.Info("removing raft server on request", "peer", serverID, "instance_id", instance)
	if err := waitFuture(ctx, n.raft.RemoveServer(raft.ServerID(serverID), 0, n.timing.ApplyTimeout)); err != nil {
		return n.mapRaftErr(err)
	}
	return nil
}

// skipTombstoned reports whether reconcile must not add member id (with the
// instance id it advertises) as a voter, logging that once per member and
// instance.
func (n *Node) skipTombstoned(rs *reconcileState, id, instance string) bool {
	if !n.fsm.PeerRemoved(id, instance) {
		return false
	}
	key := id + "/" + instance
	if !rs.tombstoneWarned[key] {
		if rs.tombstoneWarned == nil {
			rs.tombstoneWarned = make(map[string]bool)
		}
		rs.tombstoneWarned[key] = true
		n.logger.Warn("not adding raft voter: it was removed (sys/storage/raft/remove-peer); wipe its data dir to re-join it",
			"peer", id, "instance_id", instance)
	}
	return true
}

// removeTombstoned finishes a removal whose tombstone committed but whose
// configuration change did not (the leader that proposed it crashed in
// between): it removes one tombstoned server still in the configuration
// and reports whether it changed the configuration. A server whose live
// instance differs from the tombstoned one (a wiped node that re-joined)
// stays.
func (n *Node) removeTombstoned(ctx context.Context, servers []raft.Server, index uint64) bool {
	for _, s := range servers {
		id := string(s.ID)
		if id == n.id {
			continue
		}
		instance, _ := n.memberInstance(id)
		if !n.fsm.PeerRemoved(id, instance) {
			continue
		}
		n.logger.Info("removing tombstoned raft server", "peer", id, "instance_id", instance)
		if err := waitFuture(ctx, n.raft.RemoveServer(s.ID, index, n.timing.ApplyTimeout)); err != nil {
			n.logger.Warn("remove tombstoned raft server failed", "peer", id, "error", err)
			return false
		}
		return true
	}
	return false
}

// removalCheckInterval is how often a node checks whether it was removed.
const removalCheckInterval = 250 * time.Millisecond

// removalWatch marks this node removed once its own tombstone is applied
// here, or once the latest raft configuration it knows no longer holds it
// after it was a member. A removed node answers every read and write with
// 503 (Health reports it stale and leaderless) until it is wiped.
func (n *Node) removalWatch() {
	defer n.wg.Done()
	t := time.NewTicker(removalCheckInterval)
	defer t.Stop()
	wasMember := false
	for {
		select {
		case <-n.shutdownCh:
			return
		case <-t.C:
		}
		if n.removed.Load() {
			continue
		}
		reason := ""
		if n.fsm.PeerRemoved(n.id, n.instanceID) {
			reason = "tombstone applied"
		} else if f := n.raft.GetConfiguration(); f.Error() == nil && len(f.Configuration().Servers) > 0 {
			member := hasServer(f.Configuration(), n.id)
			if wasMember && !member && !n.shuttingDown.Load() {
				reason = "raft configuration no longer holds this node"
			}
			wasMember = wasMember || member
		}
		if reason == "" {
			continue
		}
		// A configuration change alone can be a gossip-driven removal of
		// a failed node that comes back: reconcile re-adds it. Only a
		// tombstone is final.
		if reason != "tombstone applied" {
			n.logger.Warn("this node is not in the raft configuration; waiting to be re-added", "node_id", n.id, "reason", reason)
			wasMember = false
			continue
		}
		n.removed.Store(true)
		n.logger.Error("this node was removed from the cluster (sys/storage/raft/remove-peer): serving nothing; "+
			"wipe its data dir and restart it to re-join", "node_id", n.id, "instance_id", n.instanceID)
	}
}

// Removed reports whether this node learned that it was removed
// (removalWatch).
func (n *Node) Removed() bool { return n.removed.Load() }

// now is the node's wall clock (Config.Clock).
func (n *Node) now() time.Time {
	if n.cfg.Clock != nil {
		return n.cfg.Clock()
	}
	return time.Now()
}
