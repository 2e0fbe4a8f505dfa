//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RELIABILITY.md T8: clock skew and expiry.
var (
	flagT8Duration = flag.Duration("chaos.t8-duration", 60*time.Second, "T8 clock skew: time tokens are created, renewed and validated")
	flagT8Skew     = flag.Duration("chaos.t8-skew", 30*time.Second, "T8: one follower runs this far ahead, another this far behind")
)

// CheckExpiry is T8's checker: no node accepts a token more than its clock
// skew past the leader-stamped expiry, and renewals never pass the max TTL.
const CheckExpiry = "expiry"

const (
	t8TTL    = 5 * time.Second
	t8MaxTTL = 12 * time.Second
	// t8LeaderClock bounds how late any node may accept a token: nodes
	// judge expiry by the leader's clock as measured from lease grants
	// (cluster/leaderclock.go), off by one grant's one-way delay at most.
	t8LeaderClock = 250 * time.Millisecond
	// t8Slack covers the time between the harness sending a request and
	// the node reading its clock (a node can be up to its estimate's error
	// late even without skew).
	t8Slack = 5 * time.Millisecond
)

// t8Node is what T8 measured on one node.
type t8Node struct {
	skew time.Duration
	// validations answered, accepted (200) and accepted after the
	// leader-stamped expiry; worstLate is the largest such lateness.
	validations, accepted, late int
	tokensLate                  map[string]bool
	worstLate                   time.Duration
	// early counts rejections (403) of tokens that were valid by the
	// leader's expiry and had validated on this node before (a clock
	// ahead would reject early: availability, not safety).
	early int
	// renewals sent through this node, and those that answered 2xx after
	// the token's max TTL had passed (must be 0).
	renewals, renewAfterMax int
}

type t8 struct {
	c     *Cluster
	nodes []*t8Node
	runID string
	logf  func(string, ...any)

	mu         sync.Mutex
	violations []Violation
	// seen records the (token, node) pairs that validated once: a 403
	// before that is replication lag (a default read may miss a fresh
	// create for up to -max-stale), not the clock.
	seen      map[string]bool
	tokens    int
	capChecks int
}

func (s *t8) violate(format string, args ...any) {
	d := fmt.Sprintf(format, args...)
	s.mu.Lock()
	if len(s.violations) < 100 {
		s.logf("T8 VIOLATION: %s", d)
	}
	s.violations = append(s.violations, Violation{Checker: CheckExpiry, At: -1, Detail: d})
	s.mu.Unlock()
}

// t8Lookup is the part of a lookup-self answer T8 reads.
type t8Lookup struct {
	Data struct {
		ExpireTime     string `json:"expire_time"`
		IssueTime      string `json:"issue_time"`
		ExplicitMaxTTL int64  `json:"explicit_max_ttl"`
	} `json:"data"`
}

// leaderTimes returns the token's expiry and issue time as the leader
// stamped them (lookup-self?consistent is answered by the leader).
func (s *t8) leaderTimes(tok string, via int) (expire, issue time.Time, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	status, body, err := s.c.do(ctx, via, http.MethodGet, "/v1/auth/token/lookup-self?consistent", tok, "")
	if err != nil || status != http.StatusOK {
		return time.Time{}, time.Time{}, false
	}
	var l t8Lookup
	if json.Unmarshal(body, &l) != nil {
		return time.Time{}, time.Time{}, false
	}
	expire, err1 := time.Parse(time.RFC3339Nano, l.Data.ExpireTime)
	issue, err2 := time.Parse(time.RFC3339Nano, l.Data.IssueTime)
	return expire, issue, err1 == nil && err2 == nil
}

// life runs one token from creation until every node has rejected it for a
// while: validations on every node every 200 ms, renew-self through a
// random node every 1.5 s (past the max TTL too).
func (s *t8) life(id int, seed int64) {
	rnd := rand.New(rand.NewSource(seed))
	n := len(s.c.Nodes)
	tok := fmt.Sprintf("t8-%s-%d", s.runID, id)
	body := fmt.Sprintf(`{"id":%q,"ttl":"%ds","explicit_max_ttl":"%ds","renewable":true,"no_default_policy":false}`,
		tok, int(t8TTL.Seconds()), int(t8MaxTTL.Seconds()))
	via := id % n
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	status, out, err := s.c.do(ctx, via, http.MethodPost, "/v1/auth/token/create", s.c.RootToken, body)
	cancel()
	if err != nil || status != http.StatusOK {
		s.logf("T8 create %s via n%d: %d %v %s", tok, via+1, status, err, strings.TrimSpace(string(out)))
		return
	}
	s.mu.Lock()
	s.tokens++
	s.mu.Unlock()
	expire, issue, ok := s.leaderTimes(tok, rnd.Intn(n))
	for try := 0; !ok && try < 5; try++ {
		expire, issue, ok = s.leaderTimes(tok, rnd.Intn(n))
	}
	if !ok {
		s.violate("%s: no consistent lookup right after its create", tok)
		return
	}
	maxEnd := issue.Add(t8MaxTTL)
	nextRenew := time.Now().Add(1500 * time.Millisecond)
	// Run until past every node's possible acceptance window.
	deadline := maxEnd.Add(-minSkew(s.nodes)).Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for k := 0; k < n; k++ {
			s.validate(tok, k, expire)
		}
		if time.Now().After(nextRenew) {
			nextRenew = time.Now().Add(1500 * time.Millisecond)
			k := rnd.Intn(n)
			sent := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			st, _, err := s.c.do(ctx, k, http.MethodPost, "/v1/auth/token/renew-self", tok, `{"increment":"5s"}`)
			cancel()
			s.mu.Lock()
			s.nodes[k].renewals++
			if err == nil && st == http.StatusOK && sent.After(maxEnd) {
				s.nodes[k].renewAfterMax++
			}
			s.mu.Unlock()
			if err == nil && st == http.StatusOK && sent.After(maxEnd) {
				s.violate("%s: renew-self via n%d sent %s after the max TTL ended answered 200", tok, k+1, sent.Sub(maxEnd).Round(time.Millisecond))
			}
			if err == nil && st == http.StatusOK {
				if e, _, ok := s.leaderTimes(tok, rnd.Intn(n)); ok {
					expire = e
					s.mu.Lock()
					s.capChecks++
					s.mu.Unlock()
					if e.After(maxEnd) {
						s.violate("%s: renewal via n%d set expire_time %s, %s past issue_time + explicit_max_ttl (CVE-2021-32923 class)",
							tok, k+1, e.Format(time.RFC3339Nano), e.Sub(maxEnd))
					}
				}
			}
		}
		time.Sleep(200 * time.Millisecond) // validation interval
	}
}

func minSkew(nodes []*t8Node) time.Duration {
	m := time.Duration(0)
	for _, n := range nodes {
		m = min(m, n.skew)
	}
	return m
}

// validate sends a default-mode lookup-self to node k and scores it
// against the leader-stamped expiry: accepted at a (harness, unskewed)
// time after expire + the node's lag behind the leader is a violation.
func (s *t8) validate(tok string, k int, expire time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	sent := time.Now()
	status, _, err := s.c.do(ctx, k, http.MethodGet, "/v1/auth/token/lookup-self", tok, "")
	cancel()
	if err != nil || (status != http.StatusOK && status != http.StatusForbidden) {
		return
	}
	nd := s.nodes[k]
	// RELIABILITY.md T8 allows a clock behind to accept |skew| late; the
	// leader clock bounds every node tighter.
	allowed := min(max(0, -nd.skew), t8LeaderClock) + t8Slack
	late := sent.Sub(expire)
	s.mu.Lock()
	defer s.mu.Unlock()
	nd.validations++
	switch {
	case status == http.StatusOK:
		s.seen[fmt.Sprintf("%s/%d", tok, k)] = true
		nd.accepted++
		if late > 0 {
			nd.late++
			nd.tokensLate[tok] = true
			nd.worstLate = max(nd.worstLate, late)
		}
		if late > allowed {
			s.violations = append(s.violations, Violation{Checker: CheckExpiry, At: -1, Detail: fmt.Sprintf(
				"n%d (skew %s) accepted %s %s after its leader-stamped expiry (bound %s)", k+1, nd.skew, tok, late.Round(time.Millisecond), allowed)})
		}
	case status == http.StatusForbidden && late < 0 && s.seen[fmt.Sprintf("%s/%d", tok, k)]:
		nd.early++
		if late < -t8LeaderClock {
			s.violations = append(s.violations, Violation{Checker: CheckExpiry, At: -1, Detail: fmt.Sprintf(
				"n%d (skew %s) rejected %s %s before its leader-stamped expiry", k+1, nd.skew, tok, (-late).Round(time.Millisecond))})
		}
	}
}

// TestChaosClockSkew is RELIABILITY.md T8: one follower's wall clock runs
// +skew, another's -skew (TOKEND_TEST_CLOCK_OFFSET); tokens with a 5 s TTL
// and a 12 s explicit max TTL are created and renewed through every node
// and validated on every node. Pass: no node accepts a token more than its
// lag behind the leader past the leader-stamped expiry (RELIABILITY.md),
// and — since nodes judge expiry by the leader's clock (leader clock,
// cluster/leaderclock.go) — not more than 250 ms late and not more than
// 250 ms early either; no renewal extends past the max TTL or succeeds
// after it; no election happens while the clocks are skewed (raft runs on
// the monotonic clock).
func TestChaosClockSkew(t *testing.T) {
	caps := Probe()
	dir := scenarioDir(t, "t8-clockskew")
	c, err := NewCluster(getBin(t), dir, 3, caps.Netns, *flagMaxStale)
	if err != nil {
		t.Fatal(err)
	}
	defer c.StopAll()
	if caps.Partitions {
		nn := &nftNetwork{nodes: 3, addr: c.Addr}
		_ = nn.Heal()
	}
	if err := c.Init(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	leader := c.WaitLeader(10 * time.Second)
	if leader < 0 {
		t.Fatal("no leader")
	}
	skew := *flagT8Skew
	s := &t8{c: c, logf: t.Logf, seen: map[string]bool{}, runID: fmt.Sprintf("%d", time.Now().UnixNano()%1000000)}
	var followers []int
	for k := range c.Nodes {
		s.nodes = append(s.nodes, &t8Node{tokensLate: map[string]bool{}})
		if k != leader {
			followers = append(followers, k)
		}
	}
	// Restart the two followers with skewed clocks (kill -9: a SIGTERM
	// would leave gossip and be removed from raft meanwhile).
	for i, k := range followers {
		off := skew
		if i == 1 {
			off = -skew
		}
		s.nodes[k].skew = off
		_ = c.Signal(k, syscall.SIGKILL)
		c.Nodes[k].Env = []string{fmt.Sprintf("TOKEND_TEST_CLOCK_OFFSET=%+v", off)}
		if err := c.Start(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitHealthy(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if l := c.Leader(); l != leader {
		t.Logf("T8: leader moved from n%d to n%d during the restarts", leader+1, l+1)
		leader = l
		if s.nodes[l].skew != 0 {
			t.Fatalf("a skewed node (n%d, %s) leads: the test needs an unskewed leader", l+1, s.nodes[l].skew)
		}
	}
	logs := map[string]string{}
	for _, p := range c.Nodes {
		logs[p.ID] = p.LogPath
	}
	termsBefore, _ := LeaderTerms(logs)
	start := time.Now()
	var wg sync.WaitGroup
	id := 0
	// A new token every 750 ms, each validated until max TTL + skew + 3 s.
	for time.Since(start) < *flagT8Duration-t8MaxTTL-skew-3*time.Second || id == 0 {
		wg.Add(1)
		go func(id int) { defer wg.Done(); s.life(id, int64(id)) }(id)
		id++
		time.Sleep(750 * time.Millisecond)
	}
	wg.Wait()
	termsAfter, _ := LeaderTerms(logs)
	var vs []Violation
	s.mu.Lock()
	vs = append(vs, s.violations...)
	s.mu.Unlock()
	if len(termsAfter) != len(termsBefore) {
		vs = append(vs, Violation{Checker: CheckLeader, At: -1, Detail: fmt.Sprintf(
			"elections while clocks were skewed: %d terms before, %d after", len(termsBefore), len(termsAfter))})
	}
	vs = append(vs, CheckLeaders(termsAfter)...)
	vs = append(vs, CheckLogs(logs)...)
	for _, cr := range c.Crashes() {
		vs = append(vs, Violation{Checker: CheckCrash, At: -1, Detail: cr})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "T8 clock skew: %s, %d tokens (ttl %s, explicit max %s), %d renewals checked against the cap, leader n%d, %d violations\n",
		time.Since(start).Round(time.Second), s.tokens, t8TTL, t8MaxTTL, s.capChecks, leader+1, len(vs))
	fmt.Fprintf(&b, "%-4s %7s %11s %9s %13s %12s %14s %10s %9s %14s\n", "node", "skew", "validations", "accepted",
		"late-accepts", "tokens-late", "worst-late", "bound", "early-403", "renew>max-ok")
	for k, nd := range s.nodes {
		fmt.Fprintf(&b, "n%-3d %7s %11d %9d %13d %12d %14s %10s %9d %8d/%d\n", k+1, nd.skew, nd.validations, nd.accepted,
			nd.late, len(nd.tokensLate), nd.worstLate.Round(time.Microsecond), min(max(0, -nd.skew), t8LeaderClock)+t8Slack, nd.early, nd.renewAfterMax, nd.renewals)
	}
	t.Log("\n" + b.String())
	fmt.Print(b.String())
	_ = saveJSON(filepath.Join(dir, "violations.json"), vs)
	reportViolations(t, vs)
}
