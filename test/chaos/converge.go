package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// FSMHash is one node's GET /v1/sys/storage/fsm-hash: the digest of its
// replicated state and the applied index it was taken at.
type FSMHash struct {
	Hash         string `json:"hash"`
	AppliedIndex uint64 `json:"applied_index"`
	Tokens       int    `json:"tokens"`
}

// FSMHash asks node k for its state digest (node-local, never forwarded).
func (c *Cluster) FSMHash(k int) (FSMHash, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	status, body, err := c.do(ctx, k, http.MethodGet, "/v1/sys/storage/fsm-hash", c.RootToken, "")
	if err != nil {
		return FSMHash{}, err
	}
	if status != http.StatusOK {
		return FSMHash{}, fmt.Errorf("fsm-hash on %s: %d %s", c.Nodes[k].ID, status, strings.TrimSpace(string(body)))
	}
	var r struct {
		Data FSMHash `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return FSMHash{}, fmt.Errorf("fsm-hash on %s: %v", c.Nodes[k].ID, err)
	}
	if !strings.HasPrefix(r.Data.Hash, "sha256:") {
		return FSMHash{}, fmt.Errorf("fsm-hash on %s: hash %q", c.Nodes[k].ID, r.Data.Hash)
	}
	return r.Data, nil
}

// Convergence is what WaitConverged saw.
type Convergence struct {
	// OK: every node reported the same applied index and the same hash.
	OK bool
	// After is how long that took from the call.
	After time.Duration
	// Last is each node's last answer (zero where it failed).
	Last []FSMHash
	// Diverged is set when the nodes agreed on the applied index but not
	// on the hash: their states differ for the same log prefix.
	Diverged bool
	Err      error
}

// WaitConverged polls every node's state digest until all report the same
// applied index and the same hash, or timeout passes (C4). The workload
// must be quiet: each poll reads the nodes one after the other, so only a
// cluster that stopped applying can agree. Equal indexes with different
// hashes end the wait at once: that is a divergence, not a lag.
func WaitConverged(c *Cluster, nodes []int, timeout time.Duration) Convergence {
	start := time.Now()
	var r Convergence
	for {
		r.Last, r.Err = make([]FSMHash, len(nodes)), nil
		for i, k := range nodes {
			h, err := c.FSMHash(k)
			if err != nil {
				r.Err = err
				break
			}
			r.Last[i] = h
		}
		r.After = time.Since(start)
		if r.Err == nil {
			sameIndex, sameHash := true, true
			for _, h := range r.Last[1:] {
				sameIndex = sameIndex && h.AppliedIndex == r.Last[0].AppliedIndex
				sameHash = sameHash && h.Hash == r.Last[0].Hash
			}
			if sameIndex && sameHash {
				r.OK = true
				return r
			}
			if sameIndex {
				r.Diverged = true
				return r
			}
		}
		if r.After >= timeout {
			return r
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

// Describe renders the last answers, for a violation.
func (r Convergence) Describe(c *Cluster, nodes []int) string {
	var b strings.Builder
	switch {
	case r.Diverged:
		fmt.Fprintf(&b, "states differ at the same applied index after %s", r.After.Round(time.Millisecond))
	default:
		fmt.Fprintf(&b, "no common applied index and hash within %s", r.After.Round(time.Millisecond))
	}
	if r.Err != nil {
		fmt.Fprintf(&b, " (last error: %v)", r.Err)
	}
	for i, k := range nodes {
		h := r.Last[i]
		fmt.Fprintf(&b, "; %s index %d tokens %d %s", c.Nodes[k].ID, h.AppliedIndex, h.Tokens, shortDigest(h.Hash))
	}
	return b.String()
}

func shortDigest(h string) string {
	if len(h) > 19 {
		return h[:19]
	}
	return h
}

// AccessorDiff is the diagnostic printed when digests differ: each node's
// local accessor list against node ref's, as counts and a few examples.
func AccessorDiff(c *Cluster, nodes []int, ref int) string {
	want, err := c.Accessors(ref, false)
	if err != nil {
		return fmt.Sprintf("accessors of %s: %v", c.Nodes[ref].ID, err)
	}
	slices.Sort(want)
	var parts []string
	for _, k := range nodes {
		if k == ref {
			continue
		}
		got, err := c.Accessors(k, false)
		if err != nil {
			parts = append(parts, fmt.Sprintf("%s: %v", c.Nodes[k].ID, err))
			continue
		}
		slices.Sort(got)
		missing, extra := sortedMinus(want, got), sortedMinus(got, want)
		parts = append(parts, fmt.Sprintf("%s vs %s: %d accessors, %d missing %v, %d extra %v",
			c.Nodes[k].ID, c.Nodes[ref].ID, len(got), len(missing), firstN(missing, 5), len(extra), firstN(extra, 5)))
	}
	return strings.Join(parts, "; ")
}

// sortedMinus returns the elements of sorted a that are not in sorted b.
func sortedMinus(a, b []string) []string {
	var out []string
	j := 0
	for _, x := range a {
		for j < len(b) && b[j] < x {
			j++
		}
		if j >= len(b) || b[j] != x {
			out = append(out, x)
		}
	}
	return out
}

func firstN(xs []string, n int) []string {
	if len(xs) > n {
		return xs[:n]
	}
	return xs
}

// checkConvergence is C4 on the healed, quiet cluster: every node's state
// digest equal at one applied index within timeout, with the accessor
// lists' differences as the diagnostic.
func checkConvergence(c *Cluster, timeout time.Duration, logf func(string, ...any)) []Violation {
	nodes := make([]int, len(c.Nodes))
	for k := range nodes {
		nodes[k] = k
	}
	r := WaitConverged(c, nodes, timeout)
	if r.OK {
		logf("C4: every node at applied index %d with state digest %s (%d tokens) after %s",
			r.Last[0].AppliedIndex, shortDigest(r.Last[0].Hash), r.Last[0].Tokens, r.After.Round(time.Millisecond))
		return nil
	}
	ref := c.Leader()
	if ref < 0 {
		ref = 0
	}
	return []Violation{{Checker: CheckConverge, At: -1,
		Detail: r.Describe(c, nodes) + "; accessor lists: " + AccessorDiff(c, nodes, ref)}}
}
