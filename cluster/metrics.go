package cluster

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

// This file is the node's telemetry: what it measures while it runs
// (proposals, forwarding, snapshots) and what it reads at scrape time (raft
// indexes, leadership, read lease, state counts). Collector hands all of it
// to a Prometheus registry that the caller (cmd/tokend, test/inproc) owns;
// httpapi never sees raft, only the registry.

// latencyBuckets (seconds) span a local commit (~100 µs) to a write that
// waited out an election (seconds).
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// snapshotBuckets (seconds) span a small state to a million tokens.
var snapshotBuckets = []float64{.001, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Forwarding outcomes (label values of tokend_forwarded_requests_total).
const (
	forwardOK           = "forwarded"
	forwardNoLeader     = "no_leader"
	forwardTimeout      = "timeout"
	forwardHopRefused   = "hop_refused"
	forwardShuttingDown = "shutting_down"
	forwardError        = "error"
	// forwardLeaderChanged: cut off by a leader change and not safe to
	// retry (forward.go).
	forwardLeaderChanged = "leader_changed"
)

var forwardOutcomes = []string{forwardOK, forwardNoLeader, forwardTimeout, forwardHopRefused, forwardShuttingDown, forwardError, forwardLeaderChanged}

// Proposal failure reasons (label values of tokend_raft_apply_failures_total).
const (
	failNotLeader    = "not_leader"
	failTimeout      = "timeout"
	failShuttingDown = "shutting_down"
	failError        = "error"
)

// nodeMetrics holds the series the node updates as it works. Label children
// are resolved once (per command type on first use, per outcome at start)
// so that recording is a few atomic operations and allocates nothing.
type nodeMetrics struct {
	applyDur   *prometheus.HistogramVec
	applyFail  *prometheus.CounterVec
	forwards   *prometheus.CounterVec
	forwardDur prometheus.Histogram
	// entryCommands observes the commands of each entry the group commit
	// sends (groupcommit.go).
	entryCommands prometheus.Histogram
	// batchForwards observes the requests of each forward batch a
	// follower sends (forwardbatch.go).
	batchForwards prometheus.Histogram
	snapCapture   prometheus.Histogram
	snapPersist   *prometheus.HistogramVec
	restoreDur    *prometheus.HistogramVec
	installs      *prometheus.CounterVec
	forwardByOut  map[string]prometheus.Counter

	// applyByType caches applyDur's child per command type.
	applyByType [256]atomic.Pointer[prometheus.Observer]
}

func newNodeMetrics() *nodeMetrics {
	m := &nodeMetrics{
		applyDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tokend_raft_apply_duration_seconds",
			Help: "Time from proposing a command on the leader until raft committed it and this node applied it " +
				"(revocations include the revocation fence); successful proposals only.",
			Buckets: latencyBuckets,
		}, []string{"command"}),
		applyFail: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_raft_apply_failures_total",
			Help: "Proposals that did not succeed, by command and reason (not_leader, timeout, shutting_down, error).",
		}, []string{"command", "reason"}),
		forwards: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_forwarded_requests_total",
			Help: "Requests this node sent to the leader, by outcome: forwarded (the leader answered), no_leader, " +
				"timeout, hop_refused (already forwarded once), shutting_down, error.",
		}, []string{"outcome"}),
		forwardDur: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tokend_forward_duration_seconds",
			Help:    "Round trip of requests forwarded to the leader that it answered, including the leader's work.",
			Buckets: latencyBuckets,
		}),
		entryCommands: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tokend_raft_entry_commands",
			Help: "Token creates and renewals per raft entry the leader's group commit proposed (1: the command went alone; " +
				"more: it waited for an entry in flight and shares the next one).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		batchForwards: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tokend_forward_batch_requests",
			Help: "Client requests per forward batch this node sent to the leader (a request that found " +
				"fewer than two round trips in flight went alone and is not counted here).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		snapCapture: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tokend_snapshot_capture_duration_seconds",
			Help:    "Time to take the point-in-time copy of the state for a snapshot (applies wait meanwhile).",
			Buckets: snapshotBuckets,
		}),
		snapPersist: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokend_snapshot_persist_duration_seconds",
			Help:    "Time to write a snapshot to the snapshot store, by result (ok, error); the count is the number of snapshots.",
			Buckets: snapshotBuckets,
		}, []string{"result"}),
		restoreDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tokend_snapshot_restore_duration_seconds",
			Help:    "Time to restore the state from a snapshot (at start or sent by the leader), by result (ok, error).",
			Buckets: snapshotBuckets,
		}, []string{"result"}),
		installs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tokend_snapshot_installs_total",
			Help: "Snapshots the leader sent this node (raft InstallSnapshot: it was too far behind for the log) " +
				"that it restored, by result: ok, stale (refused: not newer than the applied state), error; restores of the node's own snapshot at start are not counted.",
		}, []string{"result"}),
		forwardByOut: make(map[string]prometheus.Counter, len(forwardOutcomes)),
	}
	for _, o := range forwardOutcomes {
		// Pre-created: every outcome shows up at 0 from the first scrape.
		m.forwardByOut[o] = m.forwards.WithLabelValues(o)
	}
	for _, r := range []string{"ok", "error"} {
		m.snapPersist.WithLabelValues(r)
		m.restoreDur.WithLabelValues(r)
		m.installs.WithLabelValues(r)
	}
	m.installs.WithLabelValues(installStale)
	return m
}

// observeApply records one proposal.
func (m *nodeMetrics) observeApply(t fsm.Type, d time.Duration, err error) {
	if err == nil {
		p := m.applyByType[t].Load()
		if p == nil {
			o := m.applyDur.WithLabelValues(fsm.TypeName(t))
			p = &o
			m.applyByType[t].Store(p)
		}
		(*p).Observe(d.Seconds())
		return
	}
	reason := failError
	switch {
	case errors.Is(err, status.ErrNotLeader):
		reason = failNotLeader
	case errors.Is(err, status.ErrTimeout):
		reason = failTimeout
	case errors.Is(err, status.ErrShuttingDown):
		reason = failShuttingDown
	}
	m.applyFail.WithLabelValues(fsm.TypeName(t), reason).Inc()
}

// observeForward records one ForwardToLeader call that did not find this
// node to be the leader.
func (m *nodeMetrics) observeForward(forwarded bool, d time.Duration, err error) {
	outcome := forwardOK
	switch {
	case err == nil && forwarded:
		m.forwardDur.Observe(d.Seconds())
	case err == nil:
		return // this node leads: served locally, nothing was forwarded
	case errors.Is(err, status.ErrNoLeader):
		outcome = forwardNoLeader
	case errors.Is(err, status.ErrTimeout):
		outcome = forwardTimeout
	case errors.Is(err, status.ErrNotLeader):
		outcome = forwardHopRefused
	case errors.Is(err, status.ErrShuttingDown):
		outcome = forwardShuttingDown
	case errors.Is(err, status.ErrLeaderChanged):
		outcome = forwardLeaderChanged
	default:
		outcome = forwardError
	}
	m.forwardByOut[outcome].Inc()
}

// Propose replicates a command (propose in ops.go says exactly what it
// guarantees) and records its latency or failure.
func (n *Node) Propose(ctx context.Context, c fsm.Command) (fsm.Result, uint64, error) {
	start := time.Now()
	res, idx, err := n.propose(ctx, c)
	if c != nil {
		n.metrics.observeApply(c.CommandType(), time.Since(start), err)
	}
	return res, idx, err
}

// ForwardToLeader sends r to the leader (forwardToLeader in forward.go says
// exactly how) and records the outcome.
func (n *Node) ForwardToLeader(w http.ResponseWriter, r *http.Request) (bool, error) {
	if n.removed.Load() {
		// Removed for good (removepeer.go): no leader to forward to.
		return false, status.ErrNoLeader
	}
	start := time.Now()
	forwarded, err := n.forwardToLeader(w, r)
	n.metrics.observeForward(forwarded, time.Since(start), err)
	return forwarded, err
}

// measuredFSM is the raft.FSM raft really drives: the adapter (whose other
// methods, ConfigurationStore included, it promotes unchanged) with timed
// snapshots and restores.
type measuredFSM struct {
	*raftFSM
	m *nodeMetrics
	// running reports whether raft.NewRaft has returned: raft restores the
	// node's own latest snapshot inside NewRaft, so a Restore while running
	// is a snapshot the leader sent (InstallSnapshot). Nil: never running.
	running func() bool
	log     hclog.Logger
}

// Snapshot implements raft.FSM.
func (f measuredFSM) Snapshot() (raft.FSMSnapshot, error) {
	start := time.Now()
	s, err := f.raftFSM.Snapshot()
	if err != nil {
		return nil, err
	}
	f.m.snapCapture.Observe(time.Since(start).Seconds())
	return measuredSnapshot{FSMSnapshot: s, m: f.m}, nil
}

// Restore implements raft.FSM.
func (f measuredFSM) Restore(rc io.ReadCloser) error {
	start := time.Now()
	fromLeader := f.running != nil && f.running()
	err := f.raftFSM.Restore(rc)
	d := time.Since(start)
	f.m.restoreDur.WithLabelValues(result(err)).Observe(d.Seconds())
	if fromLeader {
		// The proof (and the figures) that a lagging follower caught up
		// through a snapshot instead of the log.
		switch {
		case errors.Is(err, errStaleSnapshot):
			f.m.installs.WithLabelValues(installStale).Inc()
			f.log.Warn("refused a snapshot from the leader that is not newer than the applied state", "error", err)
		case err != nil:
			f.m.installs.WithLabelValues(result(err)).Inc()
			f.log.Error("restoring the snapshot the leader sent failed", "restore", d, "error", err)
		default:
			f.m.installs.WithLabelValues(result(err)).Inc()
			f.log.Info("installed a snapshot from the leader", "index", f.appliedIndex(), "tokens", f.f.Len(), "restore", d)
		}
	}
	return err
}

// measuredSnapshot times Persist.
type measuredSnapshot struct {
	raft.FSMSnapshot
	m *nodeMetrics
}

// Persist implements raft.FSMSnapshot.
func (s measuredSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	err := s.FSMSnapshot.Persist(sink)
	s.m.snapPersist.WithLabelValues(result(err)).Observe(time.Since(start).Seconds())
	return err
}

// installStale is the result label of a refused stale snapshot.
const installStale = "stale"

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// Collector returns the node's metrics for a Prometheus registry: the
// series above plus gauges read at scrape time (raft indexes, term,
// leadership, voters, last leader contact, read lease, state counts).
// Register it once per registry.
func (n *Node) Collector() prometheus.Collector {
	return &nodeCollector{n: n}
}

// Descriptions of the scrape-time gauges.
var (
	descCommitIndex = prometheus.NewDesc("tokend_raft_commit_index",
		"Highest log index this node knows to be committed.", nil, nil)
	descAppliedIndex = prometheus.NewDesc("tokend_raft_applied_index",
		"Index of the last log entry applied to this node's state (what its reads see; X-Vault-Index).", nil, nil)
	descLastIndex = prometheus.NewDesc("tokend_raft_last_index",
		"Last index in this node's raft log (or snapshot).", nil, nil)
	descTerm = prometheus.NewDesc("tokend_raft_term",
		"Current raft term.", nil, nil)
	descLeader = prometheus.NewDesc("tokend_raft_leader",
		"1 if this node is the raft leader, else 0.", nil, nil)
	descKnownLeader = prometheus.NewDesc("tokend_raft_known_leader",
		"1 if this node knows a current leader (itself included), else 0.", nil, nil)
	descVoters = prometheus.NewDesc("tokend_raft_voters",
		"Voters in the latest raft configuration, this node included.", nil, nil)
	descLastContact = prometheus.NewDesc("tokend_raft_last_contact_seconds",
		"Time since this follower last heard from the leader (0 on the leader; since start if never).", nil, nil)
	descLastSnapshot = prometheus.NewDesc("tokend_raft_last_snapshot_index",
		"Log index of this node's latest snapshot (0 if none).", nil, nil)
	descLease = prometheus.NewDesc("tokend_read_lease_remaining_seconds",
		"How long this follower's read lease still runs (0 without one, and on the leader).", nil, nil)
	descQuorumContact = prometheus.NewDesc("tokend_leader_quorum_contact_seconds",
		"On the leader: how long ago it sent the latest heartbeat a quorum of voters answered (0 on a single voter and on followers); over the raft leader lease timeout it serves no local read before confirming its leadership.", nil, nil)
	descStale = prometheus.NewDesc("tokend_read_stale",
		"1 if this node may not answer reads from its own state (follower without a read lease, or no leader), else 0.", nil, nil)
	descTokens = prometheus.NewDesc("tokend_fsm_tokens",
		"Service tokens stored in this node's state (batch tokens are never stored).", nil, nil)
	descPolicies = prometheus.NewDesc("tokend_fsm_policies",
		"ACL policies stored in this node's state.", nil, nil)
	descRoles = prometheus.NewDesc("tokend_fsm_roles",
		"Token roles stored in this node's state.", nil, nil)
)

// nodeCollector implements prometheus.Collector for one node.
type nodeCollector struct {
	n *Node
}

func (c *nodeCollector) metrics() []prometheus.Collector {
	m := c.n.metrics
	return []prometheus.Collector{m.applyDur, m.applyFail, m.forwards, m.forwardDur, m.entryCommands, m.batchForwards, m.snapCapture, m.snapPersist, m.restoreDur, m.installs}
}

// Describe implements prometheus.Collector.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics() {
		m.Describe(ch)
	}
	for _, d := range []*prometheus.Desc{descCommitIndex, descAppliedIndex, descLastIndex, descTerm, descLeader,
		descKnownLeader, descVoters, descLastContact, descLastSnapshot, descLease, descQuorumContact, descStale, descTokens,
		descPolicies, descRoles} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It runs at scrape time only: the
// reads below take the fsm's read lock and raft's own locks briefly, never
// a raft round trip.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	for _, m := range c.metrics() {
		m.Collect(ch)
	}
	n := c.n
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	h := n.Health()
	gauge(descCommitIndex, float64(n.raft.CommitIndex()))
	gauge(descAppliedIndex, float64(h.AppliedIndex))
	gauge(descLastIndex, float64(n.raft.LastIndex()))
	gauge(descTerm, float64(n.raft.CurrentTerm()))
	gauge(descLeader, flag(h.IsLeader))
	gauge(descKnownLeader, flag(h.KnownLeader || h.IsLeader))
	voters := 0
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				voters++
			}
		}
	}
	gauge(descVoters, float64(voters))
	lastContact := h.LastContact
	if !h.IsLeader && n.raft.LastContact().IsZero() {
		// Never heard from a leader: as stale as the process is old
		// (Health reports 0 here, which would read as "just now").
		lastContact = time.Since(n.started)
	}
	gauge(descLastContact, lastContact.Seconds())
	// Stats reads raft's in-memory snapshot bookkeeping (no disk access).
	snapIndex, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
	gauge(descLastSnapshot, float64(snapIndex))
	gauge(descLease, h.LeaseRemaining.Seconds())
	quorumContact := 0.0
	if h.IsLeader {
		quorumContact = min(n.contact.quorumAge(), time.Since(n.started)).Seconds()
	}
	gauge(descQuorumContact, quorumContact)
	gauge(descStale, flag(!h.IsLeader && h.Stale))
	st := n.fsm
	gauge(descTokens, float64(st.Len()))
	gauge(descPolicies, float64(len(st.PolicyNames())))
	gauge(descRoles, float64(len(st.RoleNames())))
}
