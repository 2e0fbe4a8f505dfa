package ceiling

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"github.com/tokend/tokend/cluster/raftconf"
)

// The raft settings are tokend's own (package raftconf, shared with
// cluster), so the ceiling runs raft exactly as tokend does.
const (
	HeartbeatTimeout   = raftconf.HeartbeatTimeout
	ElectionTimeout    = raftconf.ElectionTimeout
	LeaderLeaseTimeout = raftconf.LeaderLeaseTimeout
	CommitTimeout      = raftconf.CommitTimeout
	SnapshotInterval   = raftconf.SnapshotInterval
	SnapshotThreshold  = raftconf.SnapshotThreshold
	TrailingLogs       = raftconf.TrailingLogs
	TransportTimeout   = raftconf.TransportTimeout
	// ApplyTimeout is the bound on one raft.Apply, as tokend's.
	ApplyTimeout = raftconf.ApplyTimeout
)

// DefaultEntrySize is the size in bytes of a typical tokend CreateToken log
// entry (a child of the root token created with ttl=1h through
// auth/token/create), as measured by TestEntrySize with fsm.Encode
// (create_token version 2, binary; the JSON version 1 entry was 465).
const DefaultEntrySize = 250

// Result is the outcome of one load run against the leader.
type Result struct {
	// Nodes is the cluster size, Proposers the number of concurrent
	// goroutines calling raft.Apply, EntrySize the command size in bytes.
	Nodes     int
	Proposers int
	EntrySize int
	// Applies counts successful applies; Errors failed ones (for example
	// during a leader change).
	Applies int
	Errors  int
	// Elapsed is the wall time from the first Apply to the last response.
	Elapsed time.Duration
	// AppliesPerSec is Applies / Elapsed.
	AppliesPerSec float64
	// Latency percentiles of successful applies (Apply until the future
	// resolved, i.e. committed and applied on the leader).
	P50, P90, P99, Max time.Duration
}

// Cluster is a raw raft cluster of in-process nodes on loopback.
type Cluster struct {
	nodes []*node
}

type node struct {
	id    raft.ServerID
	raft  *raft.Raft
	trans *raft.NetworkTransport
	store *raftboltdb.BoltStore
	fsm   *counterFSM
}

// Start starts n raft nodes with TCP transports on 127.0.0.1:0 and bolt
// stores and snapshots under dir, bootstraps them as one cluster and waits
// (bounded by ctx) until a leader is elected. A nil logger discards raft's
// logs (shutdown logs benign transport errors; failed applies are counted in
// Result.Errors instead). Close the cluster when done, also after an error of Load.
func Start(ctx context.Context, dir string, n int, logger hclog.Logger) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("cluster size %d: must be at least 1", n)
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	c := &Cluster{}
	for i := range n {
		nd, err := startNode(filepath.Join(dir, "node"+strconv.Itoa(i)), raft.ServerID("node"+strconv.Itoa(i)), logger)
		if err != nil {
			return nil, errors.Join(err, c.Close())
		}
		c.nodes = append(c.nodes, nd)
	}
	var cfg raft.Configuration
	for _, nd := range c.nodes {
		cfg.Servers = append(cfg.Servers, raft.Server{
			Suffrage: raft.Voter,
			ID:       nd.id,
			Address:  nd.trans.LocalAddr(),
		})
	}
	// Every node bootstraps with the same configuration, as raft recommends.
	for _, nd := range c.nodes {
		if err := nd.raft.BootstrapCluster(cfg).Error(); err != nil {
			return nil, errors.Join(fmt.Errorf("bootstrap %s: %w", nd.id, err), c.Close())
		}
	}
	if _, err := c.WaitForLeader(ctx); err != nil {
		return nil, errors.Join(err, c.Close())
	}
	return c, nil
}

func startNode(dir string, id raft.ServerID, logger hclog.Logger) (*node, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create node dir: %w", err)
	}
	logger = logger.Named(string(id))
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
	if err != nil {
		return nil, fmt.Errorf("open raft store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, logger)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("open snapshot store: %w", err)
	}
	trans, err := raft.NewTCPTransportWithConfig("127.0.0.1:0", nil, &raft.NetworkTransportConfig{
		MaxPool: raftconf.MaxPool, MaxRPCsInFlight: raftconf.MaxRPCsInFlight, Timeout: TransportTimeout, Logger: logger,
	})
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("start raft transport: %w", err)
	}
	rc := raft.DefaultConfig()
	rc.LocalID = id
	rc.Logger = logger
	rc.HeartbeatTimeout = HeartbeatTimeout
	rc.ElectionTimeout = ElectionTimeout
	rc.LeaderLeaseTimeout = LeaderLeaseTimeout
	rc.CommitTimeout = CommitTimeout
	rc.SnapshotInterval = SnapshotInterval
	rc.SnapshotThreshold = SnapshotThreshold
	rc.TrailingLogs = TrailingLogs
	raftconf.Tune(rc)
	f := &counterFSM{}
	r, err := raft.NewRaft(rc, f, raftconf.CachedLogStore(store), store, snaps, trans)
	if err != nil {
		trans.Close()
		store.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	return &node{id: id, raft: r, trans: trans, store: store, fsm: f}, nil
}

// Leader returns the node that currently believes it leads, or nil.
func (c *Cluster) Leader() *raft.Raft {
	for _, nd := range c.nodes {
		if nd.raft.State() == raft.Leader {
			return nd.raft
		}
	}
	return nil
}

// WaitForLeader polls until a node leads or ctx ends.
func (c *Cluster) WaitForLeader(ctx context.Context) (*raft.Raft, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		if r := c.Leader(); r != nil {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for leader: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// Applied returns, per node, how many commands its state machine applied.
func (c *Cluster) Applied() []uint64 {
	out := make([]uint64, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = nd.fsm.applies.Load()
	}
	return out
}

// Close shuts every node down: raft first (all in parallel, so no node
// waits out an election), then the pooled transport connections so peers'
// connection handlers see EOF and exit, then the bolt stores.
func (c *Cluster) Close() error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, nd := range c.nodes {
		wg.Go(func() { errs[i] = nd.raft.Shutdown().Error() })
	}
	wg.Wait()
	for _, nd := range c.nodes {
		nd.trans.CloseStreams()
	}
	for _, nd := range c.nodes {
		errs = append(errs, nd.store.Close())
	}
	c.nodes = nil
	return errors.Join(errs...)
}

// Load drives the current leader with proposers concurrent goroutines, each
// calling raft.Apply with its own entrySize-byte command and waiting for the
// future before the next one. It stops after duration (when count is 0) or
// after count applies in total (when count > 0), whichever is set, or when
// ctx ends. A proposer whose Apply fails (leader change) counts an error and
// retries on the then-current leader.
func (c *Cluster) Load(ctx context.Context, proposers, entrySize int, duration time.Duration, count int) (Result, error) {
	res := Result{Nodes: len(c.nodes), Proposers: proposers, EntrySize: entrySize}
	if proposers < 1 || entrySize < 1 {
		return res, fmt.Errorf("proposers %d, entry size %d: both must be positive", proposers, entrySize)
	}
	if count <= 0 && duration <= 0 {
		return res, errors.New("either duration or count must be positive")
	}
	if count <= 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, duration)
		defer cancel()
	}
	leader, err := c.WaitForLeader(ctx)
	if err != nil {
		return res, err
	}
	var (
		mu        sync.Mutex
		cur       = leader
		remaining atomic.Int64
		errCount  atomic.Int64
		lats      = make([][]time.Duration, proposers)
		wg        sync.WaitGroup
	)
	remaining.Store(int64(count))
	currentLeader := func(failed *raft.Raft) *raft.Raft {
		mu.Lock()
		defer mu.Unlock()
		if cur == failed {
			if r := c.Leader(); r != nil {
				cur = r
			}
		}
		return cur
	}
	start := time.Now()
	for p := range proposers {
		wg.Go(func() {
			cmd := make([]byte, entrySize)
			for i := range cmd {
				cmd[i] = byte('a' + (p+i)%26)
			}
			r := currentLeader(nil)
			for ctx.Err() == nil {
				if count > 0 && remaining.Add(-1) < 0 {
					return
				}
				t0 := time.Now()
				if err := r.Apply(cmd, ApplyTimeout).Error(); err != nil {
					errCount.Add(1)
					r = currentLeader(r)
					continue
				}
				lats[p] = append(lats[p], time.Since(t0))
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	all := slices.Concat(lats...)
	slices.Sort(all)
	res.Applies, res.Errors = len(all), int(errCount.Load())
	if len(all) == 0 {
		return res, fmt.Errorf("no successful apply (%d errors)", res.Errors)
	}
	res.AppliesPerSec = float64(res.Applies) / res.Elapsed.Seconds()
	pct := func(q float64) time.Duration { return all[min(len(all)-1, int(q*float64(len(all))))] }
	res.P50, res.P90, res.P99, res.Max = pct(0.50), pct(0.90), pct(0.99), all[len(all)-1]
	return res, nil
}

// Run starts a raw raft cluster of nodes nodes in a temporary directory,
// drives its leader with proposers concurrent proposers applying
// entrySize-byte commands for duration, shuts it down, removes the directory
// and reports the throughput and latency.
func Run(ctx context.Context, nodes, proposers, entrySize int, duration time.Duration) (Result, error) {
	dir, err := os.MkdirTemp("", "raftceiling-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := Start(startCtx, dir, nodes, nil)
	if err != nil {
		return Result{}, err
	}
	res, err := c.Load(ctx, proposers, entrySize, duration, 0)
	return res, errors.Join(err, c.Close())
}

// counterFSM is the trivial state machine: it counts applied commands and
// bytes, nothing more, so the ceiling measures raft, the log store and the
// transport alone.
type counterFSM struct {
	applies atomic.Uint64
	bytes   atomic.Uint64
}

// Apply implements raft.FSM.
func (f *counterFSM) Apply(l *raft.Log) any {
	f.applies.Add(1)
	f.bytes.Add(uint64(len(l.Data)))
	return nil
}

// Snapshot implements raft.FSM.
func (f *counterFSM) Snapshot() (raft.FSMSnapshot, error) {
	return counterSnapshot{applies: f.applies.Load(), bytes: f.bytes.Load()}, nil
}

// Restore implements raft.FSM.
func (f *counterFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var b [16]byte
	if _, err := io.ReadFull(rc, b[:]); err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	f.applies.Store(binary.BigEndian.Uint64(b[:8]))
	f.bytes.Store(binary.BigEndian.Uint64(b[8:]))
	return nil
}

type counterSnapshot struct{ applies, bytes uint64 }

// Persist implements raft.FSMSnapshot.
func (s counterSnapshot) Persist(sink raft.SnapshotSink) error {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], s.applies)
	binary.BigEndian.PutUint64(b[8:], s.bytes)
	if _, err := sink.Write(b[:]); err != nil {
		return errors.Join(err, sink.Cancel())
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (counterSnapshot) Release() {}
