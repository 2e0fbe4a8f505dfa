package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/memberlist"

	"github.com/tokend/tokend/cluster/status"
)

// nodeMeta is the gossip metadata every node publishes (kept well under
// memberlist's 512-byte limit).
type nodeMeta struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	HTTPAddr string `json:"http_addr"`
	Version  string `json:"version,omitempty"`
	// Bootstrapped is true once the node has raft state (it bootstrapped, was
	// added to a cluster, or restarted on an existing data dir). A fresh node
	// never bootstraps a cluster next to a bootstrapped one.
	Bootstrapped bool `json:"bootstrapped,omitempty"`
	// Leaving is set (and broadcast) just before a graceful leave.
	// memberlist reports a leave and a failure with the same callback and
	// does not fill in Node.State, so this flag is how peers tell them apart.
	Leaving bool `json:"leaving,omitempty"`
	// HashKeyCheck is the fingerprint of the node's token hash key
	// (fsm.Hasher.KeyCheck): nodes with different keys would not find each
	// other's tokens, so the leader never makes such a node a voter.
	HashKeyCheck string `json:"hk,omitempty"`
	// GossipKeys are the fingerprints (status.KeyFingerprint) of the
	// node's gossip keys, primary first, for keyring list and rotation.
	GossipKeys []string `json:"gk,omitempty"`
	// InstanceID is the random id of the node's data dir (removepeer.go):
	// a removed node keeps it across restarts, a wiped one gets a new one.
	InstanceID string `json:"iid,omitempty"`
}

// decodeMeta parses and validates a member's metadata. name is the gossip
// node name, which must equal the node id.
func decodeMeta(name string, b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) == 0 {
		return m, errors.New("no metadata")
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("decode metadata: %w", err)
	}
	if m.ID == "" || m.ID != name {
		return m, errors.New("metadata node id does not match the member name")
	}
	if _, _, err := net.SplitHostPort(m.RaftAddr); err != nil {
		return m, fmt.Errorf("bad raft address: %w", err)
	}
	if m.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(m.HTTPAddr); err != nil {
			return m, fmt.Errorf("bad http address: %w", err)
		}
	}
	return m, nil
}

// forgetGoneAfter is how long a dead or left member stays in Members().
const forgetGoneAfter = time.Hour

// memberEvent is one memberlist callback, queued for the event loop.
type memberEvent struct {
	kind  string // join, leave, update
	node  memberlist.Node
	seq   uint64 // callback order: memberlist calls back under its node lock
	stamp time.Time
}

// memberRecord is what the node remembers about a gossip member.
// memberAddrs maps a member's id to the raft and HTTP addresses of its
// valid metadata. A published map is never modified (copy on write), so
// leaderInfo, on the path of every request, reads it without n.mu: under
// load that lock was the most contended one of a follower after the rate
// limiter's (mutex profile of lookup-self under a create load).
type memberAddrs map[string]memberAddr

type memberAddr struct{ raft, http string }

// publishAddrsLocked publishes a fresh memberAddrs from n.members; n.mu
// must be held.
func (n *Node) publishAddrsLocked() {
	m := make(memberAddrs, len(n.members))
	for id, r := range n.members {
		if r.metaOK {
			m[id] = memberAddr{raft: r.meta.RaftAddr, http: r.meta.HTTPAddr}
		}
	}
	n.addrs.Store(&m)
}

type memberRecord struct {
	name   string
	addr   string
	meta   nodeMeta
	metaOK bool
	status string // alive, suspect, dead, left
	since  time.Time
	seq    uint64
}

// delegate implements memberlist.Delegate and memberlist.EventDelegate.
// Callbacks never block and never call back into memberlist.
type delegate struct{ n *Node }

// NodeMeta implements memberlist.Delegate.
func (d delegate) NodeMeta(limit int) []byte {
	b := d.n.localMetaBytes()
	if len(b) > limit {
		// Cannot happen with sane addresses; memberlist would panic.
		return nil
	}
	return b
}

// NotifyMsg implements memberlist.Delegate.
func (delegate) NotifyMsg([]byte) {}

// GetBroadcasts implements memberlist.Delegate.
func (delegate) GetBroadcasts(int, int) [][]byte { return nil }

// LocalState implements memberlist.Delegate.
func (delegate) LocalState(bool) []byte { return nil }

// MergeRemoteState implements memberlist.Delegate.
func (delegate) MergeRemoteState([]byte, bool) {}

// NotifyJoin implements memberlist.EventDelegate.
func (d delegate) NotifyJoin(n *memberlist.Node) { d.push("join", n) }

// NotifyLeave implements memberlist.EventDelegate.
func (d delegate) NotifyLeave(n *memberlist.Node) { d.push("leave", n) }

// NotifyUpdate implements memberlist.EventDelegate.
func (d delegate) NotifyUpdate(n *memberlist.Node) { d.push("update", n) }

func (d delegate) push(kind string, n *memberlist.Node) {
	// Copy now: memberlist mutates *n after we return, and reading its
	// Members() pointers later races with that.
	ev := memberEvent{kind: kind, node: *n, seq: d.n.eventSeq.Add(1), stamp: time.Now()}
	ev.node.Meta = append([]byte(nil), n.Meta...)
	ev.node.Addr = append(net.IP(nil), n.Addr...)
	select {
	case d.n.events <- ev:
	default:
		// Channel full: park the latest event per member instead of
		// dropping it; the event loop drains this too. Never blocks long:
		// overflowMu guards only this map.
		d.n.overflowMu.Lock()
		d.n.overflow[ev.node.Name] = ev
		d.n.overflowMu.Unlock()
	}
}

func stateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateLeft:
		return "left"
	default:
		return "dead"
	}
}

// setupGossip creates the memberlist on cfg.GossipAddr.
func (n *Node) setupGossip() error {
	host, portStr, err := net.SplitHostPort(n.cfg.GossipAddr)
	if err != nil {
		return fmt.Errorf("gossip address %q: %w", n.cfg.GossipAddr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("gossip address %q: bad port", n.cfg.GossipAddr)
	}
	t := n.timing
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.id
	mc.BindAddr = host
	mc.BindPort = port
	mc.AdvertisePort = port
	mc.ProbeInterval = t.GossipProbeInterval
	mc.ProbeTimeout = t.GossipProbeTimeout
	mc.GossipInterval = t.GossipInterval
	mc.PushPullInterval = t.GossipPushPullInterval
	mc.SuspicionMult = t.GossipSuspicionMult
	if t.GossipProbeInterval < time.Second {
		// Short timers are for loopback tests: keep TCP fallbacks short too.
		mc.TCPTimeout = time.Second
		mc.GossipToTheDeadTime = 5 * time.Second
	}
	// Node names are unique node ids: a node that died and comes back on a
	// new address (a restart with port 0) may reclaim its name soon after,
	// instead of being refused for GossipToTheDeadTime.
	mc.DeadNodeReclaimTime = 5 * t.GossipProbeInterval
	kr, err := n.setupKeyring()
	if err != nil {
		return err
	}
	if kr != nil {
		// With a keyring memberlist encrypts with the primary key and
		// accepts every installed one; unencrypted packets are refused
		// (GossipVerifyIncoming, on by default).
		n.keyring = kr
		mc.Keyring = kr
		n.meta.GossipKeys = fingerprints(kr.GetKeys())
	}
	mc.Delegate = delegate{n}
	mc.Events = delegate{n}
	mc.Logger = n.logger.Named("gossip").StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})
	ml, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("start gossip on %s: %w", n.cfg.GossipAddr, err)
	}
	n.ml = ml
	local := ml.LocalNode()
	n.gossipAddr = net.JoinHostPort(local.Addr.String(), strconv.Itoa(int(local.Port)))
	return nil
}

// localMetaBytes returns the encoded local metadata.
func (n *Node) localMetaBytes() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	b, _ := json.Marshal(n.meta)
	return b
}

// announceLeave publishes Leaving in this node's metadata so peers
// recognise the following gossip leave as graceful.
func (n *Node) announceLeave(timeout time.Duration) {
	n.mu.Lock()
	n.meta.Leaving = true
	n.mu.Unlock()
	if err := n.ml.UpdateNode(timeout); err != nil {
		n.logger.Warn("gossip metadata update failed", "error", err)
	}
}

// markBootstrapped records that this node has raft state and re-advertises
// its metadata.
func (n *Node) markBootstrapped() {
	n.mu.Lock()
	if n.meta.Bootstrapped {
		n.mu.Unlock()
		return
	}
	n.meta.Bootstrapped = true
	n.mu.Unlock()
	if err := n.ml.UpdateNode(n.timing.LeaveTimeout); err != nil {
		n.logger.Warn("gossip metadata update failed", "error", err)
	}
}

// eventLoop owns the member records fed by memberlist callbacks.
func (n *Node) eventLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.shutdownCh:
			return
		case ev := <-n.events:
			n.handleEvent(ev)
		}
		n.overflowMu.Lock()
		parked := n.overflow
		if len(parked) > 0 {
			n.overflow = make(map[string]memberEvent)
		}
		n.overflowMu.Unlock()
		for _, ev := range parked {
			n.handleEvent(ev)
		}
		n.nudgeReconcile()
	}
}

func (n *Node) handleEvent(ev memberEvent) {
	meta, err := decodeMeta(ev.node.Name, ev.node.Meta)
	st := stateName(ev.node.State)
	switch ev.kind {
	case "join":
		st = "alive"
	case "leave":
		st = "dead"
	}
	n.mu.Lock()
	rec := n.members[ev.node.Name]
	if rec == nil {
		rec = &memberRecord{name: ev.node.Name}
		n.members[ev.node.Name] = rec
	}
	if ev.kind == "leave" && ((err == nil && meta.Leaving) || (rec.metaOK && rec.meta.Leaving)) {
		st = "left"
	}
	if ev.seq < rec.seq {
		n.mu.Unlock()
		return // an older event drained after a newer one
	}
	rec.seq = ev.seq
	rec.addr = net.JoinHostPort(ev.node.Addr.String(), strconv.Itoa(int(ev.node.Port)))
	if err == nil {
		rec.meta, rec.metaOK = meta, true
	}
	changed := rec.status != st
	if changed {
		rec.status = st
		rec.since = ev.stamp
	}
	// Forget members that have been gone for long (bounded memory under
	// churn); by then the leader has long removed them from raft.
	for name, r := range n.members {
		if (r.status == "dead" || r.status == "left") && ev.stamp.Sub(r.since) > forgetGoneAfter {
			delete(n.members, name)
		}
	}
	n.publishAddrsLocked()
	n.mu.Unlock()

	switch {
	case err != nil && st == "alive":
		n.logger.Warn("member has invalid metadata", "peer", ev.node.Name, "error", err)
	case !changed:
	case st == "alive" && meta.HashKeyCheck != n.keyCheck:
		n.logger.Error("member uses a different token hash key; it will not become a raft voter", "peer", ev.node.Name)
	case st == "alive":
		n.logger.Info("member joined", "peer", ev.node.Name, "raft_addr", meta.RaftAddr, "http_addr", meta.HTTPAddr)
	case st == "left":
		n.logger.Info("member left", "peer", ev.node.Name)
	default:
		n.logger.Warn("member failed", "peer", ev.node.Name)
	}
}

// liveMembers returns the alive members with valid metadata and this
// node's token hash key (by HashKeyCheck), keyed by node id. Only they count
// for bootstrap and become voters: a node with another key would answer
// "permission denied" for every token. It reads the event-fed records,
// never memberlist's Members(), whose returned nodes memberlist keeps
// mutating.
func (n *Node) liveMembers() map[string]memberRecord {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]memberRecord)
	for name, rec := range n.members {
		if rec.metaOK && !rec.meta.Leaving && rec.meta.HashKeyCheck == n.keyCheck && (rec.status == "alive" || rec.status == "suspect") {
			out[name] = *rec
		}
	}
	return out
}

// memberStatus returns the last known status of a member ("alive",
// "left", "dead" or "" when unknown) and when it took that status.
func (n *Node) memberStatus(id string) (string, time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if rec := n.members[id]; rec != nil {
		return rec.status, rec.since
	}
	return "", time.Time{}
}

// Members implements httpapi.Node: the gossip view, sorted by name.
func (n *Node) Members() []status.Member {
	n.mu.Lock()
	out := make([]status.Member, 0, len(n.members))
	for name, rec := range n.members {
		out = append(out, status.Member{
			Name: name, Addr: rec.addr, RaftAddr: rec.meta.RaftAddr,
			HTTPAddr: rec.meta.HTTPAddr, Version: rec.meta.Version, Status: rec.status,
		})
	}
	n.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// joinLoop joins the configured gossip addresses, retrying with a bounded
// backoff until another member is known or the node shuts down.
func (n *Node) joinLoop() {
	defer n.wg.Done()
	// A keyring fetch is network I/O: shutdown cancels it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.shutdownCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := n.timing.JoinRetryMin
	for attempt := 1; ; attempt++ {
		if n.ml.NumMembers() > 1 {
			return
		}
		joined, err := n.ml.Join(n.cfg.Join)
		if joined > 0 && n.ml.NumMembers() > 1 {
			n.logger.Info("joined cluster", "peers", joined)
			return
		}
		if attempt == 1 || attempt%10 == 0 {
			n.logger.Warn("join failed, retrying", "attempt", attempt, "error", err)
		}
		if attempt%3 == 0 && n.fetchKeyring(ctx) {
			// This node missed a keyring rotation while it was away.
			n.logger.Info("gossip keyring fetched from a peer; joining again")
			continue
		}
		select {
		case <-n.shutdownCh:
			return
		case <-time.After(backoff):
		}
		backoff *= 2
		if backoff > n.timing.JoinRetryMax {
			backoff = n.timing.JoinRetryMax
		}
	}
}
