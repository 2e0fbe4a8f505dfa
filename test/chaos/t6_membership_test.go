//go:build chaos

package chaos

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RELIABILITY.md T6: membership change during failures.
var flagT6Duration = flag.Duration("chaos.t6-duration", 120*time.Second,
	"T6 membership: time the add / kill leader / remove / partition-remove cycles run (at least one cycle)")

// CheckMembership is T6's checker: the configuration converges to the
// expected voters, and a removed node never comes back as a voter.
const CheckMembership = "membership"

// t6 is one T6 run: nodes n1-n3 serve the workload; n4 is added, removed,
// restarted, wiped and re-added, partitioned and removed again.
type t6 struct {
	t    *testing.T
	c    *Cluster // all 4 nodes
	v3   *Cluster // n1-n3
	v4   *Cluster // n1-n4 (n4 joins all three)
	net  Network
	rec  *Recorder
	logf func(string, ...any)

	mu         sync.Mutex
	violations []Violation
	// watchOut is set while n4 must not be a voter.
	watchOut bool

	addTimes, removeTimes, rejoinTimes, partRemoveTimes []time.Duration
	rounds                                              int
}

func (s *t6) violate(format string, args ...any) {
	d := fmt.Sprintf(format, args...)
	s.logf("T6 VIOLATION: %s", d)
	s.mu.Lock()
	s.violations = append(s.violations, Violation{Checker: CheckMembership, At: s.rec.Now(), Detail: d})
	s.mu.Unlock()
}

// voters returns node k's view of the raft voters (sorted ids; a stale
// follower forwards the read to the leader).
func (s *t6) voters(k int) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	status, body, err := s.c.do(ctx, k, http.MethodGet, "/v1/sys/storage/raft/configuration", s.c.RootToken, "")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("status %d", status)
	}
	var r struct {
		Data struct {
			Config struct {
				Servers []struct {
					NodeID string `json:"node_id"`
					Voter  bool   `json:"voter"`
				} `json:"servers"`
			} `json:"config"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	var out []string
	for _, sv := range r.Data.Config.Servers {
		if sv.Voter {
			out = append(out, sv.NodeID)
		}
	}
	sort.Strings(out)
	return out, nil
}

// waitConfig waits until every running node of want (0-based indexes into
// c) reports exactly want's voters: the change is then in every voter's
// log, which is what "committed" can mean from outside. It returns the
// time it took, or a violation after timeout.
func (s *t6) waitConfig(what string, want []int, since time.Time, timeout time.Duration) time.Duration {
	var ids []string
	for _, k := range want {
		ids = append(ids, s.c.Nodes[k].ID)
	}
	sort.Strings(ids)
	deadline := since.Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok := true
		for _, k := range want {
			if !s.c.Running(k) {
				continue
			}
			got, err := s.voters(k)
			if err != nil || !slices.Equal(got, ids) {
				ok = false
				last = fmt.Sprintf("%s sees %v (%v)", s.c.Nodes[k].ID, got, err)
				break
			}
		}
		if ok {
			d := time.Since(since)
			s.logf("T6 %s: configuration %v on every voter after %s", what, ids, d.Round(time.Millisecond))
			return d
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	s.violate("%s: configuration did not converge to %v within %s: %s", what, ids, timeout, last)
	return -1
}

// removePeer calls sys/storage/raft/remove-peer for n4 through the nodes
// of n1-n3 in turn until one answers 204 (a retry of an indeterminate call
// is safe: the endpoint is idempotent), and reports the answers.
func (s *t6) removePeer(id string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	var answers []string
	for i := 0; time.Now().Before(deadline); i++ {
		k := i % 3
		if !s.c.Running(k) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		status, body, err := s.c.do(ctx, k, http.MethodPost, "/v1/sys/storage/raft/remove-peer", s.c.RootToken,
			`{"server_id":"`+id+`"}`)
		cancel()
		answers = append(answers, fmt.Sprintf("n%d:%d", k+1, status))
		switch {
		case err == nil && status == http.StatusNoContent:
			s.logf("T6 remove-peer %s: answers %v", id, answers)
			return true
		case err == nil && status >= 400 && status < 500:
			s.violate("remove-peer %s via n%d: %d %s", id, k+1, status, strings.TrimSpace(string(body)))
			return false
		}
		time.Sleep(200 * time.Millisecond) // retry interval
	}
	s.violate("remove-peer %s: no success within %s (answers %v)", id, timeout, answers)
	return false
}

// watch samples every running node's voters while watchOut is set and
// reports n4 coming back.
func (s *t6) watch(ctx context.Context) {
	for ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond) // sampling interval
		s.mu.Lock()
		on := s.watchOut
		s.mu.Unlock()
		if !on {
			continue
		}
		for k := 0; k < 3; k++ {
			if !s.c.Running(k) {
				continue
			}
			if got, err := s.voters(k); err == nil && slices.Contains(got, s.c.Nodes[3].ID) {
				s.mu.Lock()
				still := s.watchOut
				s.mu.Unlock()
				if still {
					s.violate("removed node n4 is a voter again (seen by n%d: %v)", k+1, got)
				}
			}
		}
	}
}

func (s *t6) setWatch(on bool) {
	s.mu.Lock()
	s.watchOut = on
	s.mu.Unlock()
}

// n4Serves reports whether n4 answers sys/health with 200.
func (s *t6) n4Refuses() bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	status, _, err := s.c.do(ctx, 3, http.MethodGet, "/v1/sys/health?standbyok=true", "", "")
	return err == nil && status != http.StatusOK
}

// cycle is one round of the T6 schedule.
func (s *t6) cycle(round int, observe time.Duration) {
	c := s.c
	// 1. Add n4 as a voter, and kill -9 the leader mid-change: as soon as
	// the leader lists n4 in its (latest, maybe uncommitted)
	// configuration. The killed leader restarts 2 s later on its data dir.
	leader := c.WaitLeader(10 * time.Second)
	startAdd := time.Now()
	if err := s.v4.Start(3); err != nil {
		s.violate("start n4: %v", err)
		return
	}
	killed := -1
	for time.Since(startAdd) < 5*time.Second && leader >= 0 {
		if got, err := s.voters(leader); err == nil && slices.Contains(got, "n4") {
			break
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	if leader >= 0 && leader < 3 {
		_ = c.Signal(leader, syscall.SIGKILL)
		killed = leader
		s.logf("T6 round %d: killed leader n%d %s after n4 started", round, leader+1, time.Since(startAdd).Round(time.Millisecond))
		time.Sleep(2 * time.Second)
		if err := s.v3.Start(killed); err != nil {
			s.violate("restart n%d: %v", killed+1, err)
		}
	}
	if d := s.waitConfig(fmt.Sprintf("round %d add n4 (leader killed)", round), []int{0, 1, 2, 3}, startAdd, 30*time.Second); d >= 0 {
		s.addTimes = append(s.addTimes, d)
	} else {
		return
	}
	// 2. Remove n4 (alive). Every other round the leader is killed right
	// after the call is sent, so the removal straddles an election (the
	// next leader finishes a committed tombstone).
	startRm := time.Now()
	var killWG sync.WaitGroup
	if round%2 == 1 {
		if l := c.Leader(); l >= 0 && l < 3 {
			killWG.Add(1)
			go func() {
				defer killWG.Done()
				time.Sleep(30 * time.Millisecond)
				_ = c.Signal(l, syscall.SIGKILL)
				s.logf("T6 round %d: killed leader n%d during remove-peer", round, l+1)
				time.Sleep(2 * time.Second)
				_ = s.v3.Start(l)
			}()
		}
	}
	ok := s.removePeer("n4", 30*time.Second)
	killWG.Wait()
	if !ok {
		return
	}
	if d := s.waitConfig(fmt.Sprintf("round %d remove n4", round), []int{0, 1, 2}, startRm, 30*time.Second); d >= 0 {
		s.removeTimes = append(s.removeTimes, d)
	}
	s.setWatch(true)
	// 3. n4 is still alive in gossip: it must stay out and answer 503.
	time.Sleep(observe)
	if !s.n4Refuses() {
		s.violate("round %d: removed n4 still answers sys/health with 200", round)
	}
	// 4. Restart n4 on its data dir (same instance id): still out.
	_ = c.Signal(3, syscall.SIGKILL)
	if err := s.v4.Start(3); err != nil {
		s.violate("restart n4: %v", err)
	}
	time.Sleep(observe)
	if !s.n4Refuses() {
		s.violate("round %d: removed n4 restarted on its data dir answers sys/health with 200", round)
	}
	// 5. Wipe n4: a new instance re-joins (cluster TLS checked) as a voter.
	_ = c.Signal(3, syscall.SIGKILL)
	if err := c.Wipe(3); err != nil {
		s.violate("wipe n4: %v", err)
	}
	s.setWatch(false)
	startRejoin := time.Now()
	if err := s.v4.Start(3); err != nil {
		s.violate("start wiped n4: %v", err)
	}
	if d := s.waitConfig(fmt.Sprintf("round %d wiped n4 re-joins", round), []int{0, 1, 2, 3}, startRejoin, 30*time.Second); d >= 0 {
		s.rejoinTimes = append(s.rejoinTimes, d)
	} else {
		return
	}
	// 6. Partition n4 from everyone, remove it from the majority side,
	// heal: it must not come back (pre-vote: no election either).
	if err := s.net.Cut(Between([]int{3}, []int{0, 1, 2})); err != nil {
		s.violate("partition n4: %v", err)
		return
	}
	startPart := time.Now()
	ok = s.removePeer("n4", 30*time.Second)
	if ok {
		if d := s.waitConfig(fmt.Sprintf("round %d remove partitioned n4", round), []int{0, 1, 2}, startPart, 30*time.Second); d >= 0 {
			s.partRemoveTimes = append(s.partRemoveTimes, d)
		}
		s.setWatch(true)
	}
	time.Sleep(time.Second)
	if err := s.net.Heal(); err != nil {
		s.violate("heal: %v", err)
	}
	time.Sleep(observe)
	if !s.n4Refuses() {
		s.violate("round %d: removed, healed n4 answers sys/health with 200", round)
	}
	// Back to three nodes for the next round.
	_ = c.Signal(3, syscall.SIGKILL)
	s.setWatch(false)
	if err := c.Wipe(3); err != nil {
		s.violate("wipe n4: %v", err)
	}
	if err := s.v3.WaitHealthy(20 * time.Second); err != nil {
		s.violate("round %d: n1-n3 not healthy: %v", round, err)
	}
	s.rounds++
}

func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("n=%d median %s max %s", len(s), s[len(s)/2].Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// TestChaosMembership is RELIABILITY.md T6 on real processes: add n4 as a
// voter and kill -9 the leader mid-change, remove n4 (alive, then after a
// restart on its data dir it must stay out), re-join it wiped, then
// remove it while partitioned and heal. Pass: the configuration converges
// to the expected voters every time, a removed node never comes back as a
// voter, no two leaders in one term, and the workload on n1-n3 loses
// nothing (C1-C5).
func TestChaosMembership(t *testing.T) {
	caps := Probe()
	if !requirePartitions(t, caps, "T6 membership") {
		return
	}
	dir := scenarioDir(t, "t6-membership")
	seed := runSeed()
	c, err := NewCluster(getBin(t), dir, 4, caps.Netns, *flagMaxStale)
	if err != nil {
		t.Fatal(err)
	}
	defer c.StopAll()
	nn := &nftNetwork{nodes: 4, addr: c.Addr}
	if err := nn.Heal(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = nn.Heal() }()
	v3 := c.view(0, 1, 2)
	if err := v3.Init(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	c.RootToken = v3.RootToken
	v4 := c.view(0, 1, 2, 3)
	v4.RootToken = v3.RootToken
	start := time.Now()
	rec, err := NewRecorder(filepath.Join(dir, "history.jsonl"), start)
	if err != nil {
		t.Fatal(err)
	}
	s := &t6{t: t, c: c, v3: v3, v4: v4, net: nn, rec: rec, logf: t.Logf}
	w := NewWorkload(WorkloadConfig{Workers: 100, Rate: *flagRate, ReadTimeout: 3 * time.Second,
		WriteTimeout: 10 * time.Second, Seed: seed, RunID: "t6" + strconv.FormatInt(seed%1000000, 36)}, v3, rec)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); w.Run(ctx) }()
	go func() { defer wg.Done(); s.watch(ctx) }()
	time.Sleep(2 * time.Second)
	observe := 6 * time.Second // 3 reconcile intervals (2 s each)
	if *flagT6Duration < 60*time.Second {
		observe = 3 * time.Second
	}
	for round := 0; round == 0 || time.Since(start) < *flagT6Duration; round++ {
		s.cycle(round, observe)
	}
	cancel()
	wg.Wait()
	ops := rec.Ops()
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v3.WaitHealthy(30 * time.Second); err != nil {
		s.violations = append(s.violations, Violation{Checker: CheckHealthy, At: -1, Detail: err.Error()})
	}
	vs, stale, elections := historyChecks(c, v3, ops, dir, t.Logf)
	vs = append(vs, s.violations...)
	acked := 0
	for _, op := range ops {
		if op.Outcome == Ok {
			acked++
		}
	}
	report := fmt.Sprintf("T6 membership: %s, %d rounds, %d ops (%d acked), %d elections, %d violations\n"+
		"  add n4 + leader kill -> config on every voter: %s\n"+
		"  remove-peer n4 -> config on every voter:      %s\n"+
		"  wiped n4 re-join -> voter everywhere:           %s\n"+
		"  remove partitioned n4 -> config:                %s\n"+
		"  default reads missing an acked create: %d; valid after a covering revoke: %d\n",
		time.Since(start).Round(time.Second), s.rounds, len(ops), acked, elections, len(vs),
		durations(s.addTimes), durations(s.removeTimes), durations(s.rejoinTimes), durations(s.partRemoveTimes),
		len(stale.MissingCreate), stale.RevokedValid)
	t.Log("\n" + report)
	fmt.Print(report)
	_ = saveJSON(filepath.Join(dir, "violations.json"), vs)
	reportViolations(t, vs)
}
