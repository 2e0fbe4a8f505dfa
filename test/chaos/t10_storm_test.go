//go:build chaos

package chaos

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// RELIABILITY.md T10: request storm during an election.
var (
	flagT10Duration = flag.Duration("chaos.t10-duration", 60*time.Second, "T10 storm: how long the clients and the leader kills run")
	flagT10Clients  = flag.Int("chaos.t10-clients", 200, "T10 storm: concurrent clients, each sending as fast as it can")
)

// CheckStorm is T10's checker: memory and goroutine bounds, no 500s.
const CheckStorm = "storm"

const (
	t10RSSLimit      = 512 << 20 // bytes, per node
	t10GoroutineSlop = 0.10      // goroutines back within 10% of the baseline
	t10Recover       = 10 * time.Second
)

// procStatusKB reads a "Name:   123 kB" field of /proc/<pid>/status.
func procStatusKB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, field+":") {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, field+":"))
		if len(f) == 0 {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("%s not in /proc/%d/status", field, pid)
}

// pid returns node k's current process id (0 when not running).
func (c *Cluster) pid(k int) int {
	p := c.Nodes[k]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	select {
	case <-p.done:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// goroutines reads go_goroutines from node k's prometheus metrics.
func (c *Cluster) goroutines(k int) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	status, body, err := c.do(ctx, k, http.MethodGet, "/v1/sys/metrics?format=prometheus", c.RootToken, "")
	if err != nil {
		return 0, err
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("metrics: status %d", status)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(f), err
		}
	}
	return 0, errors.New("no go_goroutines in the metrics")
}

// totalGoroutines sums go_goroutines over the nodes.
func (c *Cluster) totalGoroutines() (int, []int, error) {
	total := 0
	var per []int
	for k := range c.Nodes {
		g, err := c.goroutines(k)
		if err != nil {
			return 0, nil, fmt.Errorf("n%d: %w", k+1, err)
		}
		total += g
		per = append(per, g)
	}
	return total, per, nil
}

// stormStats counts the storm's answers.
type stormStats struct {
	mu       sync.Mutex
	byStatus map[string]int
	total    int
}

func (s *stormStats) add(kind string, status int, err error) {
	key := kind + ":"
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		key += "timeout"
	case err != nil:
		key += "transport"
	default:
		key += strconv.Itoa(status)
	}
	s.mu.Lock()
	s.byStatus[key]++
	s.total++
	s.mu.Unlock()
}

// TestChaosStorm is RELIABILITY.md T10: -chaos.t10-clients clients send
// validates (default and consistent) and creates as fast as they can to
// every node while the leader is killed with -9 every 5 s and restarted
// 2 s later. Pass: no node exits on its own (no OOM), peak RSS (VmHWM)
// at most 512 MiB per process, overload answered with 429/503 only (no
// 500, no other 5xx), no panic, and 10 s after the storm the cluster's
// goroutine count is back within 10% of its baseline.
func TestChaosStorm(t *testing.T) {
	caps := Probe()
	dir := scenarioDir(t, "t10-storm")
	c, err := NewCluster(getBin(t), dir, 3, caps.Netns, *flagMaxStale)
	if err != nil {
		t.Fatal(err)
	}
	defer c.StopAll()
	if caps.Partitions {
		_ = (&nftNetwork{nodes: 3, addr: c.Addr}).Heal()
	}
	if err := c.Init(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Tokens to validate.
	var pool []string
	for i := 0; i < 64; i++ {
		id := fmt.Sprintf("t10-%d-%d", time.Now().UnixNano()%1000000, i)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		status, body, err := c.do(ctx, i%3, http.MethodPost, "/v1/auth/token/create", c.RootToken,
			fmt.Sprintf(`{"id":%q,"ttl":"1h"}`, id))
		cancel()
		if err != nil || status != http.StatusOK {
			t.Fatalf("create pool token: %d %v %s", status, err, body)
		}
		pool = append(pool, id)
	}
	time.Sleep(3 * time.Second) // let the cluster settle before the baseline
	baseline, basePer, err := c.totalGoroutines()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("T10 baseline goroutines: %d (per node %v)", baseline, basePer)

	stats := &stormStats{byStatus: map[string]int{}}
	tr := &http.Transport{MaxIdleConnsPerHost: *flagT10Clients, MaxIdleConns: 3 * *flagT10Clients,
		IdleConnTimeout: 30 * time.Second, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), *flagT10Duration)
	defer cancel()
	var wg sync.WaitGroup
	var maxHWM [3]atomic.Int64
	var maxRSS [3]atomic.Int64
	sample := func() {
		for k := range c.Nodes {
			if pid := c.pid(k); pid > 0 {
				if v, err := procStatusKB(pid, "VmHWM"); err == nil && v*1024 > maxHWM[k].Load() {
					maxHWM[k].Store(v * 1024)
				}
				if v, err := procStatusKB(pid, "VmRSS"); err == nil && v*1024 > maxRSS[k].Load() {
					maxRSS[k].Store(v * 1024)
				}
			}
		}
	}
	// Memory sampler.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			sample()
			time.Sleep(200 * time.Millisecond) // sampling interval
		}
	}()
	// T1-style kills: the leader every 5 s, restarted 2 s later.
	kills := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			l := c.Leader()
			if l < 0 {
				continue
			}
			sample() // the peak of the process about to die
			_ = c.Signal(l, syscall.SIGKILL)
			kills++
			time.Sleep(2 * time.Second)
			if err := c.Start(l); err != nil {
				t.Errorf("restart n%d: %v", l+1, err)
			}
		}
	}()
	for i := 0; i < *flagT10Clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rnd := rand.New(rand.NewSource(int64(i)))
			for n := i; ctx.Err() == nil; n++ {
				k := n % 3
				var req *http.Request
				kind := ""
				switch r := rnd.Float64(); {
				case r < 0.35:
					kind = "validate"
					req, _ = http.NewRequest(http.MethodGet, "http://"+c.Nodes[k].HTTPAddr+"/v1/auth/token/lookup-self", nil)
					req.Header.Set("X-Vault-Token", pool[rnd.Intn(len(pool))])
				case r < 0.7:
					kind = "validate-consistent"
					req, _ = http.NewRequest(http.MethodGet, "http://"+c.Nodes[k].HTTPAddr+"/v1/auth/token/lookup-self?consistent", nil)
					req.Header.Set("X-Vault-Token", pool[rnd.Intn(len(pool))])
				default:
					kind = "create"
					req, _ = http.NewRequest(http.MethodPost, "http://"+c.Nodes[k].HTTPAddr+"/v1/auth/token/create",
						strings.NewReader(`{"ttl":"10m","no_parent":true}`))
					req.Header.Set("X-Vault-Token", c.RootToken)
				}
				resp, err := client.Do(req.WithContext(ctx))
				if ctx.Err() != nil {
					return // the storm ended: not an answer
				}
				status := 0
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				stats.add(kind, status, err)
				if err != nil {
					time.Sleep(10 * time.Millisecond) // a dead node: don't spin on refused connections
				}
			}
		}(i)
	}
	wg.Wait()
	stormEnd := time.Now()
	tr.CloseIdleConnections() // the clients go away
	var vs []Violation
	if err := c.WaitHealthy(30 * time.Second); err != nil {
		vs = append(vs, Violation{Checker: CheckHealthy, At: -1, Detail: "after the storm: " + err.Error()})
	}
	healthyAfter := time.Since(stormEnd)
	t.Logf("T10 healthy %s after the storm", healthyAfter.Round(time.Millisecond))
	// Goroutines back within 10% of the baseline, within 10 s of the end.
	recovered := time.Duration(-1)
	var last []int
	lastTotal := 0
	var lastErr error
	for time.Since(stormEnd) < 30*time.Second {
		total, per, err := c.totalGoroutines()
		lastErr = err
		if err == nil {
			last, lastTotal = per, total
			if float64(total) <= float64(baseline)*(1+t10GoroutineSlop) {
				recovered = time.Since(stormEnd)
				break
			}
		}
		time.Sleep(500 * time.Millisecond) // polling interval
	}
	if recovered < 0 || recovered > t10Recover {
		vs = append(vs, Violation{Checker: CheckStorm, At: -1, Detail: fmt.Sprintf(
			"goroutines not back within 10%% of the baseline %d (per node %v) within %s of the storm: %d (per node %v), recovered after %s (healthy after %s, last metrics error %v)",
			baseline, basePer, t10Recover, lastTotal, last, recovered, healthyAfter.Round(time.Millisecond), lastErr)})
		dumpStormGoroutines(c, dir)
	}
	for k := range c.Nodes {
		if m := maxHWM[k].Load(); m > t10RSSLimit {
			vs = append(vs, Violation{Checker: CheckStorm, At: -1, Detail: fmt.Sprintf(
				"n%d peak RSS (VmHWM) %d MiB > %d MiB", k+1, m>>20, t10RSSLimit>>20)})
		}
	}
	stats.mu.Lock()
	keys := make([]string, 0, len(stats.byStatus))
	rejected, e5xx := 0, 0
	for key, n := range stats.byStatus {
		keys = append(keys, key)
		code := key[strings.LastIndexByte(key, ':')+1:]
		switch {
		case code == "429" || code == "503":
			rejected += n
		case strings.HasPrefix(code, "5"):
			e5xx += n
			vs = append(vs, Violation{Checker: CheckServerErr, At: -1, Detail: fmt.Sprintf("%d answers %s", n, key)})
		}
	}
	sort.Strings(keys)
	total := stats.total
	var classes []string
	for _, key := range keys {
		classes = append(classes, fmt.Sprintf("%s=%d", key, stats.byStatus[key]))
	}
	stats.mu.Unlock()
	logs := map[string]string{}
	for _, p := range c.Nodes {
		logs[p.ID] = p.LogPath
	}
	terms, _ := LeaderTerms(logs)
	vs = append(vs, CheckLeaders(terms)...)
	vs = append(vs, CheckLogs(logs)...)
	for _, cr := range c.Crashes() {
		vs = append(vs, Violation{Checker: CheckCrash, At: -1, Detail: cr})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "T10 storm: %d clients for %s, %d leader kills, %d answers (%.0f/s), rejected (429/503) %.1f%%, other 5xx %d, %d violations\n",
		*flagT10Clients, *flagT10Duration, kills, total, float64(total)/flagT10Duration.Seconds(),
		100*float64(rejected)/float64(max(total, 1)), e5xx, len(vs))
	for k := range c.Nodes {
		fmt.Fprintf(&b, "  n%d peak RSS (VmHWM) %d MiB, max VmRSS sampled %d MiB\n", k+1, maxHWM[k].Load()>>20, maxRSS[k].Load()>>20)
	}
	fmt.Fprintf(&b, "  goroutines: baseline %d %v, back within 10%% after %s (last %d %v); cluster healthy %s after the storm\n", baseline, basePer,
		recovered.Round(time.Millisecond), lastTotal, last, healthyAfter.Round(time.Millisecond))
	fmt.Fprintf(&b, "  answers: %s\n", strings.Join(classes, " "))
	t.Log("\n" + b.String())
	fmt.Print(b.String())
	_ = saveJSON(filepath.Join(dir, "violations.json"), vs)
	reportViolations(t, vs)
}

// dumpStormGoroutines saves every node's goroutine dump (sys/pprof) next
// to the artifacts, for a failed recovery.
func dumpStormGoroutines(c *Cluster, dir string) {
	for k := range c.Nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		status, body, err := c.do(ctx, k, http.MethodGet, "/v1/sys/pprof/goroutine?debug=1", c.RootToken, "")
		cancel()
		if err == nil && status == http.StatusOK {
			_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("n%d-goroutines.txt", k+1)), body, 0o600)
		}
	}
}
