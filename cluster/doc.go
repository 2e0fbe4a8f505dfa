// Package cluster runs one tokend server: raft (log and stable store in one
// raft-boltdb file, snapshots in a raft.FileSnapshotStore, TCP transport),
// memberlist gossip for discovery and failure detection, the leader-only
// loops, write forwarding and the consistency waits behind reads.
//
// It owns the raft.FSM adapter around *fsm.FSM; fsm itself never sees raft.
// It may import fsm, config and cluster/status, never httpapi (the hop
// header name is duplicated here as HopHeader).
//
// # Data dir
//
//	<data-dir>/node-id       the node id, written on first start; a different
//	                         -node-id on the same dir is an error
//	<data-dir>/raft/raft.db  raft log + stable store (bolt)
//	<data-dir>/raft/snapshots/
//
// # Membership
//
// Every node publishes gossip metadata: node id, raft address, HTTP address,
// version and whether it already has raft state. With BootstrapExpect N a
// fresh node bootstraps raft (every node with the same, sorted configuration)
// once it sees N alive members none of which has raft state; N=1 bootstraps
// at once. A node restarted on its data dir never bootstraps again. The
// leader reconciles raft with gossip on every gossip event and every
// ReconcileInterval: an alive member that is not a voter is added; a member
// that left gracefully is removed; a failed member is removed only after
// FailedGrace and only if the remaining alive voters keep a quorum. The
// leader never removes itself; a leader that shuts down first transfers
// leadership.
//
// memberlist reports a graceful leave and a failure through the same
// callback, so a leaving node first broadcasts Leaving=true in its metadata.
// It then waits (bounded) until its own removal has reached its raft log:
// restarted, it is not a voter of its own configuration, so two nodes that
// left cannot elect a second leader from a stale configuration; the leader
// adds it back when it reappears in gossip. Gossip state is read only from
// the delegate's callbacks (memberlist mutates the nodes that Members()
// returns, which races).
//
// # Invariants
//
//   - Propose returns success only for an entry committed by a quorum and
//     applied on the leader; otherwise ErrNotLeader, ErrTimeout or
//     ErrShuttingDown (the entry may still commit later: the outcome is then
//     unknown, never falsely positive).
//   - AppliedIndex is advanced after the fsm applied an entry, so
//     AwaitIndex(i) followed by a read of State() sees entry i.
//   - VerifyLeader succeeds only on a leader that a quorum still follows and
//     whose post-election barrier has applied (Consul's recipe for a
//     ReadIndex that hashicorp/raft lacks).
//   - A request is forwarded at most once, and only to the HTTP address
//     gossip published for the raft leader's id.
//
// # Raft timing
//
// The library defaults (heartbeat 1 s, election 1 s, leader lease 500 ms)
// are made for WANs and make elections take 2-3 s; Consul and Vault even
// multiply them by 5. tokend runs on a LAN (RTT well under 1 ms) and must
// replace a killed leader and accept writes again within 2 s, so the
// defaults (DefaultTiming) are:
//
//	HeartbeatTimeout   500 ms  a follower starts an election after 500-1000 ms
//	                           without contact (raft randomises); >100x RTT
//	ElectionTimeout    500 ms  candidates retry quickly after a split vote
//	LeaderLeaseTimeout 250 ms  a partitioned leader steps down within 250 ms,
//	                           bounding how long it can serve a stale
//	                           VerifyLeader-free read
//	CommitTimeout       10 ms  followers learn the commit index promptly even
//	                           when no new entry arrives
//	SnapshotThreshold  8192    entries between snapshots ...
//	SnapshotInterval    30 s   ... checked this often
//	TrailingLogs      10240    entries kept after a snapshot, so a follower
//	                           that was briefly away catches up from the log
//
// Pre-vote is enabled (the raft v1.7 default), so a node rejoining after a
// partition does not depose a healthy leader. A killed leader is thus
// detected in 0.5-1 s and replaced one or two round trips later; a graceful
// shutdown transfers leadership and needs no timeout at all.
//
// Gossip uses memberlist's LAN profile with a 1 s probe interval; a failed
// member is removed from raft after FailedGrace (10 s), long enough to ride
// out a process restart without churning the raft configuration.
//
// Tests use FastTiming: 100 ms raft timers and 100 ms gossip probes.
package cluster
