package chaos

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RELIABILITY.md T9 (rolling restart) judges what a client sees: 0 errors
// when it retries once, at most 1 retryable error per restart when it does
// not. The workload's operations are each sent once to one node, so the
// Prober plays the client instead: a few sequential clients, each sticking
// to one node and moving to the next node when its node stops answering
// (as a client behind a load balancer, or with a list of addresses, does).
// Every operation is tried once and, after a retryable error (503, 429, a
// refused, reset or timed-out connection), retried once on the next node,
// after Retry-After (at most 1 s) when the answer gave one; the client then
// stays on the node that answered. Its
// tokens are created with the root token and checked with consistent
// reads; they stay out of the workload's history (the ledger and
// convergence checks still see them on every node).

// CheckPlanned names T9's check.
const CheckPlanned = "planned-restart-errors"

// ProbeOp is one operation of a probe client.
type ProbeOp struct {
	Client   int    `json:"client"`
	Kind     string `json:"f"`
	Invoke   int64  `json:"invoke_ns"`
	Complete int64  `json:"complete_ns"`
	Node     int    `json:"node"`
	// First is the class of the first attempt's error ("" when it
	// succeeded); Final the class after the one retry ("" when the
	// operation succeeded in the end).
	First string `json:"first,omitempty"`
	Final string `json:"final,omitempty"`
	// Detail is the last failed attempt's error or answer (for the report).
	Detail string `json:"detail,omitempty"`
}

// Prober runs the probe clients.
type Prober struct {
	c      *Cluster
	rec    *Recorder
	runID  string
	client *http.Client

	mu  sync.Mutex
	ops []ProbeOp
}

// NewProber prepares one probe client per node.
func NewProber(c *Cluster, rec *Recorder, runID string) *Prober {
	return &Prober{c: c, rec: rec, runID: runID,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second}}}
}

// Run runs the clients until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for cl := range p.c.Nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.client1(ctx, cl)
		}()
	}
	wg.Wait()
	p.client.CloseIdleConnections()
}

// Ops returns the recorded operations.
func (p *Prober) Ops() []ProbeOp {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ProbeOp(nil), p.ops...)
}

func (p *Prober) client1(ctx context.Context, cl int) {
	node := cl % len(p.c.Nodes)
	for seq := 0; ctx.Err() == nil; seq++ {
		id := fmt.Sprintf("probe-%s-c%d-%d", p.runID, cl, seq)
		body := fmt.Sprintf(`{"id":%q,"policies":["default"],"ttl":"1h"}`, id)
		var created bool
		node, created = p.op(ctx, cl, node, "create", http.MethodPost, "/v1/auth/token/create", p.c.RootToken, body)
		if created {
			// Only a token the client knows exists is looked up.
			node, _ = p.op(ctx, cl, node, OpValidateConsistent, http.MethodGet, "/v1/auth/token/lookup-self?consistent", id, "")
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond): // a client's think time
		}
	}
}

// op runs one operation with at most one retry and returns the node the
// client uses next and whether the operation succeeded.
func (p *Prober) op(ctx context.Context, cl, node int, kind, method, path, token, body string) (int, bool) {
	if ctx.Err() != nil {
		return node, false
	}
	rec := ProbeOp{Client: cl, Kind: kind, Invoke: p.rec.Now(), Node: node}
	first, retryAfter, detail := p.attempt(node, kind, method, path, token, body, false)
	rec.First, rec.Final = first, first
	if retryable(first) {
		// The node that failed may be going down (a drained node answers
		// 503 just before its process exits), so the one retry goes to the
		// next node, as a client with a list of addresses does.
		time.Sleep(min(retryAfter, time.Second))
		node = (node + 1) % len(p.c.Nodes)
		rec.Final, _, detail = p.attempt(node, kind, method, path, token, body, true)
		if rec.Final == "transport" || rec.Final == "timeout" {
			node = (node + 1) % len(p.c.Nodes)
		}
	}
	rec.Complete = p.rec.Now()
	if rec.First != "" || rec.Final != "" {
		rec.Detail = detail
	}
	p.mu.Lock()
	p.ops = append(p.ops, rec)
	p.mu.Unlock()
	return node, rec.Final == ""
}

// retryable says whether an error class calls for the one retry.
func retryable(class string) bool {
	switch class {
	case "503", "429", "timeout", "transport":
		return true
	}
	return false
}

// attempt sends one request. It returns "" on success or the error class,
// the Retry-After wait and the error or answer. A retried create that
// finds its ID taken succeeded the first time.
func (p *Prober) attempt(node int, kind, method, path, token, body string, retry bool) (string, time.Duration, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+p.c.Nodes[node].HTTPAddr+path, strings.NewReader(body))
	if err != nil {
		return "transport", 0, err.Error()
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := p.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "timeout", 0, fmt.Sprintf("n%d: %v", node+1, err)
		}
		return "transport", 0, fmt.Sprintf("n%d: %v", node+1, err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 512)
	n, _ := resp.Body.Read(buf)
	switch {
	case resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent:
		return "", 0, ""
	case retry && kind == "create" && resp.StatusCode == http.StatusBadRequest && strings.Contains(string(buf[:n]), "duplicate ID"):
		return "", 0, ""
	}
	var wait time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil {
		wait = time.Duration(s) * time.Second
	}
	return strconv.Itoa(resp.StatusCode), wait, fmt.Sprintf("n%d: %s", node+1, strings.TrimSpace(string(buf[:n])))
}

// CheckPlannedRestarts checks T9 on every rolling-restart and
// restart-sigterm event: no probe operation fails after its one retry, and
// no probe client sees more first-attempt errors than nodes were
// restarted. It also reports the leader handover time (SIGTERM to the
// leader until the next "gained leadership").
func CheckPlannedRestarts(events []Event, probe []ProbeOp, elections []time.Time) ([]Violation, string) {
	var out []Violation
	ends, _ := eventWindows(events)
	clients := 0
	for _, op := range probe {
		clients = max(clients, op.Client+1)
	}
	var handovers []time.Duration
	var firstErrs []int
	finalErrs, restarts := 0, 0
	for i, ev := range events {
		if ev.Nemesis != NemRollingRestart && ev.Nemesis != NemRestart {
			continue
		}
		n := len(ev.Targets)
		restarts += n
		perClient := map[int]int{}
		for _, op := range probe {
			// Operations that started before the cluster was healthy again
			// and ended before the next fault (a kill right after it must
			// not count against this restart).
			if op.Invoke < ev.Start || op.Invoke >= max(ev.End, ev.Healed) || op.Complete >= ends[i] {
				continue
			}
			if op.First != "" {
				perClient[op.Client]++
			}
			if op.Final != "" {
				finalErrs++
				out = append(out, Violation{Checker: CheckPlanned, At: op.Invoke, Detail: fmt.Sprintf(
					"%s #%d: probe client %d's %s on n%d failed after one retry: first %s, then %s (%s)",
					ev.Nemesis, ev.Seq, op.Client, op.Kind, op.Node+1, op.First, op.Final, op.Detail)})
			}
		}
		for cl := range clients {
			c := perClient[cl]
			firstErrs = append(firstErrs, c)
			if c > n {
				out = append(out, Violation{Checker: CheckPlanned, At: ev.Start, Detail: fmt.Sprintf(
					"%s #%d: probe client %d saw %d retryable errors without retrying for %d restarts (at most 1 per restart)",
					ev.Nemesis, ev.Seq, cl, c, n)})
			}
		}
		if !ev.LeaderStop.IsZero() {
			for _, e := range elections {
				if e.After(ev.LeaderStop) {
					handovers = append(handovers, e.Sub(ev.LeaderStop))
					break
				}
			}
		}
	}
	if restarts == 0 {
		return out, ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "T9 planned restarts: %d restarts, probe errors after one retry: %d; first-attempt errors per client and event %s",
		restarts, finalErrs, intStats(firstErrs))
	if len(handovers) > 0 {
		slices.Sort(handovers)
		fmt.Fprintf(&b, "; leader handover (SIGTERM -> new leader) n=%d median %s max %s",
			len(handovers), handovers[len(handovers)/2].Round(time.Millisecond), handovers[len(handovers)-1].Round(time.Millisecond))
	}
	b.WriteString("\n")
	return out, b.String()
}
