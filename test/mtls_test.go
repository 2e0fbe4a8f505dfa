package test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/test/inproc"
)

// TestMTLSClusterWritesViaFollowersAndSurvivesLeaderStop: a 3-node cluster
// with cluster TLS elects, forwards writes from followers over the cluster
// port, serves reads everywhere, and recovers when the leader stops.
func TestMTLSClusterWritesViaFollowersAndSurvivesLeaderStop(t *testing.T) {
	c := inproc.NewWith(t, 3, inproc.Options{ClusterTLS: true})
	var tokens []string
	for _, f := range c.Followers() {
		for k := 0; k < 5; k++ {
			tokens = append(tokens, createToken(t, c.Client(f), &vaultapi.TokenCreateRequest{TTL: "1h"}).Auth.ClientToken)
		}
	}
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	for i := range c.Nodes {
		for _, tok := range tokens {
			if got := lookupStatus(t, c.Client(i), tok); got != http.StatusOK {
				t.Fatalf("node %d: lookup of a token created via a follower = %d", i, got)
			}
		}
	}
	old := c.LeaderIndex()
	c.Stop(old)
	c.WaitForLeader()
	for i := range c.Nodes {
		if c.Running(i) {
			tokens = append(tokens, createToken(t, c.Client(i), &vaultapi.TokenCreateRequest{TTL: "1h"}).Auth.ClientToken)
		}
	}
	c.WaitForIndex(c.Cluster(c.LeaderIndex()).AppliedIndex())
	for i := range c.Nodes {
		if !c.Running(i) {
			continue
		}
		for _, tok := range tokens {
			if got := lookupStatus(t, c.Client(i), tok); got != http.StatusOK {
				t.Errorf("node %d after leader stop: lookup = %d", i, got)
			}
		}
	}
}

// wireTap records every byte, both directions, of the connections nodes
// open to each other (raft, forwarding, lease grants), as they cross the
// wire: below TLS when cluster TLS is on.
type wireTap struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *wireTap) wrap(_ string, c net.Conn) net.Conn { return &tapConn{Conn: c, tap: w} }

func (w *wireTap) record(p []byte) {
	w.mu.Lock()
	w.buf.Write(p)
	w.mu.Unlock()
}

func (w *wireTap) bytes() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return bytes.Clone(w.buf.Bytes())
}

type tapConn struct {
	net.Conn
	tap *wireTap
}

func (c *tapConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.tap.record(p[:n])
	return n, err
}

func (c *tapConn) Write(p []byte) (int, error) {
	c.tap.record(p)
	return c.Conn.Write(p)
}

// wireSecretForms returns the forms of a token S8 searches for: the token and
// its body after the "hvs." prefix, raw, base64 (std and URL) and hex.
func wireSecretForms(tok string) []string {
	var out []string
	parts := []string{tok}
	if i := strings.IndexByte(tok, '.'); i >= 0 {
		parts = append(parts, tok[i+1:])
	}
	for _, p := range parts {
		out = append(out, p,
			base64.StdEncoding.EncodeToString([]byte(p)), base64.RawStdEncoding.EncodeToString([]byte(p)),
			base64.URLEncoding.EncodeToString([]byte(p)), base64.RawURLEncoding.EncodeToString([]byte(p)),
			hex.EncodeToString([]byte(p)), strings.ToUpper(hex.EncodeToString([]byte(p))))
	}
	return out
}

// wireHits creates tokens through every follower (so each create is
// forwarded to the leader and the answer with the token comes back over
// a node-to-node link) and counts the token forms found in the captured
// inter-node bytes.
func wireHits(t *testing.T, clusterTLS bool) (hits, tokens, captured int) {
	tap := &wireTap{}
	c := inproc.NewWith(t, 3, inproc.Options{ClusterTLS: clusterTLS, WrapPeerConn: tap.wrap})
	var issued []string
	for _, f := range c.Followers() {
		for k := 0; k < 10; k++ {
			issued = append(issued, createRetry(t, c, f))
		}
	}
	c.StopAll()
	wire := tap.bytes()
	for _, tok := range issued {
		for _, form := range wireSecretForms(tok) {
			if bytes.Contains(wire, []byte(form)) {
				hits++
			}
		}
	}
	return hits, len(issued), len(wire)
}

// TestMTLSNoPlaintextTokenOnTheWire is S8(b): with cluster TLS no form of
// any issued token appears in the bytes between nodes; without it (the
// control) the same search finds them in the forwarded answers.
func TestMTLSNoPlaintextTokenOnTheWire(t *testing.T) {
	hits, n, captured := wireHits(t, true)
	t.Logf("cluster TLS: %d tokens, %d bytes captured between nodes, %d hits", n, captured, hits)
	if captured < 10_000 {
		t.Fatalf("only %d bytes captured between nodes: the tap is not on the links", captured)
	}
	if hits != 0 {
		t.Fatalf("%d token forms found in inter-node bytes with cluster TLS", hits)
	}
	hits, n, captured = wireHits(t, false)
	t.Logf("plaintext control: %d tokens, %d bytes captured, %d hits", n, captured, hits)
	if hits == 0 {
		t.Fatalf("control: no hits for %d forwarded tokens without TLS: the search cannot see plaintext", n)
	}
}

// benchCreates is BenchmarkClusterCreate with or without cluster TLS. A
// 503 (a leader change on the loaded machine) is retried, as a client
// would, and counted as the retries/op metric; any other failure fails.
func benchCreates(b *testing.B, clusterTLS bool) {
	c := inproc.NewWith(b, 3, inproc.Options{Timing: cluster.DefaultTiming(), ClusterTLS: clusterTLS})
	httpClient := benchHTTPClient()
	var retries atomic.Int64
	create := func(i int) bool {
		for attempt := 0; ; attempt++ {
			url := c.Addr((i+attempt)%len(c.Nodes)) + "/v1/auth/token/create"
			req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(`{"ttl":"1h"}`)))
			req.Header.Set("X-Vault-Token", c.RootToken)
			resp, err := httpClient.Do(req)
			if err != nil {
				b.Error(err)
				return false
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
			if resp.StatusCode != http.StatusServiceUnavailable || attempt >= 20 {
				b.Errorf("status %d: %s", resp.StatusCode, body)
				return false
			}
			retries.Add(1)
			time.Sleep(20 * time.Millisecond) // client back-off before a retry
		}
	}
	// Warm up: open every client's keep-alive connection and every
	// forwarding connection (with cluster TLS: their handshakes) before
	// the timer starts, so both modes are measured in steady state.
	var wg sync.WaitGroup
	for i := 0; i < benchConcurrency; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for k := 0; k < len(c.Nodes); k++ {
				create(i + k)
			}
		}(i)
	}
	wg.Wait()
	retries.Store(0)
	b.SetParallelism(parallelism())
	var next atomic.Int64
	// CPU time of the whole process (three nodes and the clients) per
	// create: far less sensitive than wall time to other load on the
	// machine, so it is the better figure for the cost of TLS.
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(1))
		for pb.Next() {
			if !create(i) {
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric((processCPU()-cpu0)*1e6/float64(b.N), "cpu-µs/op")
	b.ReportMetric(float64(retries.Load())/float64(b.N), "retries/op")
}

// BenchmarkClusterCreateTLS measures creates spread over all nodes with
// and without cluster TLS; compare the two from the same run.
func BenchmarkClusterCreateTLS(b *testing.B) {
	b.Run("plaintext", func(b *testing.B) { benchCreates(b, false) })
	b.Run("mtls", func(b *testing.B) { benchCreates(b, true) })
}

// createRetry creates a token through node i, retrying a 503 (a leader
// change on the loaded test machine) a few times as a client would.
func createRetry(t *testing.T, c *inproc.Cluster, i int) string {
	t.Helper()
	var err error
	for attempt := 0; attempt < 10; attempt++ {
		var s *vaultapi.Secret
		s, err = c.Client(i).Auth().Token().Create(&vaultapi.TokenCreateRequest{TTL: "1h"})
		if err == nil && s != nil && s.Auth != nil {
			return s.Auth.ClientToken
		}
		c.WaitForLeader()
	}
	t.Fatalf("create via node %d: %v", i, err)
	return ""
}
