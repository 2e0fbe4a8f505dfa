package faultproxy

import (
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

const (
	// udpQueueCap is the number of datagrams one direction may hold while
	// they wait out a delay. A datagram arriving when the queue is full is
	// dropped and counted, as a congested router would.
	udpQueueCap = 1024
	// maxDatagram is the largest datagram relayed whole.
	maxDatagram = 64 << 10
)

// UDPProxy relays datagrams between clients and one target, with faults
// injected per direction. Datagrams received on the listen address go to the
// target from one upstream socket; datagrams the target sends back to that
// socket go to the most recent client address. All methods are safe for
// concurrent use.
type UDPProxy struct {
	ctl    *control
	target string
	ln     *net.UDPConn // client-facing
	up     *net.UDPConn // connected to target
	stats  [2]dirCounters
	queues [2]chan datagram
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	mu     sync.Mutex
	client *net.UDPAddr
	rngs   [2]*rand.Rand
}

type datagram struct {
	data []byte
	at   time.Time
}

// NewUDP listens for datagrams on listen (use 127.0.0.1; port 0 picks a free
// port) and relays them to target. Close stops it.
func NewUDP(listen, target string) (*UDPProxy, error) {
	laddr, err := net.ResolveUDPAddr("udp", listen)
	if err != nil {
		return nil, err
	}
	taddr, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, err
	}
	ln, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, err
	}
	up, err := net.DialUDP("udp", nil, taddr)
	if err != nil {
		ln.Close()
		return nil, err
	}
	p := &UDPProxy{
		ctl:    newControl(),
		target: target,
		ln:     ln,
		up:     up,
		done:   make(chan struct{}),
	}
	p.SetSeed(1)
	for i := range p.queues {
		p.queues[i] = make(chan datagram, udpQueueCap)
	}
	p.wg.Add(4)
	go p.readForward()
	go p.readBackward()
	go p.writeLoop(0)
	go p.writeLoop(1)
	return p, nil
}

// Addr is the address the proxy listens on; peers send to it instead of
// target.
func (p *UDPProxy) Addr() string { return p.ln.LocalAddr().String() }

// Target is the address datagrams are relayed to.
func (p *UDPProxy) Target() string { return p.target }

// SetSeed restarts the random draws (drop decisions and delay jitter) of
// direction d from a generator seeded with (seed, d), so the same datagram
// sequence under the same seed gets the same fault decisions. The default
// seed is 1.
func (p *UDPProxy) SetSeed(seed uint64) {
	p.ctl.mu.Lock()
	p.ctl.seed = seed
	p.ctl.mu.Unlock()
	p.mu.Lock()
	for i := range p.rngs {
		p.rngs[i] = rand.New(rand.NewPCG(seed, uint64(i)))
	}
	p.mu.Unlock()
}

// Cut blackholes direction d: datagrams arriving, or due for delivery, while
// it is cut are dropped and counted (a partition loses datagrams; they are
// not held for Heal).
func (p *UDPProxy) Cut(d Direction) { p.ctl.cut(d) }

// Heal removes every fault (cut, delay, drop) from direction d.
func (p *UDPProxy) Heal(d Direction) { p.ctl.heal(d) }

// Delay holds each datagram of direction d for mean ± jitter (uniform, at
// least 0). Delivery stays FIFO (no reordering). If more than the queue cap
// (1024) datagrams are waiting, new ones are dropped and counted.
func (p *UDPProxy) Delay(d Direction, mean, jitter time.Duration) { p.ctl.delay(d, mean, jitter) }

// Drop discards each datagram of direction d with the given probability
// (clamped to [0,1]). Probability 0 removes the fault.
func (p *UDPProxy) Drop(d Direction, probability float64) { p.ctl.setDrop(d, probability) }

// Stats returns the counters.
func (p *UDPProxy) Stats() Stats {
	return Stats{Forward: p.stats[0].snapshot(), Backward: p.stats[1].snapshot()}
}

// Close closes both sockets and waits for all the proxy's goroutines to
// return. Queued datagrams are discarded. Safe to call more than once.
func (p *UDPProxy) Close() error {
	var err error
	p.once.Do(func() {
		close(p.done)
		err = p.ln.Close()
		if e := p.up.Close(); err == nil {
			err = e
		}
	})
	p.wg.Wait()
	return err
}

// admit applies direction i's drop, cut and delay to an incoming datagram
// and queues it.
func (p *UDPProxy) admit(i int, b []byte) {
	f := p.ctl.get(i)
	p.mu.Lock()
	drop := shouldDrop(p.rngs[i], f.drop)
	delay := sampleDelay(p.rngs[i], f.mean, f.jitter)
	p.mu.Unlock()
	if f.cut || drop {
		p.stats[i].dropped(len(b))
		return
	}
	select {
	case p.queues[i] <- datagram{data: append([]byte(nil), b...), at: time.Now().Add(delay)}:
	default:
		p.stats[i].dropped(len(b))
	}
}

func (p *UDPProxy) readForward() {
	defer p.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := p.ln.ReadFromUDP(buf)
		if err != nil {
			select {
			case <-p.done:
				return
			default:
				continue
			}
		}
		p.mu.Lock()
		p.client = from
		p.mu.Unlock()
		p.admit(0, buf[:n])
	}
}

func (p *UDPProxy) readBackward() {
	defer p.wg.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, err := p.up.Read(buf)
		if err != nil {
			// ECONNREFUSED from an earlier send to a target not listening
			// (yet) is reported here; keep going until closed.
			select {
			case <-p.done:
				return
			default:
				continue
			}
		}
		p.admit(1, buf[:n])
	}
}

func (p *UDPProxy) writeLoop(i int) {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var dg datagram
		select {
		case dg = <-p.queues[i]:
		case <-p.done:
			return
		}
		if wait := time.Until(dg.at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-p.done:
				return
			}
		}
		if p.ctl.get(i).cut { // cut while it waited out its delay
			p.stats[i].dropped(len(dg.data))
			continue
		}
		var err error
		if i == 0 {
			_, err = p.up.Write(dg.data)
		} else {
			p.mu.Lock()
			to := p.client
			p.mu.Unlock()
			if to == nil {
				p.stats[i].dropped(len(dg.data))
				continue
			}
			_, err = p.ln.WriteToUDP(dg.data, to)
		}
		if err != nil {
			p.stats[i].dropped(len(dg.data))
			continue
		}
		p.stats[i].sent(len(dg.data))
	}
}
