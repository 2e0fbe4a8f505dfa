package chaos

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The pass criteria of RELIABILITY.md T1 (leader kill loop) that are about
// availability, checked on the kill-leader events of a chaos run:
//
//   - only 503s with Retry-After, or 429s, are client-visible errors
//     (on the surviving nodes: a client of the killed node sees its
//     connection refused, which no server can help);
//   - write unavailability per kill (from the kill until the first
//     acknowledged create a surviving node served) at most 4 s, p50 at most
//     2.5 s;
//   - elections and forwarding errors per kill are reported.

// Checker names of the availability criteria.
const (
	CheckRetryable = "retryable-errors"
	CheckUnavail   = "write-unavailability"
	CheckFalseFail = "false-failure"
)

// T1 bounds.
const (
	t1MaxUnavailable = 4 * time.Second
	t1P50Unavailable = 2500 * time.Millisecond
)

// CheckRetryAfter reports every 503 or 429 answer without a Retry-After
// header: a client told to come back must be told when.
func CheckRetryAfter(ops []*Op) []Violation {
	var out []Violation
	for _, op := range ops {
		if (op.Status == http.StatusServiceUnavailable || op.Status == http.StatusTooManyRequests) && op.RetryAfter == "" {
			out = append(out, Violation{Checker: CheckRetryable, At: op.Invoke, Detail: fmt.Sprintf(
				"%s of %s on n%d answered %d without Retry-After: %s (op %d)", op.Kind, op.Token, op.Node+1, op.Status, op.Error, op.ID)})
		}
	}
	return out
}

// CheckFalseFailures reports creates answered "duplicate ID": the
// workload sends each client-chosen ID in one create only, so the token
// that exists is this very request's, applied once already, and the
// failure the client was told is false (a forward that sent the write
// twice did this).
func CheckFalseFailures(ops []*Op) []Violation {
	var out []Violation
	for _, op := range ops {
		if (op.Kind == OpCreate || op.Kind == OpChildCreate) && op.Status == http.StatusBadRequest &&
			strings.Contains(op.Error, "duplicate ID") {
			out = append(out, Violation{Checker: CheckFalseFail, At: op.Invoke, Detail: fmt.Sprintf(
				"%s of %s on n%d answered %d %s, but no other request ever used that ID: it was applied and reported as failed (op %d)",
				op.Kind, op.Token, op.Node+1, op.Status, op.Error, op.ID)})
		}
	}
	return out
}

// visibleError says whether op's answer is an error a client sees that is
// not a retryable 503/429 with Retry-After, and which class it is.
func visibleError(op *Op) (string, bool) {
	switch {
	case op.Outcome == Ok || op.Outcome == Fail && op.Status >= 400 && op.Status < 500 && op.Status != http.StatusTooManyRequests:
		// Successes, and the definite answers the workload provokes on
		// purpose (a revoked parent cannot create a child, ...).
		return "", false
	case (op.Status == http.StatusServiceUnavailable || op.Status == http.StatusTooManyRequests) && op.RetryAfter != "":
		return "", false
	case op.Status != 0:
		return strconv.Itoa(op.Status), true
	case op.Error == "timeout":
		return "timeout", true
	default:
		return "transport", true
	}
}

// eventWindows returns, per event, the monotonic end of its window (the
// next event's start) and the wall-clock end.
func eventWindows(events []Event) (ends []int64, wallEnds []time.Time) {
	for i, ev := range events {
		end := int64(1 << 62)
		if i+1 < len(events) {
			end = events[i+1].Start
		}
		ends = append(ends, end)
		wall := ev.StartWall.Add(time.Duration(max(ev.End, ev.Healed) - ev.Start))
		if i+1 < len(events) {
			wall = events[i+1].StartWall
		}
		wallEnds = append(wallEnds, wall)
	}
	return ends, wallEnds
}

// CheckLeaderKills checks T1's availability criteria on every kill-leader
// event and returns the violations and a report.
func CheckLeaderKills(events []Event, ops []*Op, elections []time.Time) ([]Violation, string) {
	var out []Violation
	ends, wallEnds := eventWindows(events)
	var unavail []time.Duration
	var elec, fwd []int
	visible := map[string]int{}
	for i, ev := range events {
		if ev.Nemesis != NemKillLeader {
			continue
		}
		target := map[int]bool{}
		for _, k := range ev.Targets {
			target[k] = true
		}
		first := int64(-1)
		for _, op := range ops {
			if op.Invoke < ev.Start || op.Invoke >= ends[i] || target[op.Node] {
				continue
			}
			// Errors count for this kill only for operations that started
			// before the cluster was healthy again and ended before the
			// next fault (which may stop a node this one spared).
			if cls, bad := visibleError(op); bad && op.Invoke < max(ev.End, ev.Healed) && op.Complete < ends[i] {
				visible[cls]++
				out = append(out, Violation{Checker: CheckRetryable, At: op.Invoke, Detail: fmt.Sprintf(
					"kill-leader #%d: %s of %s on surviving n%d: client-visible error %s (not a 503/429 with Retry-After): %s (op %d)",
					ev.Seq, op.Kind, op.Token, op.Node+1, cls, op.Error, op.ID)})
			}
			if op.Outcome == Ok && (op.Kind == OpCreate || op.Kind == OpChildCreate) && (first < 0 || op.Complete < first) {
				first = op.Complete
			}
		}
		if first < 0 {
			out = append(out, Violation{Checker: CheckUnavail, At: ev.Start, Detail: fmt.Sprintf(
				"kill-leader #%d: no create acknowledged by a surviving node before the next fault", ev.Seq)})
		} else {
			d := time.Duration(first - ev.Start)
			unavail = append(unavail, d)
			if d > t1MaxUnavailable {
				out = append(out, Violation{Checker: CheckUnavail, At: ev.Start, Detail: fmt.Sprintf(
					"kill-leader #%d: writes unavailable for %s (bound %s)", ev.Seq, d.Round(time.Millisecond), t1MaxUnavailable)})
			}
		}
		n := 0
		for _, e := range elections {
			if !e.Before(ev.StartWall) && e.Before(wallEnds[i]) {
				n++
			}
		}
		elec = append(elec, n)
		fwd = append(fwd, ev.ForwardErrors)
	}
	if len(elec) == 0 {
		return out, ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "T1 kill-leader: %d kills", len(elec))
	if len(unavail) > 0 {
		slices.Sort(unavail)
		p50 := unavail[len(unavail)/2]
		if p50 > t1P50Unavailable {
			out = append(out, Violation{Checker: CheckUnavail, At: -1, Detail: fmt.Sprintf(
				"kill-leader: median write unavailability %s (bound %s)", p50.Round(time.Millisecond), t1P50Unavailable)})
		}
		fmt.Fprintf(&b, ", write unavailability p50 %s p99 %s max %s (bounds p50 %s, max %s)",
			p50.Round(time.Millisecond), percentile(unavail, 99).Round(time.Millisecond),
			unavail[len(unavail)-1].Round(time.Millisecond), t1P50Unavailable, t1MaxUnavailable)
	}
	fmt.Fprintf(&b, "; elections/kill %s; forwarding errors/kill %s; client-visible errors on survivors other than 503/429 with Retry-After: %d %v\n",
		intStats(elec), intStats(fwd), len(out)-countChecker(out, CheckUnavail), visible)
	return out, b.String()
}

func countChecker(vs []Violation, ck string) int {
	n := 0
	for _, v := range vs {
		if v.Checker == ck {
			n++
		}
	}
	return n
}

// intStats renders mean and max of xs.
func intStats(xs []int) string {
	if len(xs) == 0 {
		return "-"
	}
	sum, hi := 0, xs[0]
	for _, x := range xs {
		sum += x
		hi = max(hi, x)
	}
	return fmt.Sprintf("mean %.2f max %d", float64(sum)/float64(len(xs)), hi)
}

// forwardErrors reads every running node's tokend_forwarded_requests_total
// with an outcome other than "forwarded" (no leader, timeout, hop refused,
// shutting down, error); -1 for a node that did not answer.
func forwardErrors(c *Cluster) []int {
	out := make([]int, len(c.Nodes))
	for k := range c.Nodes {
		out[k] = -1
		if !c.Running(k) || c.Paused(k) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		st, body, err := c.do(ctx, k, http.MethodGet, "/v1/sys/metrics?format=prometheus", c.RootToken, "")
		cancel()
		if err != nil || st != http.StatusOK {
			continue
		}
		out[k] = 0
		sc := bufio.NewScanner(strings.NewReader(string(body)))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "tokend_forwarded_requests_total{") || strings.Contains(line, `outcome="forwarded"`) {
				continue
			}
			f := strings.Fields(line)
			if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
				out[k] += int(v)
			}
		}
	}
	return out
}

// forwardErrorsDelta sums the growth of the forwarding errors on the nodes
// that answered both times and were not restarted in between (targets'
// counters start again from zero).
func forwardErrorsDelta(before, after []int, targets []int) int {
	skip := map[int]bool{}
	for _, k := range targets {
		skip[k] = true
	}
	n := 0
	for k := range before {
		if skip[k] || before[k] < 0 || after[k] < 0 {
			continue
		}
		n += max(after[k]-before[k], 0)
	}
	return n
}
