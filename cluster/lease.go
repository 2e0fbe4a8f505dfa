package cluster

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/cluster/status"
	"github.com/tokend/tokend/fsm"
)

// InternalPathPrefix is the URL path prefix of the node-to-node endpoints
// (ServeInternal). The HTTP layer routes every request under it to
// ServeInternal before any token authentication: the endpoints authenticate
// their bodies with the cluster's index key.
const InternalPathPrefix = "/v1/sys/internal/cluster/"

// LeasePath is the endpoint on which a follower receives read-lease grants.
const LeasePath = InternalPathPrefix + "lease"

// maxInternalBody bounds the body of an internal request or answer.
const maxInternalBody = 64 << 10

// leaseGrant is what the leader sends a follower (see doc.go, "Read
// leases"). Every field is covered by MAC.
type leaseGrant struct {
	LeaderID string `json:"leader_id"`
	// To is the follower the grant is meant for: a grant is never accepted
	// by another node.
	To   string `json:"to"`
	Term uint64 `json:"term"`
	// Index is the leader's applied index when it sent the grant: the
	// follower extends its lease only once it has applied it.
	Index      uint64 `json:"index"`
	DurationNS int64  `json:"duration_ns"`
	Seq        uint64 `json:"seq"`
	// EchoIncarnation and EchoStamp return the follower's own clock reading
	// from an earlier answer; the lease runs from that reading (which
	// precedes this grant) for DurationNS. Empty on first contact.
	EchoIncarnation string `json:"echo_incarnation,omitempty"`
	EchoStamp       int64  `json:"echo_stamp,omitempty"`
	MAC             string `json:"mac"`
}

func (g *leaseGrant) sign(key []byte) string {
	return signFields(key, "tokend-lease-grant-v1", g.LeaderID, g.To,
		strconv.FormatUint(g.Term, 10), strconv.FormatUint(g.Index, 10),
		strconv.FormatInt(g.DurationNS, 10), strconv.FormatUint(g.Seq, 10),
		g.EchoIncarnation, strconv.FormatInt(g.EchoStamp, 10))
}

// leaseAck is a follower's answer to a grant, also covered by MAC.
type leaseAck struct {
	NodeID string `json:"node_id"`
	Term   uint64 `json:"term"`
	Seq    uint64 `json:"seq"`
	// Incarnation identifies this run of the follower process; Stamp is its
	// monotonic clock (ns since the process started) taken just before it
	// answered. The leader echoes both in later grants.
	Incarnation string `json:"incarnation"`
	Stamp       int64  `json:"stamp"`
	// AppliedIndex is the follower's applied index when it answered.
	AppliedIndex uint64 `json:"applied_index"`
	// Lease reports whether the follower holds a lease after this grant.
	Lease bool   `json:"lease"`
	MAC   string `json:"mac"`
}

func (a *leaseAck) sign(key []byte) string {
	lease := "0"
	if a.Lease {
		lease = "1"
	}
	return signFields(key, "tokend-lease-ack-v1", a.NodeID,
		strconv.FormatUint(a.Term, 10), strconv.FormatUint(a.Seq, 10),
		a.Incarnation, strconv.FormatInt(a.Stamp, 10),
		strconv.FormatUint(a.AppliedIndex, 10), lease)
}

// signFields is the hex HMAC-SHA256 of the length-prefixed fields under a
// domain label, so no two different field lists share a MAC.
func signFields(key []byte, label string, fields ...string) string {
	m := hmac.New(sha256.New, key)
	for _, f := range append([]string{label}, fields...) {
		m.Write([]byte(strconv.Itoa(len(f))))
		m.Write([]byte{':'})
		m.Write([]byte(f))
	}
	return hex.EncodeToString(m.Sum(nil))
}

func macEqual(a, b string) bool { return hmac.Equal([]byte(a), []byte(b)) }

// newIncarnation returns a random id for this run of the process.
func newIncarnation() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		// crypto/rand does not fail on supported platforms; a constant
		// still works as long as restarts are not confused, which the
		// clock reset below also prevents.
		return "0"
	}
	return hex.EncodeToString(b)
}

// readLease is a follower's read lease. It is valid only while the node's
// raft leader and term are the ones that granted it. Every local read
// checks it (Health), so readers load the current grant without a lock;
// mu only orders the writers (serveLease), which replace the value whole.
type readLease struct {
	mu  sync.Mutex
	cur atomic.Pointer[leaseState]
}

// leaseState is one immutable lease value.
type leaseState struct {
	expiry time.Time // monotonic
	leader string
	term   uint64
}

// stamp is this process's monotonic clock in ns since the node started.
func (n *Node) stamp() int64 { return int64(time.Since(n.started)) }

// leaseRemaining returns how long this follower's read lease still runs; 0
// when it has none, or when leader/term are not those that granted it.
func (n *Node) leaseRemaining(leader string, term uint64) time.Duration {
	l := n.lease.cur.Load()
	if leader == "" || l == nil || l.leader != leader || l.term != term {
		return 0
	}
	return max(time.Until(l.expiry), 0)
}

// ServeInternal serves the node-to-node endpoints under InternalPathPrefix.
// They are authenticated by an HMAC with the cluster's index key, not by a
// token: a request that does not verify gets 403, a malformed one 400.
func (n *Node) ServeInternal(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case LeasePath:
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			w.Header().Set("Allow", "POST, PUT")
			writeInternalError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		n.serveLease(w, r)
	case KeyringPath:
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			writeInternalError(w, http.StatusMethodNotAllowed, "method not allowed")
			return
		}
		n.serveKeyring(w, r)
	case ForwardBatchPath:
		peer, _ := r.Context().Value(peerCtxKey{}).(string)
		n.serveForwardBatch(w, r, peer)
	default:
		writeInternalError(w, http.StatusNotFound, "unknown internal endpoint")
	}
}

func writeInternalError(w http.ResponseWriter, code int, msg string) {
	writeInternalJSON(w, code, map[string][]string{"errors": {msg}})
}

func writeInternalJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// serveLease is the follower side of a grant: verify, check the sender is
// the leader this node follows, wait (bounded) until the grant's index is
// applied, then extend the lease to echo + duration and answer.
func (n *Node) serveLease(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxInternalBody))
	if err != nil {
		writeInternalError(w, http.StatusBadRequest, "cannot read request body")
		return
	}
	var g leaseGrant
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil || g.LeaderID == "" || g.MAC == "" || g.DurationNS <= 0 {
		writeInternalError(w, http.StatusBadRequest, "malformed lease grant")
		return
	}
	_, key := n.fsm.ClusterIdent()
	if len(key) == 0 || !macEqual(g.MAC, g.sign(key)) || g.To != n.id {
		// Without the key (not yet replicated) nothing can be verified.
		writeInternalError(w, http.StatusForbidden, "permission denied")
		return
	}
	if !n.grantFromLeader(&g) {
		writeInternalError(w, http.StatusConflict, "lease grant is not from this node's current leader")
		return
	}
	// The lease may never outlive this node's own -max-stale either.
	d := min(time.Duration(g.DurationNS), n.cfg.MaxStale)

	// Followers never extend a lease without having applied the grant's
	// index: everything the leader had applied (every revocation it has
	// acknowledged) is then visible here.
	applied := n.adapter.appliedIndex() >= g.Index
	if !applied {
		ctx, cancel := context.WithTimeout(r.Context(), d/2)
		applied = n.adapter.await(ctx, g.Index) == nil
		cancel()
	}
	lease := false
	if applied && g.EchoIncarnation == n.incarnation && g.EchoStamp > 0 && g.EchoStamp <= n.stamp() {
		n.lease.mu.Lock()
		// Re-check under the lease lock: a leader change after the wait
		// must not leave a lease attributed to the new leader.
		if n.grantFromLeader(&g) {
			exp := n.started.Add(time.Duration(g.EchoStamp) + d)
			l := n.lease.cur.Load()
			if l == nil || l.leader != g.LeaderID || l.term != g.Term || exp.After(l.expiry) {
				l = &leaseState{expiry: exp, leader: g.LeaderID, term: g.Term}
				n.lease.cur.Store(l)
			}
			lease = time.Now().Before(l.expiry)
		}
		n.lease.mu.Unlock()
		if lease {
			n.recordLeaderTime(r, &g, key)
		}
	} else if !applied {
		n.logger.Debug("lease grant not applied in time", "leader", g.LeaderID, "index", g.Index,
			"applied", n.adapter.appliedIndex())
	}
	ack := leaseAck{
		NodeID:       n.id,
		Term:         g.Term,
		Seq:          g.Seq,
		Incarnation:  n.incarnation,
		AppliedIndex: n.adapter.appliedIndex(),
		Lease:        lease,
		// Taken last: the leader receives the answer after this reading.
		Stamp: n.stamp(),
	}
	ack.MAC = ack.sign(key)
	writeInternalJSON(w, http.StatusOK, &ack)
}

// grantFromLeader reports whether g comes from the leader this node follows
// in its current term.
func (n *Node) grantFromLeader(g *leaseGrant) bool {
	if n.raft.State() == raft.Leader {
		return false
	}
	_, leader := n.raft.LeaderWithID()
	return string(leader) == g.LeaderID && n.raft.CurrentTerm() == g.Term
}

// grantor is the leader side of read leases for one leadership term.
//
// Ownership: n, ctx, term, since and d are set at creation. mu guards
// peers and changed; it is never held across network I/O or channel sends
// that may block (kicks are non-blocking).
type grantor struct {
	n     *Node
	ctx   context.Context
	term  uint64
	since time.Time // monotonic: when this node saw itself become leader
	d     time.Duration

	mu    sync.Mutex
	peers map[string]*peer
	// changed is closed and replaced whenever a peer's state advances.
	changed chan struct{}
}

// peer is what the leader knows about one follower's lease.
type peer struct {
	id   string
	addr string // raft address in the configuration
	kick chan struct{}
	// stop ends the peer's sender; nil while none runs.
	stop context.CancelFunc
	seq  uint64
	// incarnation, stamp and stampRecv are the follower's latest clock
	// reading and when the leader received it (monotonic).
	incarnation string
	stamp       int64
	stampRecv   time.Time
	// acked is the highest applied index this incarnation reported.
	acked uint64
	// sent lists (index, bound) of grants that carried an echo and whose
	// bound has not passed: a follower can hold a lease from such a grant
	// until bound having applied only index.
	sent []sentGrant
	// failing is set after a failed grant, to log once per outage.
	failing bool
}

type sentGrant struct {
	index uint64
	bound time.Time
}

func newGrantor(ctx context.Context, n *Node, term uint64, since time.Time) *grantor {
	return &grantor{
		n: n, ctx: ctx, term: term, since: since, d: n.cfg.MaxStale,
		peers:   make(map[string]*peer),
		changed: make(chan struct{}),
	}
}

func (g *grantor) broadcastLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// leaseLoop sends every server in the raft configuration a grant every
// D/4 (and when a fence kicks it) until ctx ends.
func (g *grantor) leaseLoop() {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(g.d / 4)
	defer tick.Stop()
	for {
		g.syncPeers(&wg)
		g.kickAll()
		select {
		case <-g.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// syncPeers starts a sender for every server in the configuration and
// stops those of removed servers. A removed server's peer entry (and its
// bounds) stays for the term.
func (g *grantor) syncPeers(wg *sync.WaitGroup) {
	f := g.n.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	inConfig := make(map[string]string)
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != g.n.id {
			inConfig[string(s.ID)] = string(s.Address)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for id, addr := range inConfig {
		p := g.peers[id]
		if p == nil {
			p = &peer{id: id, kick: make(chan struct{}, 1)}
			g.peers[id] = p
		}
		p.addr = addr
		if p.stop == nil {
			ctx, cancel := context.WithCancel(g.ctx)
			p.stop = cancel
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.sender(ctx, p)
			}()
		}
	}
	for id, p := range g.peers {
		if _, ok := inConfig[id]; !ok && p.stop != nil {
			p.stop()
			p.stop = nil
		}
	}
}

// kickAll asks every peer's sender for a grant now. A kick while a grant
// is in flight is remembered (once), which coalesces bursts of fences.
func (g *grantor) kickAll() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.peers {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

func (g *grantor) sender(ctx context.Context, p *peer) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
		}
		g.send(ctx, p)
	}
}

// send sends one grant to p and records the answer.
func (g *grantor) send(ctx context.Context, p *peer) {
	n := g.n
	if n.raft.State() != raft.Leader {
		return
	}
	// Before its post-election barrier applies, this leader's applied index
	// may be far behind the commit index (after a full-cluster restart it
	// has applied nothing of the old log): a grant would lease a follower
	// that misses acknowledged entries. establishLeadership kicks the
	// senders once the barrier has applied. (Found by test/chaos, kill-all.)
	n.mu.Lock()
	ready := n.ready
	n.mu.Unlock()
	if !ready {
		return
	}
	_, key := n.fsm.ClusterIdent()
	if len(key) == 0 {
		return // no cluster key yet: no grants, followers hold no lease
	}
	g.mu.Lock()
	raftAddr := p.addr
	g.mu.Unlock()
	base, client := n.grantTarget(p.id, raftAddr)
	if base == "" {
		return
	}
	g.mu.Lock()
	// Read the index and record the bound in one critical section: a fence
	// for entry c (which runs after c was applied) then either sees this
	// grant's bound, or this grant's index is already >= c.
	index := n.adapter.appliedIndex()
	p.seq++
	gr := leaseGrant{
		LeaderID: n.id, To: p.id, Term: g.term, Index: index,
		DurationNS: int64(g.d), Seq: p.seq,
		EchoIncarnation: p.incarnation, EchoStamp: p.stamp,
	}
	if p.incarnation != "" {
		// From here on the follower may hold a lease until this bound
		// having applied only index (whether or not we hear back).
		now := time.Now()
		kept := p.sent[:0]
		for _, s := range p.sent {
			if s.bound.After(now) {
				kept = append(kept, s)
			}
		}
		p.sent = append(kept, sentGrant{index: index, bound: p.stampRecv.Add(g.d)})
	}
	g.mu.Unlock()
	gr.MAC = gr.sign(key)

	ack, err := g.post(ctx, base, client, &gr, key)
	if err != nil {
		g.mu.Lock()
		first := !p.failing
		p.failing = true
		g.mu.Unlock()
		if ctx.Err() == nil {
			if first {
				n.logger.Warn("lease grant failed", "peer", p.id, "error", err)
			} else {
				n.logger.Debug("lease grant failed", "peer", p.id, "error", err)
			}
		}
		return
	}
	recv := time.Now()
	rekick := false
	g.mu.Lock()
	if p.failing {
		p.failing = false
		n.logger.Info("lease grants reach peer again", "peer", p.id)
	}
	if ack.Incarnation != p.incarnation {
		// First contact or a restarted follower: its clock and applied
		// index start over. Grant again at once so it gets a lease now
		// rather than a tick later.
		p.incarnation, p.stamp, p.stampRecv, p.acked = ack.Incarnation, ack.Stamp, recv, 0
		rekick = true
	} else if ack.Stamp > p.stamp {
		p.stamp, p.stampRecv = ack.Stamp, recv
	}
	p.acked = max(p.acked, ack.AppliedIndex)
	g.broadcastLocked()
	g.mu.Unlock()
	if rekick {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// post sends a grant and returns the verified answer.
func (g *grantor) post(ctx context.Context, base string, client *http.Client, gr *leaseGrant, key []byte) (*leaseAck, error) {
	b, err := json.Marshal(gr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+LeasePath, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	g.n.setLeaderTime(req, gr, key)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInternalBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	var ack leaseAck
	if err := json.Unmarshal(body, &ack); err != nil {
		return nil, fmt.Errorf("decode lease answer: %w", err)
	}
	if !macEqual(ack.MAC, ack.sign(key)) || ack.NodeID != gr.To || ack.Seq != gr.Seq || ack.Term != gr.Term ||
		ack.Incarnation == "" {
		return nil, errors.New("lease answer does not verify")
	}
	return &ack, nil
}

// grantTarget returns where grants for follower id at raftAddr go: with
// cluster TLS its cluster port (raft address) over a connection that must
// authenticate as id; without, its HTTP address from gossip. "" when
// there is none.
func (n *Node) grantTarget(id, raftAddr string) (string, *http.Client) {
	a := n.memberHTTPAddr(id, raftAddr)
	switch {
	case a == "":
		return "", nil // not an alive member: as before, no grant
	case n.cfg.TLS != nil:
		return "https://" + raftAddr, n.peerClient(id)
	default:
		return "http://" + a, n.client
	}
}

// memberHTTPAddr returns the HTTP address gossip published for id, if its
// raft address matches raftAddr and gossip does not consider it gone (a
// suspect member still gets grants: suspicion is often a slow probe).
func (n *Node) memberHTTPAddr(id, raftAddr string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if rec := n.members[id]; rec != nil && rec.metaOK && rec.meta.RaftAddr == raftAddr &&
		(rec.status == "alive" || rec.status == "suspect") {
		return rec.meta.HTTPAddr
	}
	return ""
}

// fence blocks until no node other than this leader can serve a local read
// that misses entry index: for every node, either it reported having
// applied index, or every lease it may hold without index has expired (and,
// for leases of earlier leaders, since+D has passed).
func (g *grantor) fence(ctx context.Context, index uint64) error {
	g.kickAll()
	others := g.n.otherNodeIDs()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		var wait time.Time
		later := func(t time.Time) {
			if wait.IsZero() || t.Before(wait) {
				wait = t
			}
		}
		pending := false
		oldLeases := g.since.Add(g.d)
		g.mu.Lock()
		for id := range others {
			if _, ok := g.peers[id]; !ok && now.Before(oldLeases) {
				pending = true
				later(oldLeases)
			}
		}
		for _, p := range g.peers {
			if p.acked >= index {
				continue
			}
			if now.Before(oldLeases) {
				pending = true
				later(oldLeases)
				continue
			}
			// The latest bound among grants whose index misses the entry.
			for _, s := range p.sent {
				if s.index < index && now.Before(s.bound) {
					pending = true
					later(s.bound)
				}
			}
		}
		ch := g.changed
		g.mu.Unlock()
		if !pending {
			return nil
		}
		// Since Go 1.23 Reset also discards a pending expiry.
		timer.Reset(time.Until(wait))
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
			return errUnconfirmed(index)
		case <-g.ctx.Done():
			return errUnconfirmed(index)
		}
	}
}

// otherNodeIDs lists every node except this one that is in the raft
// configuration or known to gossip: any of them may hold a lease from an
// earlier leader.
func (n *Node) otherNodeIDs() map[string]bool {
	out := make(map[string]bool)
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			out[string(s.ID)] = true
		}
	}
	n.mu.Lock()
	for id := range n.members {
		out[id] = true
	}
	n.mu.Unlock()
	delete(out, n.id)
	return out
}

// errUnconfirmed is what a revoking Propose returns when the entry is
// committed but the fence did not finish in time.
func errUnconfirmed(index uint64) error {
	return fmt.Errorf("the revocation is committed (index %d) but not yet confirmed on every node; "+
		"retry the request to confirm it: %w", index, status.ErrTimeout)
}

// needsFence reports whether a command's result must be invisible on every
// node before Propose returns: every revocation (also one that found
// nothing: the token may have been revoked by a concurrent request whose
// fence is still running) and the final use of a limited-use token.
func needsFence(c fsm.Command, res fsm.Result) bool {
	switch c.(type) {
	case fsm.RevokeTree, *fsm.RevokeTree, fsm.RevokeOrphan, *fsm.RevokeOrphan,
		fsm.RevokeAccessor, *fsm.RevokeAccessor, fsm.RevokePrefix, *fsm.RevokePrefix:
		return true
	case fsm.UseToken, *fsm.UseToken:
		return res.Err == nil && res.Token != nil && res.Token.NumUses == -1
	}
	return false
}

// fence runs the revocation fence for entry index on this leader.
func (n *Node) fence(ctx context.Context, index uint64) error {
	// Bounded even for a caller without a deadline: leases end within D.
	ctx, cancel := context.WithTimeout(ctx, n.timing.ApplyTimeout+2*n.cfg.MaxStale)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if n.shuttingDown.Load() {
			return errUnconfirmed(index)
		}
		if n.raft.State() != raft.Leader {
			return errUnconfirmed(index)
		}
		// The leader session starts just after raft reports leadership.
		if g := n.grantor.Load(); g != nil && g.term == n.raft.CurrentTerm() && g.ctx.Err() == nil {
			return g.fence(ctx, index)
		}
		select {
		case <-ctx.Done():
			return errUnconfirmed(index)
		case <-tick.C:
		}
	}
}
