package test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/test/inproc"
)

// The benchmarks in this file drive real HTTP over loopback with 64
// concurrent keep-alive clients (b.SetParallelism(32) on 2 cores). Compare
// BenchmarkFollowerLookupSelf with BenchmarkBareHandler from the same run:
// the bare handler returns a body of the same size as lookup-self's, so the
// ratio is tokend's read-path overhead.

const benchConcurrency = 64

func benchHTTPClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        benchConcurrency * 2,
			MaxIdleConnsPerHost: benchConcurrency * 2,
			IdleConnTimeout:     time.Minute,
		},
	}
}

func parallelism() int {
	p := benchConcurrency / max(1, runtimeProcs())
	return max(1, p)
}

// runParallel sends requests from 64 concurrent keep-alive clients until
// the benchmark ends; newRequest builds client number i's next request.
func runParallel(b *testing.B, newRequest func(client int) *http.Request) {
	httpClient := benchHTTPClient()
	b.SetParallelism(parallelism())
	next := make(chan int, 1)
	next <- 0
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := <-next
		next <- i + 1
		for pb.Next() {
			resp, err := httpClient.Do(newRequest(i))
			if err != nil {
				b.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d: %s", resp.StatusCode, body)
				return
			}
		}
	})
}

func runGets(b *testing.B, url, token string) {
	runParallel(b, func(int) *http.Request {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if token != "" {
			req.Header.Set("X-Vault-Token", token)
		}
		return req
	})
}

func BenchmarkFollowerLookupSelf(b *testing.B) {
	c := inproc.NewWith(b, 3, inproc.Options{Timing: cluster.DefaultTiming()})
	secret, err := c.Client(0).Auth().Token().Create(&vaultapi.TokenCreateRequest{TTL: "24h"})
	if err != nil {
		b.Fatal(err)
	}
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	f := c.Followers()[0]
	runGets(b, c.Addr(f)+"/v1/auth/token/lookup-self", secret.Auth.ClientToken)
}

func BenchmarkBareHandler(b *testing.B) {
	// Body size of a lookup-self response for a typical token.
	runGets(b, startBareHandler(b, lookupSelfBodySize(b))+"/v1/auth/token/lookup-self", "")
}

// startBareHandler serves ceiling (a): a bare net/http handler answering
// every request with a body of size bytes. It returns the base URL.
func startBareHandler(b *testing.B, size int) string {
	body := bytes.Repeat([]byte("x"), size)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})}
	go srv.Serve(ln) //nolint:errcheck // ErrServerClosed at the end
	b.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String()
}

// BenchmarkFollowerLookupSelfRatio measures lookup-self on a follower and
// ceiling (a) in the same run, alternating: ratioRounds pairs of rounds of
// ratioRound each (the order flips every pair), 64 keep-alive clients, the
// ceiling's body the size of the follower's own lookup-self answer. It
// reports both rates (median over the rounds) and the median of the
// per-pair ratios: on a shared machine whose load drifts by the second,
// short alternating rounds compare the two under the same load, which two
// benchmarks run one after the other do not. It also reports cpu-ratio,
// the median per pair of the ceiling's process CPU time per request over
// the follower's (client, every node and the bare server share the
// process): when other processes crowd the machine, throughput measures
// their load too, CPU per request much less. It does its own timing: run
// it with -benchtime=1x.
func BenchmarkFollowerLookupSelfRatio(b *testing.B) {
	const (
		ratioRounds = 40
		ratioRound  = 250 * time.Millisecond
	)
	// Long raft timers and -max-stale: on a saturated shared machine
	// followers miss 500 ms heartbeats and hold elections, and every new
	// term leaves the follower without a read lease (503) until its first
	// grant. The read path checks its lease the same way whatever these
	// timers are.
	timing := cluster.DefaultTiming()
	timing.HeartbeatTimeout, timing.ElectionTimeout, timing.LeaderLeaseTimeout = 5*time.Second, 5*time.Second, 2*time.Second
	c := inproc.NewWith(b, 3, inproc.Options{Timing: timing, MaxStale: 20 * time.Second})
	secret, err := c.Client(0).Auth().Token().Create(&vaultapi.TokenCreateRequest{TTL: "24h"})
	if err != nil {
		b.Fatal(err)
	}
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	follower := c.Addr(c.Followers()[0]) + "/v1/auth/token/lookup-self"
	token := secret.Auth.ClientToken
	size := bodySize(b, follower, token)
	bare := startBareHandler(b, size) + "/v1/auth/token/lookup-self"
	client := benchHTTPClient()
	// Warm both up (connections, caches) before the first measured round.
	_, _, _ = driveFor(b, client, follower, token, ratioRound)
	_, _, _ = driveFor(b, client, bare, "", ratioRound)
	var tokend, ceiling, ratios, cpuRatios []float64
	redone := 0
	b.ResetTimer()
	// Each measure returns the rate and the process CPU seconds per request.
	measureTokend := func() (float64, float64) {
		// On a saturated machine the follower may lose its read lease for a
		// moment and answer 503: such a round is not a measurement of the
		// read path; it is redone (a bounded number of times) and counted.
		cpu0 := processCPU()
		t, ops, bad := driveFor(b, client, follower, token, ratioRound)
		for ; bad != ""; t, ops, bad = driveFor(b, client, follower, token, ratioRound) {
			if redone++; redone > ratioRounds {
				b.Fatalf("the follower keeps failing: %s", bad)
			}
			b.Logf("round redone: %s", bad)
			cpu0 = processCPU()
		}
		return t, (processCPU() - cpu0) / float64(max(ops, 1))
	}
	measureCeiling := func() (float64, float64) {
		cpu0 := processCPU()
		a, ops, bad := driveFor(b, client, bare, "", ratioRound)
		if bad != "" {
			b.Fatalf("ceiling: %s", bad)
		}
		return a, (processCPU() - cpu0) / float64(max(ops, 1))
	}
	for i := range ratioRounds {
		var t, a, tc, ac float64
		if i%2 == 0 {
			t, tc = measureTokend()
			a, ac = measureCeiling()
		} else {
			a, ac = measureCeiling()
			t, tc = measureTokend()
		}
		tokend, ceiling, ratios = append(tokend, t), append(ceiling, a), append(ratios, t/a)
		cpuRatios = append(cpuRatios, ac/tc)
	}
	b.StopTimer()
	b.ReportMetric(median(tokend), "lookups/s")
	b.ReportMetric(median(ceiling), "ceiling/s")
	b.ReportMetric(median(ratios), "ratio")
	b.ReportMetric(median(cpuRatios), "cpu-ratio")
	b.ReportMetric(float64(size), "body-bytes")
	b.ReportMetric(float64(redone), "redone-rounds")
}

// driveFor sends GETs of url from benchConcurrency keep-alive clients for
// d and returns the rate of 200 answers per second, their number and, when
// some request failed, the first failure (a client stops at its first one).
func driveFor(b *testing.B, client *http.Client, url, token string, d time.Duration) (float64, int64, string) {
	var ok atomic.Int64
	var bad atomic.Pointer[string]
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for range benchConcurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				req, _ := http.NewRequest(http.MethodGet, url, nil)
				if token != "" {
					req.Header.Set("X-Vault-Token", token)
				}
				resp, err := client.Do(req)
				if err != nil {
					msg := err.Error()
					bad.CompareAndSwap(nil, &msg)
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					msg := fmt.Sprintf("status %d: %.200s", resp.StatusCode, body)
					bad.CompareAndSwap(nil, &msg)
					return
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	n := ok.Load()
	rate := float64(n) / time.Since(start).Seconds()
	if p := bad.Load(); p != nil {
		return rate, n, *p
	}
	return rate, n, ""
}

// processCPU is the user and system CPU time this process used, in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// bodySize is the length of the body of a GET of url with token. It waits
// (bounded) for a 200: a follower that just started answers 503 until it
// holds its first read lease.
func bodySize(b *testing.B, url, token string) int {
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("X-Vault-Token", token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return len(data)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || time.Now().After(deadline) {
			b.Fatalf("%s: status %d: %s", url, resp.StatusCode, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lookupSelfBodySize measures a real lookup-self body on a one-node cluster.
func lookupSelfBodySize(b *testing.B) int {
	c := inproc.NewWith(b, 1, inproc.Options{Timing: cluster.DefaultTiming()})
	secret, err := c.Client(0).Auth().Token().Create(&vaultapi.TokenCreateRequest{TTL: "24h"})
	if err != nil {
		b.Fatal(err)
	}
	size := bodySize(b, c.Addr(0)+"/v1/auth/token/lookup-self", secret.Auth.ClientToken)
	c.StopAll()
	return size
}

func BenchmarkClusterCreate(b *testing.B) {
	c := inproc.NewWith(b, 3, inproc.Options{Timing: cluster.DefaultTiming()})
	runParallel(b, func(client int) *http.Request {
		// Spread clients over all nodes, as a load balancer would.
		url := c.Addr(client%len(c.Nodes)) + "/v1/auth/token/create"
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(`{"ttl":"1h"}`)))
		req.Header.Set("X-Vault-Token", c.RootToken)
		return req
	})
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
