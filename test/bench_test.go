package test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"runtime"
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
	body := bytes.Repeat([]byte("x"), lookupSelfBodySize(b))
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
	runGets(b, "http://"+ln.Addr().String()+"/v1/auth/token/lookup-self", "")
}

// lookupSelfBodySize measures a real lookup-self body on a one-node cluster.
func lookupSelfBodySize(b *testing.B) int {
	c := inproc.NewWith(b, 1, inproc.Options{Timing: cluster.DefaultTiming()})
	secret, err := c.Client(0).Auth().Token().Create(&vaultapi.TokenCreateRequest{TTL: "24h"})
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, c.Addr(0)+"/v1/auth/token/lookup-self", nil)
	req.Header.Set("X-Vault-Token", secret.Auth.ClientToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	c.StopAll()
	return len(data)
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
