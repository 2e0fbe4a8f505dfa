package cluster

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// trackedStream is the raft TCP stream layer. It differs from
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
type trackedStream struct {
	ln       net.Listener
	waitIdle time.Duration

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	busy   int
	closed bool
}

var _ raft.StreamLayer = (*trackedStream)(nil)

// newTrackedStream listens on bind. The listener's address is advertised,
// so it must be a concrete IP (port 0 is fine: the bound port is used).
func newTrackedStream(bind string, waitIdle time.Duration) (*trackedStream, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, err
	}
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok || addr.IP == nil || addr.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raft address %q is not advertisable: use a concrete IP", bind)
	}
	return &trackedStream{ln: ln, waitIdle: waitIdle, conns: make(map[*trackedConn]struct{})}, nil
}

// Accept implements net.Listener.
func (s *trackedStream) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
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

// Addr implements net.Listener.
func (s *trackedStream) Addr() net.Addr { return s.ln.Addr() }

// Dial implements raft.StreamLayer.
func (s *trackedStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return net.DialTimeout("tcp", string(address), timeout)
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
	err := s.ln.Close()
	for c := range s.conns {
		c.Conn.Close()
	}
	s.mu.Unlock()

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
