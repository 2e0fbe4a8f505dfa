package faultproxy

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// chunkSize is the largest read relayed as one chunk.
	chunkSize = 32 << 10
	// tcpQueueCap is the number of chunks one direction of one connection may
	// hold (delayed or cut). When it is full the relay stops reading, so the
	// sender sees TCP back-pressure; nothing is discarded. At most
	// tcpQueueCap*chunkSize (2 MiB) is buffered per direction per connection.
	tcpQueueCap = 64
	// dialTimeout bounds the dial to the target.
	dialTimeout = 5 * time.Second
)

// TCPProxy relays every connection accepted on its listen address to one
// target, with faults injected per direction. All methods are safe for
// concurrent use and take effect on live connections.
type TCPProxy struct {
	ctl    *control
	target string
	ln     net.Listener
	stats  [2]dirCounters

	accepted atomic.Uint64
	wg       sync.WaitGroup

	mu     sync.Mutex
	conns  map[*tcpConn]struct{}
	closed bool
}

// NewTCP listens on listen (host:port; use 127.0.0.1, port 0 picks a free
// port) and relays each accepted connection to target. Close stops it.
func NewTCP(listen, target string) (*TCPProxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &TCPProxy{
		ctl:    newControl(),
		target: target,
		ln:     ln,
		conns:  make(map[*tcpConn]struct{}),
	}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr is the address the proxy listens on; peers dial it instead of target.
func (p *TCPProxy) Addr() string { return p.ln.Addr().String() }

// Target is the address connections are relayed to.
func (p *TCPProxy) Target() string { return p.target }

// SetSeed sets the seed of the random draws (drop decisions and delay
// jitter). Connection n (in accept order, from 0) of direction d draws from a
// generator seeded with (seed, 2n+d), so for the same seed, accept order and
// chunking a fault schedule replays. Affects connections accepted afterwards.
// The default seed is 1.
func (p *TCPProxy) SetSeed(seed uint64) {
	p.ctl.mu.Lock()
	p.ctl.seed = seed
	p.ctl.mu.Unlock()
}

// Cut blackholes direction d: bytes already read and new bytes are held (up
// to the queue cap, then the sender is back-pressured) and connections stay
// open, as in a network partition. New connections are accepted but not
// dialled to the target while either direction is cut (a TCP handshake needs
// both ways). Heal delivers everything held, in order.
func (p *TCPProxy) Cut(d Direction) { p.ctl.cut(d) }

// Heal removes every fault (cut, delay, drop) from direction d.
func (p *TCPProxy) Heal(d Direction) { p.ctl.heal(d) }

// Delay holds each chunk of direction d for mean ± jitter (uniform, at least
// 0) after it was read. Chunks stay in order: a chunk never overtakes an
// earlier one. Zero mean and jitter removes the delay. Chunks already queued
// keep the delay they were given.
func (p *TCPProxy) Delay(d Direction, mean, jitter time.Duration) { p.ctl.delay(d, mean, jitter) }

// Drop makes direction d fail with the given probability (clamped to [0,1])
// per chunk. Bytes cannot be removed from inside a TCP stream without
// corrupting it, so a "dropped" chunk closes the whole connection (both
// sides), which the peers see as a reset; the chunk is counted as dropped.
// Probability 0 removes the fault.
func (p *TCPProxy) Drop(d Direction, probability float64) { p.ctl.setDrop(d, probability) }

// Reset closes every live connection (both sides), including ones stalled by
// a cut. Queued bytes are discarded. New connections are accepted as usual.
func (p *TCPProxy) Reset() {
	for _, c := range p.liveConns() {
		c.close()
	}
}

// Stats returns the counters.
func (p *TCPProxy) Stats() Stats {
	p.mu.Lock()
	live := len(p.conns)
	p.mu.Unlock()
	return Stats{
		Forward:  p.stats[0].snapshot(),
		Backward: p.stats[1].snapshot(),
		Accepted: p.accepted.Load(),
		Live:     live,
	}
}

// Close stops listening, closes every connection and waits for all the
// proxy's goroutines to return. It is safe to call more than once.
func (p *TCPProxy) Close() error {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	var err error
	if !already {
		err = p.ln.Close()
	}
	p.Reset()
	p.wg.Wait()
	return err
}

func (p *TCPProxy) liveConns() []*tcpConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*tcpConn, 0, len(p.conns))
	for c := range p.conns {
		out = append(out, c)
	}
	return out
}

func (p *TCPProxy) acceptLoop() {
	defer p.wg.Done()
	var id uint64
	for {
		nc, err := p.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // listener closed
		}
		ctx, cancel := context.WithCancel(context.Background())
		c := &tcpConn{p: p, id: id, client: nc, done: make(chan struct{}), cancel: cancel}
		id++
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			cancel()
			nc.Close()
			continue
		}
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		p.accepted.Add(1)
		go c.run(ctx)
	}
}

// tcpConn is one relayed connection: the accepted client side and the
// dialled upstream side.
type tcpConn struct {
	p      *TCPProxy
	id     uint64
	client net.Conn
	done   chan struct{}
	cancel context.CancelFunc
	once   sync.Once

	mu       sync.Mutex
	upstream net.Conn
}

// close tears the pair down; safe to call from any goroutine, many times.
func (c *tcpConn) close() {
	c.once.Do(func() {
		close(c.done)
		c.cancel()
		c.client.Close()
		c.mu.Lock()
		if c.upstream != nil {
			c.upstream.Close()
		}
		c.mu.Unlock()
		c.p.mu.Lock()
		delete(c.p.conns, c)
		c.p.mu.Unlock()
	})
}

// waitUncut blocks while any direction in idx is cut. It returns false if
// the connection was closed meanwhile.
func (c *tcpConn) waitUncut(idx ...int) bool {
	for {
		var wakes []chan struct{}
		for _, i := range idx {
			if f := c.p.ctl.get(i); f.cut {
				wakes = append(wakes, f.wake)
			}
		}
		switch len(wakes) {
		case 0:
			return true
		case 1:
			select {
			case <-wakes[0]:
			case <-c.done:
				return false
			}
		default:
			select {
			case <-wakes[0]:
			case <-wakes[1]:
			case <-c.done:
				return false
			}
		}
	}
}

type chunk struct {
	data []byte
	at   time.Time // not delivered before this time
}

func (c *tcpConn) run(ctx context.Context) {
	defer c.p.wg.Done()
	defer c.close()

	if !c.waitUncut(0, 1) {
		return
	}
	d := net.Dialer{Timeout: dialTimeout}
	up, err := d.DialContext(ctx, "tcp", c.p.target)
	if err != nil {
		return
	}
	c.mu.Lock()
	select {
	case <-c.done: // Reset or Close raced the dial
		c.mu.Unlock()
		up.Close()
		return
	default:
	}
	c.upstream = up
	c.mu.Unlock()

	seed := c.p.ctl.getSeed()
	var wg sync.WaitGroup
	writers := make(chan struct{}, 2)
	ends := [2][2]net.Conn{{c.client, up}, {up, c.client}} // {src, dst} per direction
	for i := range 2 {
		q := make(chan chunk, tcpQueueCap)
		r := rand.New(rand.NewPCG(seed, 2*c.id+uint64(i)))
		wg.Add(2)
		go func() {
			defer wg.Done()
			c.read(i, ends[i][0], q, r)
		}()
		go func() {
			defer wg.Done()
			defer func() { writers <- struct{}{} }()
			c.write(i, ends[i][1], q)
		}()
	}
	// The pair is done when both directions have delivered their EOF (or
	// failed, which closes the pair and so ends both writers).
	<-writers
	<-writers
	c.close()
	wg.Wait()
}

// read copies chunks from src into q, applying drop and delay of direction i.
// It closes q when src ends; on an error other than EOF it closes the pair.
func (c *tcpConn) read(i int, src net.Conn, q chan<- chunk, r *rand.Rand) {
	defer close(q)
	buf := make([]byte, chunkSize)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f := c.p.ctl.get(i)
			if shouldDrop(r, f.drop) {
				c.p.stats[i].dropped(n)
				c.close()
				return
			}
			ch := chunk{data: append([]byte(nil), buf[:n]...)}
			ch.at = time.Now().Add(sampleDelay(r, f.mean, f.jitter))
			select {
			case q <- ch:
			case <-c.done:
				c.p.stats[i].dropped(n)
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.close()
			}
			return
		}
	}
}

// write delivers the chunks of q to dst once their time has come and
// direction i is not cut. When q ends it half-closes dst.
func (c *tcpConn) write(i int, dst net.Conn, q <-chan chunk) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		// Count what a teardown left queued as dropped.
		for ch := range q {
			c.p.stats[i].dropped(len(ch.data))
		}
	}()
	for {
		var ch chunk
		var ok bool
		select {
		case ch, ok = <-q:
		case <-c.done:
			return
		}
		if !ok {
			if tc, isTCP := dst.(*net.TCPConn); isTCP {
				_ = tc.CloseWrite()
			}
			return
		}
		if wait := time.Until(ch.at); wait > 0 {
			if timer == nil {
				timer = time.NewTimer(wait)
			} else {
				timer.Reset(wait)
			}
			select {
			case <-timer.C:
			case <-c.done:
				c.p.stats[i].dropped(len(ch.data))
				return
			}
		}
		if !c.waitUncut(i) {
			c.p.stats[i].dropped(len(ch.data))
			return
		}
		if _, err := dst.Write(ch.data); err != nil {
			c.p.stats[i].dropped(len(ch.data))
			c.close()
			return
		}
		c.p.stats[i].sent(len(ch.data))
	}
}
