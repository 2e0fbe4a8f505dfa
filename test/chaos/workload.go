package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MaxChildren is how many children a family parent gets at most.
const MaxChildren = 4

// WorkloadConfig sizes the client load.
type WorkloadConfig struct {
	// Workers caps the operations in flight.
	Workers int
	// Rate is the total operations per second over all workers.
	Rate float64
	// ReadTimeout and WriteTimeout bound one request; an expired request is
	// indeterminate.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	Seed         int64
	// RunID makes token IDs unique across runs.
	RunID string
}

// tokState is the workload's own view of one token, used only to pick the
// next operation (the checkers work from the history alone).
type tokState struct {
	id       string
	fam, idx int
	accessor string
	created  bool // create acknowledged
	pending  bool // create in flight
	revoking bool // a revoke (of it or its parent) was invoked
}

type family struct {
	id     int
	tokens [MaxChildren + 1]*tokState
}

// Workload runs the clients until ctx ends.
type Workload struct {
	cfg     WorkloadConfig
	cluster *Cluster
	rec     *Recorder
	client  *http.Client

	mu       sync.Mutex
	rnd      *rand.Rand
	families []*family
	live     []*tokState // created, not revoking
	revoked  []*tokState // recently revoking (bounded)
	parents  []*family   // families whose parent is live and has room
	// Skipped counts ticks without an operation because Workers were in
	// flight.
	Skipped int
	// paused: ticks start no operation (Pause).
	paused atomic.Bool
}

// Pause stops (true) or resumes (false) starting new operations; those in
// flight complete. Scenarios quiesce the cluster with it to compare state
// digests at one applied index.
func (w *Workload) Pause(p bool) { w.paused.Store(p) }

// NewWorkload prepares a workload against c recording into rec.
func NewWorkload(cfg WorkloadConfig, c *Cluster, rec *Recorder) *Workload {
	tr := &http.Transport{MaxIdleConnsPerHost: cfg.Workers, MaxIdleConns: cfg.Workers * len(c.Nodes),
		IdleConnTimeout: 30 * time.Second, DisableCompression: true}
	return &Workload{cfg: cfg, cluster: c, rec: rec, client: &http.Client{Transport: tr},
		rnd: rand.New(rand.NewSource(cfg.Seed))}
}

// Run issues operations at cfg.Rate until ctx ends, each in its own
// goroutine (at most cfg.Workers in flight), and returns when every
// operation in flight has completed. A request that hangs on a frozen or
// cut-off node therefore does not slow the others down, as with Jepsen's
// fresh client processes; when the cap is reached, ticks are skipped and
// counted in Skipped.
func (w *Workload) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	sem := make(chan struct{}, w.cfg.Workers)
	tick := time.NewTicker(time.Duration(float64(time.Second) / w.cfg.Rate))
	defer tick.Stop()
	var seq int
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if w.paused.Load() {
			continue
		}
		select {
		case sem <- struct{}{}:
		default:
			w.mu.Lock()
			w.Skipped++
			w.mu.Unlock()
			continue
		}
		node := seq % len(w.cluster.Nodes)
		proc := seq
		seq++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			w.step(proc, node)
		}()
	}
}

// step picks and runs one operation from worker p against node.
func (w *Workload) step(p, node int) {
	w.mu.Lock()
	r := w.rnd.Float64()
	var op *Op
	switch {
	case r < 0.10 || len(w.live) == 0:
		op = w.newFamilyLocked()
	case r < 0.16:
		op = w.newChildLocked()
	case r < 0.52:
		op = w.readLocked(OpValidate)
	case r < 0.88:
		op = w.readLocked(OpValidateConsistent)
	case r < 0.92:
		op = w.renewLocked()
	case r < 0.97:
		op = w.revokeLocked(OpRevoke)
	default:
		op = w.revokeLocked(OpRevokeAccessor)
	}
	w.mu.Unlock()
	if op == nil {
		return
	}
	op.Process, op.Node = p, node
	w.execute(op)
}

func (w *Workload) tokenID(fam, idx int) string {
	// Client-chosen IDs (root may set "id"; no '.' allowed): a retry or a
	// late commit is identifiable in the history.
	return fmt.Sprintf("chaos-%s-f%d-t%d", w.cfg.RunID, fam, idx)
}

func (w *Workload) newFamilyLocked() *Op {
	f := &family{id: len(w.families)}
	w.families = append(w.families, f)
	t := &tokState{id: w.tokenID(f.id, 0), fam: f.id, pending: true}
	f.tokens[0] = t
	return &Op{Kind: OpCreate, Family: f.id, Index: 0, Token: t.id}
}

func (w *Workload) newChildLocked() *Op {
	for len(w.parents) > 0 {
		i := w.rnd.Intn(len(w.parents))
		f := w.parents[i]
		slot := 0
		for s := 1; s <= MaxChildren; s++ {
			if f.tokens[s] == nil {
				slot = s
				break
			}
		}
		if slot == 0 || f.tokens[0].revoking {
			w.parents = append(w.parents[:i], w.parents[i+1:]...)
			continue
		}
		t := &tokState{id: w.tokenID(f.id, slot), fam: f.id, idx: slot, pending: true}
		f.tokens[slot] = t
		return &Op{Kind: OpChildCreate, Family: f.id, Index: slot, Token: t.id, Accessor: f.tokens[0].id}
	}
	return w.newFamilyLocked()
}

// pickLocked returns a live token (or, with probability pRevoked, a
// recently revoked one) and its family and index.
func (w *Workload) pickLocked(pRevoked float64) (*tokState, int, int) {
	pool := w.live
	if len(w.revoked) > 0 && w.rnd.Float64() < pRevoked {
		pool = w.revoked
	}
	if len(pool) == 0 {
		return nil, 0, 0
	}
	t := pool[w.rnd.Intn(len(pool))]
	return t, t.fam, t.idx
}

func (w *Workload) readLocked(kind string) *Op {
	t, fam, idx := w.pickLocked(0.4)
	if t == nil {
		return nil
	}
	return &Op{Kind: kind, Family: fam, Index: idx, Token: t.id}
}

func (w *Workload) renewLocked() *Op {
	t, fam, idx := w.pickLocked(0.1)
	if t == nil {
		return nil
	}
	return &Op{Kind: OpRenew, Family: fam, Index: idx, Token: t.id}
}

func (w *Workload) revokeLocked(kind string) *Op {
	var t *tokState
	var fam, idx int
	// Prefer parents now and then so revokes cascade.
	if w.rnd.Float64() < 0.3 {
		for tries := 0; tries < 8 && t == nil; tries++ {
			if len(w.families) == 0 {
				break
			}
			f := w.families[w.rnd.Intn(len(w.families))]
			if p := f.tokens[0]; p != nil && p.created && !p.revoking && f.tokens[1] != nil {
				t, fam, idx = p, f.id, 0
			}
		}
	}
	if t == nil {
		t, fam, idx = w.pickLocked(0)
	}
	if t == nil || (kind == OpRevokeAccessor && t.accessor == "") {
		return nil
	}
	w.markRevokingLocked(w.families[fam], idx)
	return &Op{Kind: kind, Family: fam, Index: idx, Token: t.id, Accessor: t.accessor}
}

// markRevokingLocked moves a token (and for a parent its children) out of
// the live pool.
func (w *Workload) markRevokingLocked(f *family, idx int) {
	mark := func(t *tokState) {
		if t == nil || t.revoking {
			return
		}
		t.revoking = true
		for i, l := range w.live {
			if l == t {
				w.live = append(w.live[:i], w.live[i+1:]...)
				break
			}
		}
		w.revoked = append(w.revoked, t)
		if len(w.revoked) > 256 {
			w.revoked = w.revoked[len(w.revoked)-256:]
		}
	}
	mark(f.tokens[idx])
	if idx == 0 {
		for _, c := range f.tokens[1:] {
			mark(c)
		}
	}
}

// execute sends op, records it and updates the workload's view.
func (w *Workload) execute(op *Op) {
	var method, path, token, body string
	timeout := w.cfg.WriteTimeout
	root := w.cluster.RootToken
	switch op.Kind {
	case OpCreate:
		method, path, token = http.MethodPost, "/v1/auth/token/create", root
		body = fmt.Sprintf(`{"id":%q,"policies":["root"],"ttl":"1h"}`, op.Token)
	case OpChildCreate:
		// Accessor carries the parent's ID until the request is built.
		parent := op.Accessor
		op.Accessor = ""
		method, path, token = http.MethodPost, "/v1/auth/token/create", parent
		body = fmt.Sprintf(`{"id":%q,"policies":["root"],"ttl":"1h"}`, op.Token)
	case OpValidate:
		method, path, token, timeout = http.MethodGet, "/v1/auth/token/lookup-self", op.Token, w.cfg.ReadTimeout
	case OpValidateConsistent:
		method, path, token, timeout = http.MethodGet, "/v1/auth/token/lookup-self?consistent", op.Token, w.cfg.ReadTimeout
	case OpRenew:
		method, path, token = http.MethodPost, "/v1/auth/token/renew", root
		body = fmt.Sprintf(`{"token":%q,"increment":"1h"}`, op.Token)
	case OpRevoke:
		method, path, token = http.MethodPost, "/v1/auth/token/revoke", root
		body = fmt.Sprintf(`{"token":%q}`, op.Token)
	case OpRevokeAccessor:
		method, path, token = http.MethodPost, "/v1/auth/token/revoke-accessor", root
		body = fmt.Sprintf(`{"accessor":%q}`, op.Accessor)
	}
	w.rec.Invoke(op)
	status, resp, err := w.send(op.Node, method, path, token, body, timeout, &op.RetryAfter)
	op.Status = status
	if err != nil {
		op.Error = err.Error()
	}
	op.Outcome = classify(op.Kind, status, err)
	if op.Outcome == Ok && (op.Kind == OpValidate || op.Kind == OpValidateConsistent) {
		op.Valid = status == http.StatusOK
	}
	if op.Outcome == Ok && (op.Kind == OpCreate || op.Kind == OpChildCreate) {
		var r struct {
			Auth struct {
				Accessor string `json:"accessor"`
			} `json:"auth"`
		}
		if json.Unmarshal(resp, &r) == nil {
			op.Accessor = r.Auth.Accessor
		}
	}
	if op.Outcome != Ok && op.Error == "" && len(resp) > 0 {
		op.Error = strings.TrimSpace(string(resp[:min(len(resp), 300)]))
	}
	w.rec.Complete(op)

	if op.Kind == OpCreate || op.Kind == OpChildCreate {
		w.mu.Lock()
		f := w.families[op.Family]
		t := f.tokens[op.Index]
		t.pending = false
		if op.Outcome == Ok {
			t.created, t.accessor = true, op.Accessor
			parentRevoking := op.Index > 0 && f.tokens[0].revoking
			if !t.revoking && !parentRevoking {
				w.live = append(w.live, t)
				if op.Index == 0 {
					w.parents = append(w.parents, f)
				}
			}
		}
		w.mu.Unlock()
	}
}

// classify maps an answer to a Jepsen outcome.
func classify(kind string, status int, err error) string {
	if err != nil || status == 0 {
		return Info
	}
	switch kind {
	case OpValidate, OpValidateConsistent:
		if status == http.StatusOK || status == http.StatusForbidden {
			return Ok
		}
		return Info
	}
	switch {
	case status >= 200 && status < 300:
		return Ok
	case status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status == http.StatusPreconditionFailed:
		return Info
	case status >= 400 && status < 500:
		return Fail
	}
	return Info
}

func (w *Workload) send(node int, method, path, token, body string, timeout time.Duration, retryAfter *string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+w.cluster.Nodes[node].HTTPAddr+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return 0, nil, errors.New("timeout")
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	*retryAfter = resp.Header.Get("Retry-After")
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, err // the answer was cut off: indeterminate
	}
	return resp.StatusCode, data, nil
}
