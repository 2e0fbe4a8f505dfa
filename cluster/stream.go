package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// trackedStream is the raft stream layer, and with cluster TLS the whole
// cluster port (doc.go, "Cluster port"). It differs from
// raft.TCPStreamLayer in one way: Close also closes every accepted
// connection and waits (bounded) until no connection handler is in the
// middle of processing a request.
//
// raft answers heartbeats directly on the transport's connection goroutine,
// outside the raft main loop that Shutdown waits for. Such a heartbeat can
// write the current term to the stable store; if the bolt store were closed
// under it, raft panics ("failed to save current term"). Waiting here, which
// Raft.Shutdown does through the transport's Close, makes closing the store
// afterwards safe.
//
// With tls set, every accepted connection must complete a mutual TLS
// handshake (peer certificate from the cluster CA, naming a node that peers
// accepts) before any of its bytes reach raft or HTTP; the ALPN protocol
// then routes it to raft (Accept) or to the forwarding listener (Forward).
// Handshakes run on their own goroutines, bounded in number and time, so a
// client that connects and stays silent does not stall raft's accept loop.
type trackedStream struct {
	ln       net.Listener
	waitIdle time.Duration

	tls   *ClusterTLS // nil: plain TCP, raft only
	peers peerPolicy
	// wrap, when set, wraps every connection this node dials to a peer
	// (Config.WrapPeerConn).
	wrap func(net.Conn) net.Conn
	// handshakeTimeout bounds one TLS handshake, either side.
	handshakeTimeout time.Duration

	rafts    chan net.Conn // TLS: handshaken raft connections for Accept
	forward  *chanListener // TLS: handshaken forwarding connections
	done     chan struct{} // closed by Close
	acceptWG sync.WaitGroup
	slots    chan struct{} // bounds handshakes in progress

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	raw    map[net.Conn]struct{} // TLS: connections still in their handshake
	busy   int
	closed bool
}

// peerPolicy is what the stream asks the node about peers.
type peerPolicy interface {
	// allowPeer decides whether a verified peer naming id may connect:
	// it must be a server of the raft configuration or an alive gossip
	// member.
	allowPeer(id string) error
	// expectedAt returns the ids the raft configuration has at addr: a
	// raft dial to addr accepts only a certificate naming one of them.
	expectedAt(addr string) []string
}

// maxHandshakes bounds TLS handshakes in progress on the cluster port
// (memory and CPU); the accept loop waits while the limit is reached.
const maxHandshakes = 256

var _ raft.StreamLayer = (*trackedStream)(nil)

// streamOptions configure newTrackedStream.
type streamOptions struct {
	// ln, when set, is used instead of listening on bind.
	ln               net.Listener
	tls              *ClusterTLS
	peers            peerPolicy
	wrap             func(net.Conn) net.Conn
	handshakeTimeout time.Duration
}

// newTrackedStream listens on bind. The listener's address is advertised,
// so it must be a concrete IP (port 0 is fine: the bound port is used).
func newTrackedStream(bind string, waitIdle time.Duration, o streamOptions) (*trackedStream, error) {
	ln := o.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", bind); err != nil {
			return nil, err
		}
	}
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok || addr.IP == nil || addr.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raft address %q is not advertisable: use a concrete IP", bind)
	}
	s := &trackedStream{
		ln: ln, waitIdle: waitIdle,
		tls: o.tls, peers: o.peers, wrap: o.wrap, handshakeTimeout: o.handshakeTimeout,
		done:  make(chan struct{}),
		conns: make(map[*trackedConn]struct{}),
		raw:   make(map[net.Conn]struct{}),
	}
	if s.handshakeTimeout <= 0 {
		s.handshakeTimeout = 10 * time.Second
	}
	if s.tls != nil {
		s.rafts = make(chan net.Conn)
		s.forward = &chanListener{addr: ln.Addr(), conns: make(chan net.Conn), done: s.done, closed: make(chan struct{})}
		s.slots = make(chan struct{}, maxHandshakes)
		s.acceptWG.Add(1)
		go s.acceptLoop()
	}
	return s, nil
}

// Accept implements net.Listener.
func (s *trackedStream) Accept() (net.Conn, error) {
	if s.tls != nil {
		select {
		case c := <-s.rafts:
			return c, nil
		case <-s.done:
			return nil, net.ErrClosed
		}
	}
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

// track registers an accepted raft connection for Close.
func (s *trackedStream) track(c net.Conn) (net.Conn, error) {
	tc := &trackedConn{Conn: c, s: s}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.Close()
		return nil, net.ErrClosed
	}
	s.conns[tc] = struct{}{}
	return tc, nil
}

// acceptLoop accepts TCP connections on the cluster port and hands each to
// a handshake goroutine.
func (s *trackedStream) acceptLoop() {
	defer s.acceptWG.Done()
	var backoff time.Duration
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			// Temporary failures (EMFILE): back off like net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			select {
			case <-s.done:
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		// At the limit, wait for a slot instead of dropping the
		// connection: a burst of legitimate dials (a pool of forwarding
		// connections, raft reconnecting after an election) must not lose
		// connections. Further clients wait in the kernel's backlog; a
		// flood of silent ones delays them by at most handshakeTimeout.
		select {
		case s.slots <- struct{}{}:
		case <-s.done:
			c.Close()
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			<-s.slots
			return
		}
		s.raw[c] = struct{}{}
		s.mu.Unlock()
		s.acceptWG.Add(1)
		go s.handshake(c)
	}
}

// handshake runs the server side of one TLS handshake and routes the
// connection by its ALPN protocol.
func (s *trackedStream) handshake(raw net.Conn) {
	defer s.acceptWG.Done()
	tc := tls.Server(raw, s.tls.serverConfig([]string{ALPNRaft, ALPNForward, alpnProbe}, s.peers.allowPeer))
	_ = raw.SetDeadline(time.Now().Add(s.handshakeTimeout))
	err := tc.Handshake()
	_ = raw.SetDeadline(time.Time{})
	s.mu.Lock()
	delete(s.raw, raw)
	s.mu.Unlock()
	<-s.slots
	if err != nil {
		// Plaintext, wrong CA, no certificate, unknown node: nothing of it
		// reached raft or HTTP.
		raw.Close()
		return
	}
	switch tc.ConnectionState().NegotiatedProtocol {
	case ALPNRaft:
		c, err := s.track(tc)
		if err != nil {
			return
		}
		select {
		case s.rafts <- c:
		case <-s.done:
			c.Close()
		}
	case ALPNForward:
		// Handed to net/http as a plain connection: its server closes a
		// *tls.Conn whose ALPN protocol it does not know.
		c := &peerConn{Conn: tc, peer: peerIDOf(tc.ConnectionState())}
		select {
		case s.forward.conns <- c:
		case <-s.done:
			tc.Close()
		case <-s.forward.closed:
			tc.Close()
		}
	default:
		tc.Close() // alpnProbe: the handshake was the point
	}
}

// Addr implements net.Listener.
func (s *trackedStream) Addr() net.Addr { return s.ln.Addr() }

// Dial implements raft.StreamLayer. With TLS the peer must present a
// certificate naming a node the raft configuration has at address.
func (s *trackedStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if s.tls == nil {
		c, err := net.DialTimeout("tcp", string(address), timeout)
		if err != nil {
			return nil, err
		}
		if s.wrap != nil {
			c = s.wrap(c)
		}
		return c, nil
	}
	ids := s.peers.expectedAt(string(address))
	if len(ids) == 0 {
		return nil, fmt.Errorf("no raft server is configured at %s", address)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.dialTLS(ctx, string(address), ALPNRaft, func(id string) error {
		if slices.Contains(ids, id) {
			return nil
		}
		return fmt.Errorf("peer certificate names node %q, the raft configuration has %v at %s", id, ids, address)
	})
}

// dialTLS opens a mutually authenticated connection for proto to addr.
func (s *trackedStream) dialTLS(ctx context.Context, addr, proto string, allow func(string) error) (*tls.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if s.wrap != nil {
		raw = s.wrap(raw)
	}
	tc := tls.Client(raw, s.tls.clientConfig(proto, allow))
	hctx, cancel := context.WithTimeout(ctx, s.handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("cluster TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// Close implements net.Listener: it stops accepting, closes every accepted
// connection and waits until no handler is processing a request.
func (s *trackedStream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	err := s.ln.Close()
	for c := range s.conns {
		if tc, ok := c.Conn.(*tls.Conn); ok {
			// Close the socket itself: tls.Conn.Close first writes a
			// close_notify, which can block (up to 5 s) on a peer that
			// does not read, and s.mu is held here.
			tc.NetConn().Close()
			continue
		}
		c.Conn.Close()
	}
	for c := range s.raw {
		c.Close()
	}
	s.mu.Unlock()
	// Handshake goroutines end at once: their connections are closed.
	s.acceptWG.Wait()

	deadline := time.Now().Add(s.waitIdle)
	for {
		s.mu.Lock()
		busy := s.busy
		s.mu.Unlock()
		if busy == 0 || time.Now().After(deadline) {
			break
		}
		// Handlers finish a request in microseconds; a short poll keeps
		// this simple and is only ever paid at shutdown.
		time.Sleep(time.Millisecond)
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// peerConn is an authenticated cluster-port connection and the node id its
// certificate names.
type peerConn struct {
	net.Conn
	peer string
}

// chanListener is the forwarding side of the cluster port: a net.Listener
// whose connections are TLS connections the stream already authenticated.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{} // the stream's: closed when the port closes

	closeOnce sync.Once
	closed    chan struct{}
}

// Accept implements net.Listener.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener: Accept returns; the port itself stays
// open until the stream closes (raft shutdown), and forwarding
// connections arriving after this are closed by the stream.
func (l *chanListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return nil
}

// Addr implements net.Listener.
func (l *chanListener) Addr() net.Addr { return l.addr }

// trackedConn counts its handler as busy from the moment a Read returns
// request bytes until the handler comes back to Read for the next request.
type trackedConn struct {
	net.Conn
	s    *trackedStream
	busy bool // only touched by the handler goroutine, under s.mu
}

// Read implements net.Conn.
func (c *trackedConn) Read(p []byte) (int, error) {
	c.s.mu.Lock()
	if c.busy {
		c.busy = false
		c.s.busy--
	}
	closed := c.s.closed
	c.s.mu.Unlock()
	if closed {
		return 0, net.ErrClosed
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.s.mu.Lock()
		if c.s.closed {
			c.s.mu.Unlock()
			// Never start a request once shutdown began.
			return 0, net.ErrClosed
		}
		c.busy = true
		c.s.busy++
		c.s.mu.Unlock()
	}
	return n, err
}

// Close implements net.Conn.
func (c *trackedConn) Close() error {
	c.s.mu.Lock()
	if c.busy {
		c.busy = false
		c.s.busy--
	}
	delete(c.s.conns, c)
	c.s.mu.Unlock()
	return c.Conn.Close()
}
