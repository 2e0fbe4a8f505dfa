package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echoServer is a TCP echo server on 127.0.0.1:0 that half-closes after EOF.
type echoServer struct {
	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
	got   bytes.Buffer // everything received, all connections
}

func newEcho(t *testing.T) *echoServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if n > 0 {
						s.mu.Lock()
						s.got.Write(buf[:n])
						s.mu.Unlock()
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						if errors.Is(err, io.EOF) {
							_ = c.(*net.TCPConn).CloseWrite()
						}
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(s.close)
	return s
}

func (s *echoServer) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got.Len()
}

func (s *echoServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func newTCP(t *testing.T, target string) *TCPProxy {
	t.Helper()
	p, err := NewTCP("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads len(msg) bytes back, failing on a mismatch.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	expectRead(t, c, msg)
}

func expectRead(t *testing.T, c net.Conn, want string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(got) != want {
		t.Fatalf("read %q, want %q", got, want)
	}
}

// expectStalled checks nothing arrives on c for a short while. Proving an
// absence needs a wait; it is bounded and short.
func expectStalled(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	buf := make([]byte, 1)
	n, err := c.Read(buf)
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read on a cut link: n=%d err=%v, want a timeout", n, err)
	}
	_ = c.SetReadDeadline(time.Time{})
}

func TestTCPEcho(t *testing.T) {
	echo := newEcho(t)
	p := newTCP(t, echo.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, "hello")
	big := string(bytes.Repeat([]byte("x"), 200<<10))
	roundTrip(t, c, big)
	eventually(t, "stats", func() bool {
		s := p.Stats()
		n := uint64(5 + len(big))
		return s.Forward.Bytes == n && s.Backward.Bytes == n && s.Accepted == 1 && s.Live == 1
	})
	// Half-close passes through: the echo server sees EOF and closes.
	_ = c.(*net.TCPConn).CloseWrite()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("read after half-close: %v, want EOF", err)
	}
	eventually(t, "connection gone", func() bool { return p.Stats().Live == 0 })
}

func TestTCPCutHeal(t *testing.T) {
	for _, d := range []Direction{Forward, Backward, Both} {
		t.Run(d.String(), func(t *testing.T) {
			echo := newEcho(t)
			p := newTCP(t, echo.ln.Addr().String())
			c := dial(t, p.Addr())
			roundTrip(t, c, "before")

			p.Cut(d)
			if _, err := c.Write([]byte("during-cut")); err != nil {
				t.Fatal(err)
			}
			expectStalled(t, c)
			if d&Forward != 0 && echo.received() != len("before") {
				t.Fatalf("target received %d bytes through a forward cut", echo.received())
			}
			// A new connection is accepted but stalls.
			c2 := dial(t, p.Addr())
			if _, err := c2.Write([]byte("new")); err != nil {
				t.Fatal(err)
			}
			expectStalled(t, c2)
			if s := p.Stats(); s.Accepted != 2 || s.Live != 2 {
				t.Fatalf("stats during cut: %+v", s)
			}

			p.Heal(d)
			expectRead(t, c, "during-cut")
			expectRead(t, c2, "new")
			roundTrip(t, c, "after")
		})
	}
}

func TestTCPReset(t *testing.T) {
	echo := newEcho(t)
	p := newTCP(t, echo.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, "x")
	p.Cut(Forward)
	stalled := dial(t, p.Addr()) // accepted, never dialled
	eventually(t, "two live", func() bool { return p.Stats().Live == 2 })

	p.Reset()
	for _, conn := range []net.Conn{c, stalled} {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatal("read succeeded after Reset")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("connection still open after Reset")
		}
	}
	eventually(t, "no live", func() bool { return p.Stats().Live == 0 })

	p.Heal(Both)
	roundTrip(t, dial(t, p.Addr()), "new")
}

func TestTCPDelay(t *testing.T) {
	echo := newEcho(t)
	p := newTCP(t, echo.ln.Addr().String())
	c := dial(t, p.Addr())
	roundTrip(t, c, "warm")

	const d = 60 * time.Millisecond
	p.Delay(Forward, d, 0)
	start := time.Now()
	roundTrip(t, c, "one-way")
	if rtt := time.Since(start); rtt < d {
		t.Fatalf("round trip %v with a %v forward delay", rtt, d)
	}
	p.Delay(Both, d, 10*time.Millisecond)
	start = time.Now()
	roundTrip(t, c, "both-ways")
	if rtt := time.Since(start); rtt < 2*(d-10*time.Millisecond) {
		t.Fatalf("round trip %v with %v±10ms each way", rtt, d)
	}
	p.Heal(Both)
	roundTrip(t, c, "healed")
}

func TestTCPDrop(t *testing.T) {
	echo := newEcho(t)
	p := newTCP(t, echo.ln.Addr().String())

	p.Drop(Forward, 0)
	c := dial(t, p.Addr())
	for range 100 {
		roundTrip(t, c, "keep")
	}

	p.Drop(Forward, 1)
	if _, err := c.Write([]byte("gone")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded after a dropped chunk")
	}
	c2 := dial(t, p.Addr())
	_, _ = c2.Write([]byte("gone too"))
	_ = c2.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c2.Read(make([]byte, 1)); err == nil {
		t.Fatal("read succeeded on a new connection with drop 1")
	}
	if got := echo.received(); got != 400 {
		t.Fatalf("target received %d bytes, want 400 (nothing after drop 1)", got)
	}
	// Counters move just after the write they count: poll.
	eventually(t, "drop stats", func() bool {
		s := p.Stats()
		return s.Forward.DroppedPackets == 2 && s.Forward.DroppedBytes == uint64(len("gone")+len("gone too")) && s.Forward.Bytes == 400
	})
}

// udpEcho is a UDP echo server on 127.0.0.1:0 that records what it got.
type udpEcho struct {
	conn *net.UDPConn
	wg   sync.WaitGroup
	mu   sync.Mutex
	got  []string
}

func newUDPEcho(t *testing.T) *udpEcho {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	s := &udpEcho{conn: conn}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			s.mu.Lock()
			s.got = append(s.got, string(buf[:n]))
			s.mu.Unlock()
			_, _ = conn.WriteToUDP(buf[:n], from)
		}
	}()
	t.Cleanup(func() { conn.Close(); s.wg.Wait() })
	return s
}

func (s *udpEcho) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func newUDP(t *testing.T, target string) *UDPProxy {
	t.Helper()
	p, err := NewUDP("127.0.0.1:0", target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func udpClient(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	ra, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp", nil, ra)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func udpRoundTrip(t *testing.T, c *net.UDPConn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("udp read: %v", err)
	}
	if string(buf[:n]) != msg {
		t.Fatalf("udp read %q, want %q", buf[:n], msg)
	}
}

func udpExpectNothing(t *testing.T, c *net.UDPConn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	n, err := c.Read(make([]byte, 2048))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("udp read on a faulty link: n=%d err=%v, want a timeout", n, err)
	}
}

func TestUDPRelayCutDelayDrop(t *testing.T) {
	echo := newUDPEcho(t)
	p := newUDP(t, echo.conn.LocalAddr().String())
	c := udpClient(t, p.Addr())
	udpRoundTrip(t, c, "ping")

	p.Cut(Forward)
	_, _ = c.Write([]byte("lost-fwd"))
	udpExpectNothing(t, c)
	p.Heal(Forward)
	p.Cut(Backward)
	_, _ = c.Write([]byte("lost-back"))
	udpExpectNothing(t, c)
	if got := echo.received(); len(got) != 2 || got[1] != "lost-back" {
		t.Fatalf("target got %q; want the backward-cut datagram to arrive", got)
	}
	p.Heal(Both)
	udpRoundTrip(t, c, "healed") // cut datagrams are not replayed

	const d = 50 * time.Millisecond
	p.Delay(Both, d, 0)
	start := time.Now()
	udpRoundTrip(t, c, "slow")
	if rtt := time.Since(start); rtt < 2*d {
		t.Fatalf("udp round trip %v with %v each way", rtt, d)
	}
	p.Heal(Both)

	p.Drop(Forward, 1)
	for range 10 {
		_, _ = c.Write([]byte("drop"))
	}
	eventually(t, "10 dropped", func() bool { return p.Stats().Forward.DroppedPackets == 11 })
	p.Drop(Forward, 0)
	for range 20 {
		udpRoundTrip(t, c, "kept")
	}
	// ping, lost-back, healed, slow, 20 kept forwarded; lost-fwd and 10 drops dropped.
	eventually(t, "udp stats", func() bool {
		s := p.Stats()
		return s.Forward.Packets == 24 && s.Forward.DroppedPackets == 11 && s.Backward.DroppedPackets == 1
	})
}

// udpDropPattern sends n datagrams one at a time through a proxy with the
// given seed and drop probability and returns which ones arrived.
func udpDropPattern(t *testing.T, seed uint64, n int) []string {
	echo := newUDPEcho(t)
	p := newUDP(t, echo.conn.LocalAddr().String())
	p.SetSeed(seed)
	p.Drop(Forward, 0.5)
	p.Cut(Backward)
	c := udpClient(t, p.Addr())
	for i := range n {
		_, _ = c.Write([]byte{byte(i)})
		eventually(t, "datagram handled", func() bool {
			s := p.Stats().Forward
			return s.Packets+s.DroppedPackets == uint64(i+1)
		})
	}
	eventually(t, "all delivered", func() bool { return uint64(len(echo.received())) == p.Stats().Forward.Packets })
	return echo.received()
}

func TestSeedReplays(t *testing.T) {
	a := udpDropPattern(t, 42, 64)
	b := udpDropPattern(t, 42, 64)
	c := udpDropPattern(t, 7, 64)
	if len(a) == 0 || len(a) == 64 {
		t.Fatalf("drop 0.5 kept %d of 64", len(a))
	}
	if !equal(a, b) {
		t.Fatal("the same seed gave different drop decisions")
	}
	if equal(a, c) {
		t.Fatal("different seeds gave the same drop decisions")
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestCloseStopsEverything(t *testing.T) {
	before := goleak.IgnoreCurrent()
	echo := newEcho(t)
	uecho := newUDPEcho(t)
	p, err := NewTCP("127.0.0.1:0", echo.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	u, err := NewUDP("127.0.0.1:0", uecho.conn.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	live := dial(t, p.Addr())
	roundTrip(t, live, "x")
	p.Delay(Backward, time.Hour, 0)
	_, _ = live.Write([]byte("held by a delay"))
	p.Cut(Forward)
	_ = dial(t, p.Addr()) // stalled before dialling
	uc := udpClient(t, u.Addr())
	u.Delay(Forward, time.Hour, 0)
	_, _ = uc.Write([]byte("held"))
	eventually(t, "connections accepted", func() bool { return p.Stats().Live == 2 })

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil {
		t.Fatal(err)
	}
	_ = p.Close() // idempotent
	_ = u.Close()
	if _, err := net.Dial("tcp", p.Addr()); err == nil {
		t.Fatal("proxy still accepting after Close")
	}
	echo.close()
	uecho.conn.Close()
	uecho.wg.Wait()
	// Only the proxies' goroutines could be left: the test servers are down.
	goleak.VerifyNone(t, before)
}

func TestInvalidDirectionPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	p := &TCPProxy{ctl: newControl()}
	p.Cut(Direction(0))
}
