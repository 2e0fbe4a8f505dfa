package scale_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/test/inproc"
	"github.com/tokend/tokend/test/scale"
)

// What is measured, on one in-process node (real raft, bolt, snapshot
// store and HTTP on loopback; the load generator shares the machine):
//
//   - restart: the node is stopped, its state grown to the size (Seed), and
//     the time from starting it again on its data dir (inproc.Restart, which
//     opens raft and restores the snapshot) to the first 200 of a
//     lookup-self over HTTP;
//   - lookup-self/s: clients each send lookup-self for random seeded tokens
//     for the duration (keep-alive);
//   - creates/s: clients each POST auth/token/create with the root token.
//
// Sizes come from TOKEND_SCALE_SIZES (default 10000,100000,1000000; the
// growth target compares the first and the last), the duration of each
// load from TOKEND_SCALE_DURATION (default 3s), the client count from
// TOKEND_SCALE_CLIENTS (default 32). Run:
//
//	go test -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 30m ./test/scale/

// sizes parses TOKEND_SCALE_SIZES.
func sizes(tb testing.TB, def string) []int {
	s := os.Getenv("TOKEND_SCALE_SIZES")
	if s == "" {
		s = def
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || (len(out) > 0 && n <= out[len(out)-1]) {
			tb.Fatalf("TOKEND_SCALE_SIZES=%q: want increasing counts", s)
		}
		out = append(out, n)
	}
	return out
}

func envDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	if s := os.Getenv(name); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			tb.Fatalf("%s=%q: %v", name, s, err)
		}
		return d
	}
	return def
}

func envInt(tb testing.TB, name string, def int) int {
	if s := os.Getenv(name); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			tb.Fatalf("%s=%q", name, s)
		}
		return n
	}
	return def
}

// figures is what one size measured.
type figures struct {
	size          int
	restart       time.Duration
	restartCPU    time.Duration // process CPU time (all threads) during the restart
	snapshotBytes int64
	lookups       float64 // per second
	creates       float64 // per second
}

// run seeds the node to each size in turn and measures it.
func run(tb testing.TB, sizeList []int, d time.Duration, clients int) []figures {
	c := inproc.NewWith(tb, 1, inproc.Options{Timing: cluster.DefaultTiming()})
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, IdleConnTimeout: time.Minute,
	}}
	base := c.Addr(0) + "/v1/"
	var out []figures
	seeded := 0
	for _, size := range sizeList {
		// Tokens created by the create load count too.
		stored := c.Cluster(0).State().Len()
		add := max(0, size-stored)
		fg := figures{size: size}
		// The node snapshots its current state, stops, is grown offline,
		// and restarts on its data dir.
		if err := c.Cluster(0).Snapshot(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			tb.Fatalf("snapshot: %v", err)
		}
		c.Stop(0)
		res, err := scale.Seed(filepath.Join(c.Nodes[0].DataDir, "raft"), c.Hasher, seeded, add, time.Now())
		if err != nil {
			tb.Fatal(err)
		}
		seeded += add
		fg.snapshotBytes = res.SnapshotBytes
		probe := scale.TokenID(seeded - 1)
		// The seeder's copy of the state is garbage now: collect it so the
		// restart is not measured with it.
		runtime.GC()
		start, cpuStart := time.Now(), cpuTime()
		c.Restart(0)
		for deadline := start.Add(10 * time.Minute); ; {
			if status(hc, base+"auth/token/lookup-self", probe, "") == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("size %d: no successful lookup-self 10 min after restart", size)
			}
			time.Sleep(5 * time.Millisecond) // polling for the first successful read
		}
		fg.restart, fg.restartCPU = time.Since(start), cpuTime()-cpuStart
		// Steady state: the restore's garbage is collected before the load
		// (on a real node it is collected once after start; here it would
		// land in the first measurement and not in the others).
		runtime.GC()
		if got := c.Cluster(0).State().Len(); got < size {
			tb.Fatalf("node holds %d tokens after seeding to %d", got, size)
		}

		lookup := func(rng *rand.Rand) (string, string, string) {
			return base + "auth/token/lookup-self", scale.TokenID(rng.IntN(seeded)), ""
		}
		load(tb, hc, clients, d/4, lookup) // warm-up, not measured
		fg.lookups = load(tb, hc, clients, d, lookup)
		fg.creates = load(tb, hc, clients, d, func(*rand.Rand) (string, string, string) {
			return base + "auth/token/create", c.RootToken, `{"ttl":"768h","policies":["default"]}`
		})
		tb.Logf("%d tokens: restart to first read %v (CPU %v), lookup-self %.0f/s, creates %.0f/s, snapshot %d MB",
			size, fg.restart.Round(time.Millisecond), fg.restartCPU.Round(time.Millisecond), fg.lookups, fg.creates, fg.snapshotBytes>>20)
		out = append(out, fg)
	}
	return out
}

// cpuTime is the process's CPU time (user + system, all threads). On a
// shared machine wall time includes waiting for a core; CPU time is the
// work done.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// status sends one request and returns its status (0 on a transport error).
func status(hc *http.Client, url, token, body string) int {
	method := http.MethodGet
	var rd io.Reader
	if body != "" {
		method, rd = http.MethodPost, strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0
	}
	req.Header.Set("X-Vault-Token", token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// load runs clients loops of requests for d and returns successful
// requests per second; any non-200 fails the test.
func load(tb testing.TB, hc *http.Client, clients int, d time.Duration, next func(*rand.Rand) (url, token, body string)) float64 {
	var ok atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	start := time.Now()
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 11))
			for time.Now().Before(deadline) {
				url, token, body := next(rng)
				if s := status(hc, url, token, body); s != http.StatusOK {
					failed.Store(fmt.Sprintf("%s: status %d", url, s))
					return
				}
				ok.Add(1)
			}
		}(uint64(i))
	}
	wg.Wait()
	if msg := failed.Load(); msg != nil {
		tb.Fatal(msg)
	}
	return float64(ok.Load()) / time.Since(start).Seconds()
}

func short(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// BenchmarkScale reports, for each size, the restart-to-first-read time
// (target at 1M: ≤ 10 s), lookup-self/s and creates/s, and the read ratio
// largest/smallest size (target: ≥ 0.8, i.e. reads degrade ≤ 20%).
func BenchmarkScale(b *testing.B) {
	if b.N > 1 {
		b.Skip("one run is the measurement; use -benchtime 1x")
	}
	figs := run(b, sizes(b, "10000,100000,1000000"), envDuration(b, "TOKEND_SCALE_DURATION", 3*time.Second), envInt(b, "TOKEND_SCALE_CLIENTS", 32))
	var table strings.Builder
	fmt.Fprintf(&table, "\n%10s %12s %12s %14s %12s %12s\n", "tokens", "restart", "restart-cpu", "lookup-self/s", "creates/s", "snapshot")
	for _, fg := range figs {
		fmt.Fprintf(&table, "%10d %12v %12v %14.0f %12.0f %10dMB\n", fg.size, fg.restart.Round(time.Millisecond), fg.restartCPU.Round(time.Millisecond), fg.lookups, fg.creates, fg.snapshotBytes>>20)
		b.ReportMetric(fg.restart.Seconds(), "restart-s@"+short(fg.size))
		b.ReportMetric(fg.restartCPU.Seconds(), "restart-cpu-s@"+short(fg.size))
		b.ReportMetric(fg.lookups, "lookups/s@"+short(fg.size))
		b.ReportMetric(fg.creates, "creates/s@"+short(fg.size))
	}
	first, last := figs[0], figs[len(figs)-1]
	ratio := last.lookups / first.lookups
	fmt.Fprintf(&table, "lookup-self/s %s/%s = %.2f (target ≥ 0.80); creates/s %s/%s = %.2f\n",
		short(last.size), short(first.size), ratio, short(last.size), short(first.size), last.creates/first.creates)
	b.ReportMetric(ratio, "read-ratio")
	b.Log(table.String())
}

// TestScaleSmall runs the BenchmarkScale measurement at small sizes so the
// seeding, restart and load paths keep working; it checks that every
// figure was measured, never a timing.
func TestScaleSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node and restarts it twice: not in testing.Short mode")
	}
	figs := run(t, []int{300, 1200}, 300*time.Millisecond, 4)
	for _, fg := range figs {
		if fg.restart <= 0 || fg.lookups <= 0 || fg.creates <= 0 || fg.snapshotBytes <= 0 {
			t.Fatalf("size %d: incomplete figures %+v", fg.size, fg)
		}
	}
}
