// Package cluster runs one tokend server: raft (log and stable store in one
// raft-boltdb file, snapshots in a raft.FileSnapshotStore, TCP or mutual
// TLS transport),
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
//	<data-dir>/instance-id   random id of this data dir, written on first
//	                         start (removepeer.go): a wiped node is a new
//	                         instance
//	<data-dir>/raft/raft.db  raft log + stable store (bolt)
//	<data-dir>/raft/snapshots/
//	<data-dir>/gossip-keyring  the gossip keys this node uses (primary
//	                         first), their replicated version, fingerprints
//	                         of removed keys and the peers' HTTP addresses
//
// Nothing in the data dir holds the token hash key (Config.TokenHashKey):
// the state stores only HMAC-SHA256(key, token ID), so a copy of the data
// dir, a snapshot or the raft log neither reveals a token nor lets anyone
// test a guessed one. The gossip keys are in the raft log, the snapshots
// and gossip-keyring (as Consul keeps serf/local.keyring in its data dir):
// they protect gossip, not tokens. Every member publishes
// fsm.Hasher.KeyCheck in its gossip metadata; a member whose check differs
// from the leader's (another token hash key: it would answer "permission
// denied" for every token) is not counted for bootstrap, never becomes a
// voter, and is removed like a failed one if it was.
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
// FailedGrace, only once raft lost it too (its last answer to the leader's
// AppendEntries is older than four heartbeat timeouts: contact.go,
// keptByRaft) and only if the remaining alive voters keep a quorum; every
// two probe intervals a node re-joins one member gossip declared failed
// (reconnect.go), since memberlist itself never contacts a dead member
// again. The leader never removes itself; a leader that shuts down first
// transfers leadership. An operator removal (RemovePeer, removepeer.go)
// commits a tombstone (node id, instance id) before the configuration
// change; reconcile never adds a tombstoned instance and finishes a
// tombstone whose configuration change did not commit.
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
// # Gossip keyring
//
// memberlist encrypts with the primary key of its keyring and accepts every
// installed key. -cluster-key seeds the keyring of a fresh node. A rotation
// (tokend operator keyring install, use, remove) is three steps, each one
// raft command (fsm.SetGossipKeyring) carrying the complete keyring and the
// version it was based on. Why raft and not Consul's gossip query: a
// committed step reaches every node that applies the log — also one that
// was down and catches up from the log or a snapshot — in the same order on
// every node, and concurrent steps cannot undo each other (the version is
// checked in Apply). Each node's keyringLoop applies a newer replicated
// keyring to memberlist (add new keys, switch the primary, drop the rest),
// saves it in gossip-keyring and publishes the keys' fingerprints in its
// gossip metadata. The HTTP handlers answer once every live member reports
// the step, and refuse a "use" while a live member lacks the key, and a
// "remove" while a live member still encrypts with it — so no member is
// ever sent a packet it cannot read, and rotation needs no outage.
//
// Restarts: a node starts with the newest of gossip-keyring and the
// keyring in its last snapshot, not with -cluster-key (a -cluster-key that
// a rotation removed is recognised by its fingerprint and ignored; one the
// node has never seen is taken as the operator's new primary, the recovery
// path for a node that missed rotations and has no reachable peer).
//
// A member that missed a rotation — down, or gracefully left and so removed
// from raft, while the key it knows was removed — cannot gossip, so it
// cannot be re-added to raft to catch up from the log. Its join loop
// therefore also asks the peers it last saw (HTTP addresses saved in
// gossip-keyring) for KeyringPath: the answer is sealed with AES-256-GCM
// under a key derived (HMAC, own label) from the token hash key, which
// only members hold, and bound to the asker's random challenge and the
// answering node id; the node applies it if its version is newer and joins
// again.
//
// # Invariants
//
//   - Propose returns success only for an entry committed by a quorum and
//     applied on the leader; otherwise ErrNotLeader, ErrTimeout or
//     ErrShuttingDown (the entry may still commit later: the outcome is then
//     unknown, never falsely positive).
//   - Token creates and renewals proposed while an entry of them is in
//     raft wait and share the next one (groupcommit.go); each still gets
//     its own result, and the shared entry's index.
//   - AppliedIndex is advanced after the fsm applied an entry, so
//     AwaitIndex(i) followed by a read of State() sees entry i.
//   - VerifyLeader succeeds only on a leader that a quorum still follows and
//     whose post-election barrier has applied (Consul's recipe for a
//     ReadIndex that hashicorp/raft lacks).
//   - A request is forwarded at most once, and only to the raft leader:
//     with cluster TLS to its raft address over a connection that must
//     authenticate as its id; without, to the HTTP address gossip
//     published for the raft leader's id and raft address. A leader
//     change raft reports cuts off forwards held by the old leader; only a
//     request marked status.WithRetrySafe, or one that never left this
//     node, is sent again (forward.go).
//   - A forward batch (forwardbatch.go) changes none of that: each request
//     of it is served by the leader's handler as it would be alone, and a
//     failed batch fails each of its requests with the batch's error,
//     which forwardToLeader judges per request. The leader answers a
//     batch with anything but 200 only before any of it ran, so such a
//     refusal sends each request again, alone.
//
// # Cluster port (cluster TLS)
//
// With Config.TLS the raft listener becomes the cluster port, after
// Vault's: every node-to-node byte (raft RPCs, requests a follower forwards
// to the leader, the leader's lease grants) runs over mutual TLS 1.3 on
// that one listener, and the ALPN protocol of the handshake says what the
// connection carries: "tokend-raft" goes to the raft transport,
// "tokend-forward" to an internal HTTP/1.1 server, "tokend-probe" is closed
// after the handshake (stream.go, clusterport.go).
//
// Why one multiplexed port rather than TLS on the HTTP listener, or a
// second port: forwarding over the client listener would have to trust
// whatever certificate clients are served with and accept node-to-node
// requests on the port every client reaches; a forwarded request would be
// told from a client's only by a header. On the cluster port the peer is
// authenticated before any byte of a request is read, the hop marker must
// name the peer's own certificate, and the client listener refuses every
// request carrying the marker, the signed client address, or a
// node-to-node path. One port instead of two keeps the deployment as it
// was (one address per node to open and advertise) and puts forwarding
// and raft behind the same identity checks. Client TLS on the HTTP
// listener is then independent of node-to-node traffic, so it works on a
// cluster of any size.
//
// Identity. Each node's certificate names it in a tokend://node/<id> URI
// SAN (a URI because node ids need not be host names) and chains to the
// cluster CA; both ends verify the chain against the current CA (reloaded
// on SIGHUP) in VerifyConnection. The dialler knows whom it expects: raft
// dials an address of its configuration and accepts only an id the
// configuration has there; forwarding and grants use a client per peer id
// whose every connection must authenticate as that id. The acceptor admits
// ids that are raft servers or alive gossip members (gossip is needed: a
// new member is dialled by the leader before it is in the configuration).
// Before the leader adds a member as a voter, and before a fresh node
// bootstraps with the members it sees, it dials the member's raft address
// with "tokend-probe" expecting the member's id: a node holding the gossip
// key but no cluster certificate for its id is never written into the raft
// configuration. Not checked: the sender id inside raft's own RPC header
// (raft authenticates nothing itself; a node with a valid certificate is
// trusted as a cluster member, as in Consul and Vault).
//
// Targets. Forwarding uses the leader's id and address from
// raft.LeaderWithID (learnt from the leader's own RPCs), never gossip
// metadata and never anything in the request, so neither a poisoned
// gossip entry nor a Host, X-Forwarded-* or absolute-URI request line can
// aim it elsewhere; and a connection that reached someone else would fail
// the id check. Grants go to the raft configuration's address of the
// follower.
//
// Costs. Handshakes happen when raft (re)connects, which it does per
// peer and pool slot, and when the forwarding pool grows; dials resume TLS
// sessions (VerifyConnection still checks the chain). Handshakes run on
// their own goroutines (at most 256 at a time, each bounded by
// TransportTimeout), so a silent client does not stall raft's accept loop.
// Close keeps the tracked-stream semantics: it closes every accepted raft
// connection and connections still in their handshake.
//
// Without Config.TLS nodes speak plain TCP raft and forward over plain HTTP
// to the leader's gossip-published HTTP address (the contract the tests and
// -dev rely on); cmd/tokend warns about it at start-up on a multi-node
// cluster.
//
// # Read leases and the revocation fence
//
// Followers answer reads from their own state, so a follower that has not
// yet applied a revocation could still validate the token after the leader
// acknowledged the revoke. Read leases close that window. D is -max-stale.
//
// Grants. Once its post-election barrier has applied (before that its
// applied index may miss entries of earlier terms), a leader-only loop
// sends every other server in the raft configuration a grant every D/4, and at once (coalesced: at most one more
// per follower while one is in flight) when a fence is waiting. It is a
// POST to LeasePath on the follower's HTTP address from gossip (with
// cluster TLS: on its cluster port), carrying
// {leader id, term, index = the leader's applied index when sent, D, seq,
// echo}, HMAC-SHA256'd with the cluster index key (no key yet: no grants,
// no leases). The follower checks the MAC (403 otherwise; 400 if
// malformed), that the sender is the leader it follows in its current term
// (409 otherwise), waits at most D/2 until it has applied index, and only
// then extends its lease. It answers 200 with its applied index and a
// reading of its own monotonic clock (ns since the process started, plus a
// random incarnation id), also MAC'd.
//
// Echo. The lease does not run from when the follower received the grant
// (that instant has no upper bound on the leader's clock: a grant whose
// answer is lost could be handled arbitrarily late) but from the follower's
// own clock reading that the grant echoes: the reading the follower put in
// an earlier answer. That reading precedes the leader's receipt of that
// answer, which precedes the grant. So a grant carrying the echo of an
// answer the leader received at r can give a lease until at most r + D,
// whether or not the leader ever hears back — the bound is known when the
// grant is sent. The first grant to a (re)started follower has no valid
// echo; the leader sends another at once. Monotonic clocks only ever
// measure durations on one machine; their rate difference is assumed
// negligible (ppm).
//
// Follower gate. Health().Stale is true on a follower unless it holds a
// lease whose expiry is in the future, granted by the raft leader it
// currently follows in its current raft term: a new leader or term voids
// the lease at once. The HTTP layer forwards reads of a stale follower to
// the leader (one hop) and answers 503 when no leader is known. The leader
// itself serves reads while raft says it leads, once its post-election
// barrier has applied (before that Health().Stale is true on the leader
// too: after a full-cluster restart it has applied nothing of the old log
// until the first commit of its term), and only under the leader gate
// below.
//
// Leader gate. raft steps a leader down within LeaderLeaseTimeout of
// losing its quorum, but only if the leader runs: a leader process frozen
// (SIGSTOP, a VM pause, a long GC or swap stall) for longer than an
// election wakes up still believing it leads, while the others elected a
// new leader that acknowledged writes; requests queued during the pause
// were answered from the old state before raft noticed (found by
// test/chaos, pause-leader: a validate missed a create acknowledged 2 s
// earlier). So the leader also tracks its quorum contact Q (contact.go):
// the send time of the latest AppendEntries (heartbeats every
// HeartbeatTimeout/10) that a quorum of voters, itself counted, answered
// in the term it was sent in. Each of them, at some instant after Q, still
// followed this term, so had not voted in a later one; any later leader
// needs a vote from one of them (quorums intersect; raft changes one
// server at a time, so this holds across a configuration change), so no
// later leader existed, let alone committed, before Q. Everything
// committed before Q is in this leader's log and, once the barrier
// applied, in its state. A local read admitted at G therefore misses at
// most what was committed in (Q, G]; the leader admits it only while
// G - Q <= LeaderLeaseTimeout (< MaxStale, checked by New), so a read
// never misses an entry committed more than LeaderLeaseTimeout before it
// started. Send times, not receipts: an answer to a heartbeat sent just
// before a pause arrives after it and vouches only for an instant before
// it. A revocation acknowledged by a new leader elected at E > Q fences
// until its since + D > Q + LeaderLeaseTimeout, so a deposed leader stops
// admitting reads before then too. The check is two atomic loads on the
// monotonic contact clock; with one voter the leader is its own quorum.
// When it fails Health().Stale is true on the leader and the HTTP layer
// calls VerifyLeader (bounded by the index wait, then 503 with
// Retry-After): raft's VerifyLeader sends every follower a heartbeat at
// once and steps down on an answer from a later term; since raft also
// counts answers to heartbeats sent before the call, VerifyLeader then
// waits for a quorum to answer requests sent after it started. A healthy
// leader that missed a heartbeat round on a loaded machine thus serves
// the read one round trip later; a resumed deposed one answers 503 and
// steps down. Consistent reads go through VerifyLeader and writes through
// raft's commit, both of which need a quorum in this term.
//
// Fence. Propose of a revocation (RevokeTree, RevokeOrphan, RevokeAccessor,
// whatever they found, since a concurrent revoke of the same token may still
// be fencing; and the UseToken that consumes the last use) returns only
// when, for every other node (raft configuration, gossip members and every
// follower granted to in this term):
//
//   - it answered a grant reporting an applied index >= the entry's index, or
//   - now >= since + D (since: this node took leadership; covers leases of
//     earlier leaders) and every grant sent to it with an index below the
//     entry's has passed its bound (echo receipt + D).
//
// Grants read the applied index and record their bound in one critical
// section, so a fence started after the entry applied sees every grant
// that could lease the node without the entry. In steady state the fence
// costs one grant round trip; an unreachable follower delays fences only
// until its last bound passes (at most D, once). The fence is bounded by the
// caller's ctx (and by ApplyTimeout + 2D); when it ends first, or leadership
// is lost, Propose returns the result with an error wrapping
// status.ErrTimeout saying that the revocation is committed but not yet
// confirmed everywhere (HTTP 503; retrying the revoke confirms it).
//
// Guarantee: once a revoke returned 2xx, every node either has applied it
// or has stopped serving reads from its local state; a node cut off from
// the leader stops within D.
//
// Grants also carry the leader's wall clock (leaderclock.go): a follower
// judges token expiry by the leader's time, off by one grant's one-way
// delay, not by its own possibly skewed clock.
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
// Gossip uses memberlist's LAN profile with a 1 s probe interval and a
// push/pull every 5 s (so a node declared dead while its packets were lost
// is seen alive again within seconds of the network healing); a failed
// member is removed from raft after FailedGrace (10 s), long enough to ride
// out a process restart without churning the raft configuration.
//
// Tests use FastTiming: 200 ms raft timers and 200 ms gossip probes.
//
// # Metrics
//
// metrics.go times proposals, forwarding and snapshots as they happen and
// reads raft's indexes, leadership, the read lease and the state's counts
// at scrape time; Collector hands both to the caller's Prometheus registry.
package cluster
