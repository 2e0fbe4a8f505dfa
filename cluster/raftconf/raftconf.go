// Package raftconf holds the raft settings tokend runs with. cluster uses
// them for every node; test/ceiling uses the very same values for its raw
// raft cluster, so the ceiling of issue 5 measures raft as tokend runs it.
// It imports only hashicorp/raft: test/ceiling may use it without pulling
// in any other tokend code.
package raftconf

import (
	"time"

	"github.com/hashicorp/raft"
)

// Production LAN timers (cluster.DefaultTiming; doc.go of cluster explains
// them).
const (
	HeartbeatTimeout   = 500 * time.Millisecond
	ElectionTimeout    = 500 * time.Millisecond
	LeaderLeaseTimeout = 250 * time.Millisecond
	CommitTimeout      = 10 * time.Millisecond
	SnapshotInterval   = 30 * time.Second
	SnapshotThreshold  = 8192
	TrailingLogs       = 10240
	TransportTimeout   = 10 * time.Second
	ApplyTimeout       = 5 * time.Second
)

// Throughput settings.
const (
	// MaxPool is the number of pooled outgoing connections per peer of the
	// raft TCP transport.
	MaxPool = 3
	// MaxRPCsInFlight is the transport's pipeline depth. With the default
	// (2) both channels of raft's netPipeline are unbuffered, and a
	// follower answering AppendEntries with Success=false (routine after a
	// restart or partition: "log not found") can leave the replication
	// goroutine parked forever: that follower gets heartbeats but no more
	// entries, and Raft.Shutdown waits for the goroutine, so SIGTERM never
	// finishes (found by test/chaos: a node ignored SIGTERM for 30 s; its
	// goroutine dump shows netPipeline.AppendEntries and decodeResponses
	// parked). 130 gives both channels a buffer of 128 (raft's behaviour
	// before v1.4.1): the parked state then needs 256 sends after the
	// failed answer, while the send loop stops at its next select with
	// probability 1/2 each time. 1 (no pipelining at all) avoids it too;
	// 130 keeps the replication behaviour the rest was tuned with.
	MaxRPCsInFlight = 130
	// MaxAppendEntries bounds the entries of one AppendEntries RPC, one
	// group commit on the leader and one FSM batch. With 64 or more
	// concurrent writers a batch of 64 (the library default) fills up
	// under load; 256 lets one fsync cover every waiting writer while an
	// RPC stays well below a megabyte (entries are ~0.5 KiB).
	MaxAppendEntries = 256
	// BatchApplyCh stays off. It would buffer raft's apply channel, but
	// raft v1.7 never answers a future still in that buffer when it shuts
	// down: a Propose racing a shutdown would wait out its whole timeout
	// and leak the goroutine waiting on the future (goleak caught it in
	// cluster's tests). Group commit does not need it: the leader loop
	// takes every Apply already waiting on the channel (up to
	// MaxAppendEntries) into one disk write.
	BatchApplyCh = false
	// LogCacheSize is the number of recent log entries kept in memory in
	// front of the bolt log store: the leader reads just-written entries
	// back to replicate them and followers to apply them, and without the
	// cache each of those reads is a bolt transaction and a decode.
	LogCacheSize = 1024
)

// Tune sets the throughput settings on rc.
func Tune(rc *raft.Config) {
	rc.MaxAppendEntries = MaxAppendEntries
	rc.BatchApplyCh = BatchApplyCh
}

// CachedLogStore wraps s in a LogCacheSize-entry in-memory cache.
func CachedLogStore(s raft.LogStore) raft.LogStore {
	c, err := raft.NewLogCache(LogCacheSize, s)
	if err != nil {
		panic(err) // only a capacity <= 0 fails
	}
	return c
}
