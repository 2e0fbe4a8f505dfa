package chaos

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tokend/tokend/test/faultproxy"
)

// Slow and flaky links (RELIABILITY.md T7) without tc netem, which this
// kernel lacks: every directed node-to-node link a→b gets its own
// faultproxy instances, one per protocol (HTTP forwarding and lease grants,
// raft/cluster port, gossip TCP and gossip UDP), listening on a per-link
// address 127.1.(a+1).(b+1) with b's port numbers and relaying to b's real
// listener. An nftables nat output chain sends what node a's processes
// (matched by their group id, see doc.go) address to node b's ports to the
// proxies of link a→b instead:
//
//	meta skgid 2000+a ip daddr <b> tcp dport {http, raft, gossip} dnat to 127.1.a.b
//	meta skgid 2000+a ip daddr <b> udp dport gossip dnat to 127.1.a.b
//
// The proxies dial b themselves (as the harness's group, which no rule
// matches), so nothing is redirected twice. The table is installed before
// the nodes start: NAT is decided on a flow's first packet, so raft's
// pooled connections and gossip's long-lived UDP flows must start out
// redirected. "What a sends to b" is then a's bytes on link a→b's proxies
// (Forward) plus a's replies on connections b opened through link b→a's
// proxies (Backward); a fault on a directed link acts on exactly these.
// Packet loss is a separate nftables filter table dropping a random share
// of the packets between the nodes and the proxies on the two legs that
// carry a→b (numgen random), so TCP sees real loss and retransmits instead
// of the proxy's per-chunk connection reset.
//
// A counter per node counts packets a node sends straight to another
// node's address (after NAT): anything there bypassed the proxies, and the
// scenario fails on it.

const (
	linksTable = "tokend_chaos_links"
	lossTable  = "tokend_chaos_loss"
)

// linkProxies are the proxies of one directed link.
type linkProxies struct {
	tcp []*faultproxy.TCPProxy // http, raft, gossip
	udp *faultproxy.UDPProxy   // gossip
}

// linkMesh is every directed link's proxies and the NAT rules that route
// the nodes through them.
type linkMesh struct {
	c       *Cluster
	proxies map[Link]*linkProxies
}

// linkAddr is the address link a→b's proxies listen on (0-based nodes).
func linkAddr(a, b int) string { return fmt.Sprintf("127.1.%d.%d", a+1, b+1) }

// nodePorts returns node k's HTTP, raft and gossip ports.
func nodePorts(p *Proc) (httpPort, raftPort, gossipPort string, err error) {
	for i, a := range []string{p.HTTPAddr, p.RaftAddr, p.Gossip} {
		_, port, e := net.SplitHostPort(a)
		if e != nil {
			return "", "", "", e
		}
		switch i {
		case 0:
			httpPort = port
		case 1:
			raftPort = port
		default:
			gossipPort = port
		}
	}
	return httpPort, raftPort, gossipPort, nil
}

// newLinkMesh starts the proxies and installs the NAT table. The cluster
// must be laid out in the private namespace (every node on its own
// address) and not started yet.
func newLinkMesh(c *Cluster, seed int64) (_ *linkMesh, err error) {
	if !c.Netns {
		return nil, fmt.Errorf("slow links need the private network namespace")
	}
	m := &linkMesh{c: c, proxies: map[Link]*linkProxies{}}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	n := len(c.Nodes)
	for a := 0; a < n; a++ {
		for b := 0; b < n; b++ {
			if a == b {
				continue
			}
			dst := c.Nodes[b]
			hp, rp, gp, err := nodePorts(dst)
			if err != nil {
				return nil, err
			}
			lp := &linkProxies{}
			m.proxies[Link{a, b}] = lp
			for i, port := range []string{hp, rp, gp} {
				p, err := faultproxy.NewTCP(net.JoinHostPort(linkAddr(a, b), port), net.JoinHostPort(dst.IP, port))
				if err != nil {
					return nil, fmt.Errorf("proxy %d->%d: %w", a+1, b+1, err)
				}
				p.SetSeed(uint64(seed) + uint64(100*a+10*b+i))
				lp.tcp = append(lp.tcp, p)
			}
			u, err := faultproxy.NewUDP(net.JoinHostPort(linkAddr(a, b), gp), net.JoinHostPort(dst.IP, gp))
			if err != nil {
				return nil, fmt.Errorf("udp proxy %d->%d: %w", a+1, b+1, err)
			}
			u.SetSeed(uint64(seed) + uint64(100*a+10*b+9))
			lp.udp = u
		}
	}
	// A flow that conntrack already knows is never NATed: gossip UDP
	// between the same addresses and ports from an earlier run in this
	// namespace (its entries live 120 s) would go around the proxies.
	if err := flushConntrack(); err != nil {
		return nil, fmt.Errorf("flush conntrack: %w", err)
	}
	if err := nftLoad(m.natRules()); err != nil {
		return nil, fmt.Errorf("nftables nat redirect: %w", err)
	}
	return m, nil
}

// flushConntrack deletes every IPv4 conntrack entry of the namespace, as
// `conntrack -F` does: one ctnetlink IPCTNL_MSG_CT_DELETE without a tuple.
func flushConntrack() error {
	const (
		netlinkNetfilter = 12 // NETLINK_NETFILTER
		ctnetlinkDelete  = 1<<8 | 2
	)
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, netlinkNetfilter)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	msg := make([]byte, syscall.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:6], ctnetlinkDelete)
	binary.NativeEndian.PutUint16(msg[6:8], syscall.NLM_F_REQUEST|syscall.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:12], 1) // sequence number
	msg[16] = syscall.AF_INET                   // nfgenmsg: family, version 0, resource id 0
	if err := syscall.Sendto(fd, msg, 0, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := syscall.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	msgs, err := syscall.ParseNetlinkMessage(buf[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type == syscall.NLMSG_ERROR && len(m.Data) >= 4 {
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 {
				return syscall.Errno(-code)
			}
			return nil
		}
	}
	return fmt.Errorf("no netlink acknowledgement")
}

// natRules is the nftables file of the redirect table: the DNAT rules and
// the per-node bypass counters.
func (m *linkMesh) natRules() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "table ip %s\ndelete table ip %s\ntable ip %s {\n", linksTable, linksTable, linksTable)
	n := len(m.c.Nodes)
	for a := 0; a < n; a++ {
		fmt.Fprintf(&b, "\tcounter bypass_n%d {}\n", a+1)
	}
	b.WriteString("\tchain nat_out {\n\t\ttype nat hook output priority -100; policy accept;\n")
	for a := 0; a < n; a++ {
		for d := 0; d < n; d++ {
			if a == d {
				continue
			}
			hp, rp, gp, _ := nodePorts(m.c.Nodes[d])
			gid := GroupBase + a + 1
			fmt.Fprintf(&b, "\t\tmeta skgid %d ip daddr %s tcp dport { %s, %s, %s } dnat to %s\n",
				gid, m.c.Nodes[d].IP, hp, rp, gp, linkAddr(a, d))
			fmt.Fprintf(&b, "\t\tmeta skgid %d ip daddr %s udp dport %s dnat to %s\n",
				gid, m.c.Nodes[d].IP, gp, linkAddr(a, d))
		}
	}
	b.WriteString("\t}\n\tchain out {\n\t\ttype filter hook output priority 0; policy accept;\n")
	for a := 0; a < n; a++ {
		var others []string
		for d := 0; d < n; d++ {
			if d != a {
				others = append(others, m.c.Nodes[d].IP)
			}
		}
		fmt.Fprintf(&b, "\t\tmeta skgid %d ip daddr { %s } counter name \"bypass_n%d\"\n",
			GroupBase+a+1, strings.Join(others, ", "), a+1)
	}
	b.WriteString("\t}\n}\n")
	return b.Bytes()
}

// nftLoad loads an nftables file atomically.
func nftLoad(rules []byte) error {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = bytes.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func nftDeleteTable(name string) {
	_ = nftLoad([]byte(fmt.Sprintf("table ip %s\ndelete table ip %s\n", name, name)))
}

// Close removes both nftables tables and closes every proxy.
func (m *linkMesh) Close() {
	nftDeleteTable(lossTable)
	nftDeleteTable(linksTable)
	for _, lp := range m.proxies {
		for _, p := range lp.tcp {
			_ = p.Close()
		}
		if lp.udp != nil {
			_ = lp.udp.Close()
		}
	}
}

// each applies fTCP and fUDP to the proxy directions that carry what l.From
// sends to l.To: Forward on link l, Backward on the reverse link.
func (m *linkMesh) each(l Link, fTCP func(*faultproxy.TCPProxy, faultproxy.Direction), fUDP func(*faultproxy.UDPProxy, faultproxy.Direction)) {
	for _, side := range []struct {
		l Link
		d faultproxy.Direction
	}{{l, faultproxy.Forward}, {Link{l.To, l.From}, faultproxy.Backward}} {
		lp := m.proxies[side.l]
		for _, p := range lp.tcp {
			fTCP(p, side.d)
		}
		fUDP(lp.udp, side.d)
	}
}

// Delay delays everything l.From sends to l.To by mean ± jitter.
func (m *linkMesh) Delay(l Link, mean, jitter time.Duration) {
	m.each(l, func(p *faultproxy.TCPProxy, d faultproxy.Direction) { p.Delay(d, mean, jitter) },
		func(p *faultproxy.UDPProxy, d faultproxy.Direction) { p.Delay(d, mean, jitter) })
}

// DelayNode delays every link from and to node k.
func (m *linkMesh) DelayNode(k int, mean, jitter time.Duration) {
	for o := range m.c.Nodes {
		if o != k {
			m.Delay(Link{k, o}, mean, jitter)
			m.Delay(Link{o, k}, mean, jitter)
		}
	}
}

// CutOneWay blackholes what l.From sends to l.To; the other way stays up.
func (m *linkMesh) CutOneWay(l Link) {
	m.each(l, func(p *faultproxy.TCPProxy, d faultproxy.Direction) { p.Cut(d) },
		func(p *faultproxy.UDPProxy, d faultproxy.Direction) { p.Cut(d) })
}

// Loss drops pct percent of the packets l.From sends to l.To, on the legs
// between the nodes and the proxies: a's packets to link a→b's proxies and
// the packets link b→a's proxies relay to b (a's replies).
func (m *linkMesh) Loss(l Link, pct int) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "table ip %s\ndelete table ip %s\ntable ip %s {\n", lossTable, lossTable, lossTable)
	b.WriteString("\tchain out {\n\t\ttype filter hook output priority 10; policy accept;\n")
	fmt.Fprintf(&b, "\t\tip daddr %s numgen random mod 100 < %d counter drop\n", linkAddr(l.From, l.To), pct)
	fmt.Fprintf(&b, "\t\tip saddr %s ip daddr %s numgen random mod 100 < %d counter drop\n",
		linkAddr(l.To, l.From), m.c.Nodes[l.To].IP, pct)
	b.WriteString("\t}\n}\n")
	return nftLoad(b.Bytes())
}

var nftPackets = regexp.MustCompile(`packets (\d+) bytes (\d+)`)

// sumCounters adds up every "packets N" in an nft listing.
func sumCounters(out []byte) uint64 {
	var total uint64
	for _, m := range nftPackets.FindAllSubmatch(out, -1) {
		v, _ := strconv.ParseUint(string(m[1]), 10, 64)
		total += v
	}
	return total
}

// LossDropped returns the packets the loss rules dropped so far (0 when
// no loss table is installed).
func (m *linkMesh) LossDropped() uint64 {
	out, err := exec.Command("nft", "list", "table", "ip", lossTable).CombinedOutput()
	if err != nil {
		return 0
	}
	return sumCounters(out)
}

// Bypassed returns, per node, the packets it sent straight to another
// node's address instead of through the proxies.
func (m *linkMesh) Bypassed() ([]uint64, error) {
	var out []uint64
	for a := range m.c.Nodes {
		b, err := exec.Command("nft", "list", "counter", "ip", linksTable, fmt.Sprintf("bypass_n%d", a+1)).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("nft list counter: %v: %s", err, bytes.TrimSpace(b))
		}
		out = append(out, sumCounters(b))
	}
	return out, nil
}

// Heal removes every proxy fault and the loss table.
func (m *linkMesh) Heal() {
	nftDeleteTable(lossTable)
	for _, lp := range m.proxies {
		for _, p := range lp.tcp {
			p.Heal(faultproxy.Both)
		}
		lp.udp.Heal(faultproxy.Both)
	}
}

// linkBytes is what the proxies carried for one directed link, per
// protocol, and what they dropped.
type linkBytes struct {
	HTTP, Raft, GossipTCP, GossipUDP uint64
	// UDPDropped counts gossip datagrams of the link the proxies dropped
	// (a cut, or a full delay queue).
	UDPDropped uint64
}

func (b linkBytes) total() uint64 { return b.HTTP + b.Raft + b.GossipTCP + b.GossipUDP }

func (b linkBytes) sub(o linkBytes) linkBytes {
	return linkBytes{b.HTTP - o.HTTP, b.Raft - o.Raft, b.GossipTCP - o.GossipTCP, b.GossipUDP - o.GossipUDP,
		b.UDPDropped - o.UDPDropped}
}

// Bytes returns what l.From sent to l.To through the proxies so far.
func (m *linkMesh) Bytes(l Link) linkBytes {
	var out linkBytes
	for _, side := range []struct {
		l   Link
		fwd bool
	}{{l, true}, {Link{l.To, l.From}, false}} {
		lp := m.proxies[side.l]
		pick := func(s faultproxy.Stats) faultproxy.DirStats {
			if side.fwd {
				return s.Forward
			}
			return s.Backward
		}
		out.HTTP += pick(lp.tcp[0].Stats()).Bytes
		out.Raft += pick(lp.tcp[1].Stats()).Bytes
		out.GossipTCP += pick(lp.tcp[2].Stats()).Bytes
		u := pick(lp.udp.Stats())
		out.GossipUDP += u.Bytes
		out.UDPDropped += u.DroppedPackets
	}
	return out
}

// VerifyCarries waits up to timeout until the proxies carry gossip UDP on
// every directed link and raft traffic from the leader to every follower,
// and until no node has sent anything around them. It fails with what is
// missing otherwise: a redirect that does not carry the traffic would make
// every fault a silent no-op.
func (m *linkMesh) VerifyCarries(leader int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for l := range m.proxies {
			b := m.Bytes(l)
			if b.GossipUDP == 0 {
				missing = append(missing, fmt.Sprintf("n%d->n%d gossip/udp", l.From+1, l.To+1))
			}
			if l.From == leader && b.Raft == 0 {
				missing = append(missing, fmt.Sprintf("n%d->n%d raft/tcp", l.From+1, l.To+1))
			}
		}
		by, err := m.Bypassed()
		if err != nil {
			return err
		}
		for k, v := range by {
			if v > 0 {
				return fmt.Errorf("n%d sent %d packets straight to other nodes, around the proxies: the nat redirect does not catch all node-to-node traffic", k+1, v)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the proxies carried no bytes within %s on: %s", timeout, strings.Join(missing, ", "))
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
}

// probeNAT reports whether an nftables nat output chain with a dnat rule
// can be installed here (the slow-link redirect needs it).
func probeNAT() error {
	const t = "tokend_chaos_probe"
	err := nftLoad([]byte(fmt.Sprintf("table ip %s\ndelete table ip %s\ntable ip %s {\n\tchain o {\n\t\ttype nat hook output priority -100; policy accept;\n"+
		"\t\tmeta skgid %d ip daddr 127.0.0.250 tcp dport 9 dnat to 127.1.250.250\n\t}\n}\n", t, t, t, GroupBase+250)))
	nftDeleteTable(t)
	return err
}
