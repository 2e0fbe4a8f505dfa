package cluster

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/tokend/tokend/fsm"
)

func newTestCA(t testing.TB) *CA {
	t.Helper()
	ca, err := NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issueTLS(t testing.TB, ca *CA, id string) *ClusterTLS {
	t.Helper()
	nc, err := ca.IssueNode(id, nil, []net.IP{net.IPv4(127, 0, 0, 1)}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := nc.TLS(ca)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// watcher is a loopback listener standing for the "other target" a
// request or gossip poisoning tries to aim at. It counts every connection
// and, separately, the ones that carry a request: an HTTP request line, or
// a TLS ClientHello offering the forwarding protocol (ALPN travels in
// clear). A leader probing a poisoned raft address before it would add a
// voter there (and refusing, since nobody there holds the node's
// certificate) offers tokend-probe and is not a request.
type watcher struct {
	ln       net.Listener
	count    atomic.Int64
	requests atomic.Int64
}

func newWatcher(t *testing.T) *watcher {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			w.count.Add(1)
			go func() {
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
				b := make([]byte, 4096)
				n, _ := io.ReadAtLeast(c, b, 1)
				first := string(b[:n])
				if strings.Contains(first, " HTTP/1.") || strings.Contains(first, ALPNForward) {
					w.requests.Add(1)
				}
			}()
		}
	}()
	return w
}

func (w *watcher) addr() string { return w.ln.Addr().String() }

// postWrite sends a write to a slot's HTTP listener and returns the status
// and the slot that served it (X-Served-By).
func postWrite(t *testing.T, tn *tnode, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+tn.httpAddr+"/write", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("write via %s: %v", tn.id, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Served-By")
}

// writeViaFollowers posts a write through every follower of the current
// leader and checks the leader served it. A 503 is what a client sees
// while leadership moves (the loaded test machine moves it now and then):
// the round is retried against the new leader, a few times at most.
func writeViaFollowers(t *testing.T, c *tcluster) *tnode {
	t.Helper()
	for attempt := 0; ; attempt++ {
		leader := c.waitLeader()
		moved := false
		for _, f := range c.followers(leader) {
			code, by := postWrite(t, f, nil)
			if code == http.StatusServiceUnavailable && attempt < 5 {
				moved = true
				break
			}
			if code != http.StatusCreated || by != leader.id {
				t.Fatalf("write via %s: status %d served by %q, want 201 by %s", f.id, code, by, leader.id)
			}
		}
		if !moved {
			return leader
		}
	}
}

func TestClusterTLS_forwardsAndSurvivesLeaderCrash(t *testing.T) {
	c := newClusterWith(t, 3, nil, newTestCA(t))
	leader := writeViaFollowers(t, c)
	c.crash(leader)
	if next := writeViaFollowers(t, c); next == leader {
		t.Fatal("crashed leader still leads")
	}
	c.proposeAny(newTokenCmd(t))
}

// TestClusterTLS_clientListenerRefusesNodeTraffic: with cluster TLS, a
// request on the client listener that claims to be forwarded (hop marker,
// signed client address) or aims at a node-to-node endpoint is refused
// before the handler sees it.
func TestClusterTLS_clientListenerRefusesNodeTraffic(t *testing.T) {
	c := newClusterWith(t, 3, nil, newTestCA(t))
	leader := c.waitLeader()
	for _, hdr := range []map[string]string{
		{HopHeader: "node1"},
		{clientAddrHeader: "10.0.0.1 0 mac"},
	} {
		if code, by := postWrite(t, leader, hdr); code != http.StatusForbidden || by != "" {
			t.Errorf("headers %v on the leader's client listener: status %d served by %q, want 403", hdr, code, by)
		}
	}
	resp, err := http.Post("http://"+leader.httpAddr+LeasePath, "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("lease endpoint on the client listener: %d, want 403", resp.StatusCode)
	}
}

// TestClusterTLS_portRefusesUnauthenticated is S8(c) and the internal-port
// half of S2: on the cluster port (raft, forwarding, lease grants) a
// plaintext client, a client without a certificate, one with a certificate
// from another CA, one with a certificate of the right CA for a node that
// is not a member, and one that negotiates no cluster protocol all fail
// the handshake and reach neither raft nor HTTP. A member's certificate
// (the control) gets through.
func TestClusterTLS_portRefusesUnauthenticated(t *testing.T) {
	ca := newTestCA(t)
	c := newClusterWith(t, 3, nil, ca)
	leader := c.waitLeader()
	addr := leader.node.Load().RaftAddr()
	follower := c.followers(leader)[0]

	t.Run("plaintext", func(t *testing.T) {
		for _, payload := range []string{
			"POST /v1/auth/token/create HTTP/1.1\r\nHost: x\r\nX-Tokend-Forwarded: " + follower.id + "\r\nContent-Length: 2\r\n\r\n{}",
			// raft's wire format starts with the RPC type byte
			// (0 = AppendEntries) followed by msgpack.
			"\x00\x85\xa4Term\x01",
		} {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Write([]byte(payload)); err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(conn)
			conn.Close()
			// Whatever comes back is at most a TLS alert record (type 21),
			// never an HTTP or raft answer.
			if len(b) > 0 && b[0] != 0x15 {
				t.Errorf("plaintext %q: answered %q, want the connection closed or a TLS alert", payload[:8], b)
			}
			if strings.Contains(string(b), "HTTP/") {
				t.Errorf("plaintext request got an HTTP answer: %q", b)
			}
		}
	})

	dial := func(cfg *tls.Config) error {
		cfg.InsecureSkipVerify = true //nolint:gosec // the server side is under test
		cfg.MinVersion = tls.VersionTLS13
		d := &net.Dialer{Timeout: 2 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		// In TLS 1.3 the server checks the client certificate after the
		// client's handshake finished: a rejection shows on the first read.
		_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := conn.Write([]byte("GET " + InternalPathPrefix + "lease HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
			return err
		}
		_, err = bufio.NewReader(conn).ReadString('\n')
		return err
	}
	certOf := func(tl *ClusterTLS) []tls.Certificate {
		cert, _ := tl.current()
		return []tls.Certificate{*cert}
	}
	other := newTestCA(t)
	cases := []struct {
		name string
		cfg  *tls.Config
		ok   bool
	}{
		{"no certificate", &tls.Config{NextProtos: []string{ALPNForward}}, false},
		{"certificate from another CA", &tls.Config{NextProtos: []string{ALPNForward}, Certificates: certOf(issueTLS(t, other, follower.id))}, false},
		{"cluster CA, not a member", &tls.Config{NextProtos: []string{ALPNForward}, Certificates: certOf(issueTLS(t, ca, "intruder"))}, false},
		{"member, no ALPN", &tls.Config{Certificates: certOf(issueTLS(t, ca, follower.id))}, false},
		{"member, unknown ALPN", &tls.Config{NextProtos: []string{"h2"}, Certificates: certOf(issueTLS(t, ca, follower.id))}, false},
		{"member (control)", &tls.Config{NextProtos: []string{ALPNForward}, Certificates: certOf(issueTLS(t, ca, follower.id))}, true},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := dial(tt.cfg)
			if tt.ok && err != nil {
				t.Fatalf("member certificate refused: %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("handshake succeeded and the request was answered")
			}
		})
	}
	// The cluster is unharmed.
	c.proposeAny(newTokenCmd(t))
}

// TestClusterTLS_hopMarkerMustNameThePeer: over the cluster port a node can
// only forward in its own name.
func TestClusterTLS_hopMarkerMustNameThePeer(t *testing.T) {
	ca := newTestCA(t)
	c := newClusterWith(t, 3, nil, ca)
	// send posts over the cluster port from follower from to the leader,
	// with hop marker hop. A 503 means leadership moved on the loaded
	// machine: the caller then retries against the new leader.
	send := func(leader, from *tnode, hop string) int {
		req, _ := http.NewRequest(http.MethodPost, "https://"+leader.node.Load().RaftAddr()+"/write", strings.NewReader("x"))
		req.Header.Set(HopHeader, hop)
		resp, err := from.node.Load().peerClient(leader.id).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for attempt := 0; ; attempt++ {
		leader := c.waitLeader()
		f := c.followers(leader)
		if got := send(leader, f[0], f[1].id); got != http.StatusForbidden {
			t.Fatalf("hop marker naming another node: %d, want 403", got)
		}
		if got := send(leader, f[0], ""); got != http.StatusForbidden {
			t.Fatalf("no hop marker: %d, want 403", got)
		}
		got := send(leader, f[0], f[0].id)
		if got == http.StatusCreated {
			return
		}
		if got != http.StatusServiceUnavailable || attempt == 5 {
			t.Fatalf("hop marker naming the sender (control): %d, want 201", got)
		}
	}
}

// TestClusterTLS_nodeWithoutClusterCertCannotJoin: a node that holds the
// gossip key but has a certificate from another CA, or none, is seen in
// gossip but never becomes a raft voter and never receives raft state.
func TestClusterTLS_nodeWithoutClusterCertCannotJoin(t *testing.T) {
	key := []byte("0123456789abcdef")
	c := newClusterWith(t, 3, key, newTestCA(t))
	c.waitLeader()
	members := c.nodes
	c.tlsFor["node3"] = issueTLS(t, newTestCA(t), "node3")
	c.tlsFor["node4"] = nil
	rogue := []*tnode{c.add(), c.add()}
	waitFor(t, 10*time.Second, "every member to see both in gossip", func() bool {
		for _, tn := range members {
			live := tn.node.Load().liveMembers()
			_, a := live["node3"]
			_, b := live["node4"]
			if !a || !b {
				return false
			}
		}
		return true
	})
	// Many reconcile passes (100 ms each) and probe retries (1 s).
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if v := c.voters(); v > 3 {
			t.Fatalf("raft voters = %d, want 3: a node without a cluster certificate joined", v)
		}
		for _, tn := range rogue {
			if li := tn.node.Load().raft.LastIndex(); li != 0 {
				t.Fatalf("%s received raft entries (last index %d)", tn.id, li)
			}
		}
		time.Sleep(100 * time.Millisecond) // sampling interval
	}
	// The cluster keeps working with its three voters.
	for _, tn := range rogue {
		c.stop(tn)
	}
	c.proposeAny(newTokenCmd(t))
}

// TestClusterTLS_gossipCannotRedirectForwarding is the gossip half of S10:
// followers hold poisoned gossip metadata for the leader (HTTP and raft
// address pointing at a watched listener); with cluster TLS forwarding
// still reaches the leader and nothing reaches the watched listener.
// Without cluster TLS the same poisoned HTTP address does redirect
// forwarding (the control that shows the test can see it).
func TestClusterTLS_gossipCannotRedirectForwarding(t *testing.T) {
	poison := func(c *tcluster, leader *tnode, httpAddr, raftAddr string) {
		for _, f := range c.followers(leader) {
			n := f.node.Load()
			meta := nodeMeta{ID: leader.id, RaftAddr: raftAddr, HTTPAddr: httpAddr, Version: "test", Bootstrapped: true}
			b, _ := json.Marshal(meta)
			// The code path of metadata arriving by gossip.
			n.handleEvent(memberEvent{kind: "update", seq: n.eventSeq.Add(1), stamp: time.Now(),
				node: memberlist.Node{Name: leader.id, Addr: net.IPv4(127, 0, 0, 1), Port: 1, Meta: b, State: memberlist.StateAlive}})
		}
	}
	t.Run("tls", func(t *testing.T) {
		w := newWatcher(t)
		c := newClusterWith(t, 3, nil, newTestCA(t))
		leader := c.waitLeader()
		for _, target := range [][2]string{
			{w.addr(), leader.node.Load().RaftAddr()}, // HTTP address only
			{w.addr(), w.addr()},                      // both
		} {
			poison(c, leader, target[0], target[1])
			for _, f := range c.followers(leader) {
				if code, by := postWrite(t, f, nil); code != http.StatusCreated || by != leader.id {
					t.Errorf("poisoned %v, write via %s: status %d served by %q, want 201 by %s", target, f.id, code, by, leader.id)
				}
			}
		}
		if n := w.requests.Load(); n != 0 {
			t.Fatalf("%d requests reached the poisoned address", n)
		}
		t.Logf("connections to the poisoned address: %d (leader probes before a voter change, refused)", w.count.Load())
	})
	t.Run("plaintext control", func(t *testing.T) {
		w := newWatcher(t)
		c := newCluster(t, 3)
		leader := c.waitLeader()
		poison(c, leader, w.addr(), leader.node.Load().RaftAddr())
		f := c.followers(leader)[0]
		postWrite(t, f, nil)
		waitFor(t, 3*time.Second, "the watcher to read the redirected request", func() bool { return w.requests.Load() > 0 })
		if w.requests.Load() == 0 {
			t.Fatal("without cluster TLS the poisoned HTTP address was not used: the check cannot see a redirect")
		}
	})
}

// TestClusterForwardTargetIgnoresRequest is the request half of S10, with
// and without cluster TLS: Host, X-Forwarded-Host and an absolute-URI
// request line aimed at another listener do not change where a follower
// forwards.
func TestClusterForwardTargetIgnoresRequest(t *testing.T) {
	for _, withTLS := range []bool{true, false} {
		t.Run(fmt.Sprintf("tls=%v", withTLS), func(t *testing.T) {
			w := newWatcher(t)
			var ca *CA
			if withTLS {
				ca = newTestCA(t)
			}
			c := newClusterWith(t, 3, nil, ca)
			leader := c.waitLeader()
			f := c.followers(leader)[0]
			requests := []string{
				"POST /write HTTP/1.1\r\nHost: " + w.addr() + "\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
				"POST /write HTTP/1.1\r\nHost: " + f.httpAddr + "\r\nX-Forwarded-Host: " + w.addr() + "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-For: 127.0.0.9\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
				"POST http://" + w.addr() + "/write HTTP/1.1\r\nHost: " + w.addr() + "\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx",
			}
			for _, raw := range requests {
				conn, err := net.DialTimeout("tcp", f.httpAddr, time.Second)
				if err != nil {
					t.Fatal(err)
				}
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := conn.Write([]byte(raw)); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				conn.Close()
				if resp.StatusCode != http.StatusCreated || resp.Header.Get("X-Served-By") != leader.id {
					t.Errorf("request %q: status %d served by %q, want 201 by the leader %s",
						strings.SplitN(raw, "\r\n", 2)[0], resp.StatusCode, resp.Header.Get("X-Served-By"), leader.id)
				}
			}
			if n := w.count.Load(); n != 0 {
				t.Fatalf("%d connections reached the address named in the request", n)
			}
		})
	}
}

func newTokenCmd(t testing.TB) fsm.Command {
	cmd, _ := newToken(t, time.Hour)
	return cmd
}
