package cluster

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokend/tokend/cluster/status"
)

// linkFaults black-holes every node-to-node connection of an isolated
// node (raft, forwarding, lease grants; gossip is not wrapped): bytes
// written are dropped and bytes arriving are discarded, so the peers see
// silence rather than a closed connection, as with a cut network.
type linkFaults struct {
	mu    sync.Mutex
	id    string          // isolated node ("" none)
	addrs map[string]bool // its raft and HTTP addresses
}

func (lf *linkFaults) isolate(tn *tnode) {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	lf.id = tn.id
	lf.addrs = map[string]bool{tn.raftAddr: true, tn.httpAddr: true}
}

func (lf *linkFaults) heal() {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	lf.id, lf.addrs = "", nil
}

func (lf *linkFaults) cut(from, to string) bool {
	lf.mu.Lock()
	defer lf.mu.Unlock()
	return lf.id != "" && (from == lf.id || lf.addrs[to])
}

func (lf *linkFaults) wrap(from string, c net.Conn) net.Conn {
	return &faultConn{Conn: c, lf: lf, from: from, to: c.RemoteAddr().String()}
}

type faultConn struct {
	net.Conn
	lf       *linkFaults
	from, to string
}

func (c *faultConn) Write(p []byte) (int, error) {
	if c.lf.cut(c.from, c.to) {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *faultConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if err != nil || !c.lf.cut(c.from, c.to) {
			return n, err
		}
	}
}

// TestForwardCutOffWhenLeaderChanges: writes a follower forwarded to the
// leader are in the leader's hands when the leader is isolated. When the
// follower's raft sees another leader (or none), the forwards are cut off
// at once rather than after ForwardTimeout: a retry-safe one is answered
// by the new leader, any other gets ErrLeaderChanged (503).
func TestForwardCutOffWhenLeaderChanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"tls", true}, {"plain", false}} {
		t.Run(tc.name, func(t *testing.T) {
			lf := &linkFaults{}
			var ca *CA
			if tc.tls {
				ca = newTestCA(t)
			}
			c := newClusterWith(t, 3, nil, ca, func(c *tcluster) { c.wrap = lf.wrap })
			t.Cleanup(lf.heal) // before c.close: the nodes shut down over healthy links
			leader := c.waitLeader()
			f := c.followers(leader)[0]
			leader.hold.Store(true)

			type answer struct {
				forwardAnswer
				isolHe time.Duration // held after the isolation
			}
			var isolated time.Time
			var isolMu sync.Mutex
			send := func(safe bool, out chan<- answer) {
				a := sendWrite("http://"+f.httpAddr+"/hold", "x", safe)
				isolMu.Lock()
				held := time.Since(isolated)
				isolMu.Unlock()
				out <- answer{forwardAnswer: a, isolHe: held}
			}
			safeCh, unsafeCh := make(chan answer, 1), make(chan answer, 1)
			go send(true, safeCh)
			go send(false, unsafeCh)
			for i := 0; i < 2; i++ {
				select {
				case <-leader.held:
				case <-time.After(10 * time.Second):
					t.Fatal("the leader never received the forwarded writes")
				}
			}
			isolMu.Lock()
			isolated = time.Now()
			lf.isolate(leader)
			isolMu.Unlock()

			safe, unsafe := <-safeCh, <-unsafeCh
			t.Logf("held after isolating the leader: retry-safe %s (status %d by %s), other %s (status %d)",
				safe.isolHe, safe.code, safe.by, unsafe.isolHe, unsafe.code)
			checkCutOff(t, leader, safe.forwardAnswer, unsafe.forwardAnswer)
		})
	}
}

// checkCutOff checks the answers to two writes the old leader held when
// raft elected another: the retry-safe one served by the new leader, the
// other 503 "leader changed".
func checkCutOff(t *testing.T, oldLeader *tnode, safe, unsafe forwardAnswer) {
	t.Helper()
	if safe.code != http.StatusCreated || safe.by == "" || safe.by == oldLeader.id {
		t.Errorf("retry-safe write: status %d served by %q (%s), want 201 from the new leader",
			safe.code, safe.by, strings.TrimSpace(safe.body))
	}
	if unsafe.code != http.StatusServiceUnavailable || !strings.Contains(unsafe.body, status.ErrLeaderChanged.Error()) {
		t.Errorf("other write: status %d %q, want 503 %q", unsafe.code, strings.TrimSpace(unsafe.body), status.ErrLeaderChanged)
	}
}

// TestForwardDialBounded: a leader whose port accepts but never completes
// the cluster TLS handshake (a hung process, a half-open path) fails the
// forward within ForwardDialTimeout, marked as never sent, instead of
// waiting out the transport's handshake timeout.
func TestForwardDialBounded(t *testing.T) {
	c := newClusterWith(t, 1, nil, newTestCA(t))
	n := c.nodes[0].node.Load()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn) // silent: never answers the handshake
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, conn := range conns {
			conn.Close()
		}
	}()
	start := time.Now()
	resp, err := n.peerClient("node9").Post("https://"+ln.Addr().String()+"/v1/x", "text/plain", strings.NewReader("x"))
	took := time.Since(start)
	if err == nil {
		resp.Body.Close()
		t.Fatal("forward to a silent port succeeded")
	}
	t.Logf("forward to a silent leader failed after %s: %v", took, err)
	if !neverSent(err) {
		t.Errorf("error %v not marked as never sent", err)
	}
}
