// Package faultproxy injects network faults into tokend's node-to-node links
// for the chaos harness (issue 4, RELIABILITY.md "Fault injection on one
// machine"). It uses only the standard library and is imported only by tests.
//
// A TCPProxy listens on a loopback address and relays every connection it
// accepts to one target; a UDPProxy does the same for datagrams (memberlist's
// gossip UDP). Each proxy carries one directed link's faults, settable at any
// time while connections are live, separately for the Forward (towards the
// target) and Backward (replies) direction:
//
//   - Cut blackholes a direction. TCP holds the bytes and keeps the
//     connections open (a partition: peers see silence, not a reset) and
//     accepts new connections without dialling the target until healed; UDP
//     loses the datagrams.
//   - Heal removes every fault of a direction; held TCP bytes are delivered
//     in order.
//   - Delay holds data for mean ± jitter (uniform), keeping order.
//   - Drop loses datagrams with a probability. Bytes cannot be removed from
//     inside a TCP stream, so for TCP a dropped chunk closes the connection
//     instead (the peers see a reset and reconnect).
//   - Reset (TCP) closes every live connection.
//
// Randomness comes from SetSeed, so a fault schedule replays for the same
// seed and traffic. Everything is bounded: a TCP connection buffers at most
// 64 chunks of 32 KiB per direction, after which it stops reading and the
// sender is back-pressured (nothing is lost); a UDP direction queues at most
// 1024 delayed datagrams and drops (and counts) the rest. Stats counts bytes
// and packets forwarded and dropped per direction. Close waits for every
// goroutine the proxy started.
//
// # How the chaos harness uses it
//
// Every directed link i→j of an N-node cluster gets its own proxies, one per
// protocol: raft (TCP), gossip (TCP and UDP) and request forwarding (HTTP over
// TCP), each targeting node j's real listener. Node i is configured to reach
// node j only through the proxies of link i→j: the addresses i uses for j
// are the proxy addresses. Network faults are then combinations of per-link
// Cut (or Delay/Drop):
//
//   - isolate the leader L: Cut(Both) on every link L→k and k→L;
//   - majority | minority: Cut(Both) on every link crossing the split;
//   - bridge (A, B | C, D with E seeing both): cut the links crossing between
//     {A, B} and {C, D}, leave E's links up;
//   - one-way loss i→j: Cut(Forward) on link i→j's proxies only (and, for the
//     replies of connections j opened, Cut(Backward) on link j→i's);
//   - flaky node (T7): Delay(Both, 75ms, 50ms) on all of a node's links, then
//     Drop on one link.
//
// Wiring per directed link needs each node to map peer → address itself,
// because both libraries advertise one address per node to everyone:
//
//   - raft: the configuration holds one address per server; per-link routing
//     needs raft's NetworkTransportConfig.ServerAddressProvider (node i maps
//     server j to proxy i→j). Without it, one proxy per destination node
//     (shared by all sources) can still isolate a node, but not cut one link.
//   - memberlist: a ping carries the sender's advertised SourceAddr/Port and
//     the ack is sent there, not to the UDP source, so j's replies to i go to
//     i's advertised gossip address, whichever proxy the ping came through.
//     A UDPProxy sends the target's replies back only to its last client, which
//     covers protocols that reply to the source address. With one advertised
//     address per node, gossip faults are per destination node; per-link gossip
//     cuts need per-source addresses (nftables between 127.0.0.i addresses in a
//     private network namespace), which is the other route issue 4 names.
//
// The proxies relay bytes, so TLS on the transports passes through untouched.
package faultproxy
