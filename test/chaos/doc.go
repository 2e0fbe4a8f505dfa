// Package chaos is tokend's real-process fault harness (issue 4,
// RELIABILITY.md T1-T11 and checks C1-C5). It starts 3 or 5 tokend
// processes with their own data dirs, drives them only through the HTTP
// API with a recorded workload, injects faults on a seeded schedule
// (nemeses) and checks the recorded history afterwards.
//
// # Network
//
// Network faults need a private network namespace: the test binary
// re-executes itself under `unshare -n` (as root), brings `lo` up and runs
// node k on 127.0.0.(k+1) (the harness itself sends from 127.0.0.1), so
// nothing touches the host's network. Links are cut with nftables rules in
// that namespace. Sockets on loopback do not bind their source address
// (raft, memberlist TCP and HTTP forwarding dial without one, so the kernel
// picks 127.0.0.1), so a packet's source address does not tell which node
// sent it. Instead every node runs with its own group id (2000+k, still
// uid 0), the output hook marks each new conntrack entry with the group of
// the socket that opened it, and "node a sends to node b" is
//
//	(ct direction original, ct mark a, ip daddr b) or
//	(ct direction reply,    ct mark b, ip saddr a)
//
// which covers both connections a opened to b and replies a sends on
// connections b opened, for TCP and UDP alike. Every partition (isolate,
// majority|minority, bridge, one-way) is a set of such directed pairs,
// installed atomically by replacing one nftables table.
//
// Slow and flaky links (delay, loss, one-way cut; T7) do not need tc netem,
// which this kernel lacks: links.go routes every directed node-to-node link
// through its own test/faultproxy instances with an nftables nat chain.
//
// Where a fault cannot be injected (not root, unshare -n failing, no nft,
// no nftables nat) the run says so loudly with the reason ("FAULT NOT
// INJECTABLE"), does not run the nemeses or scenarios that need it and,
// with CI=true, fails.
//
// # History and checkers
//
// Every operation is an invoke and a completion event (monotonic and wall
// times, serving node, HTTP status) in history.jsonl. A 2xx or a definite
// 4xx is a definite outcome; a timeout, reset, 5xx or 429 is indeterminate.
// The checkers (check.go) are: linearizability of writes and consistent
// reads per token family with porcupine; revocation visibility and bounded
// staleness of default reads; the final ledger (no acknowledged create
// lost, no acknowledged revoke undone, on every node); convergence (every
// node's state digest, sys/storage/fsm-hash, equal at one applied index;
// converge.go); at most one leader per term (from the node logs); no
// panic in any node log; and availability per fault.
//
// # Scenarios
//
// Besides TestChaos's random schedule, RELIABILITY.md T2 (isolated
// leader), T5 (snapshot install under load) and T11 (follower restart) run
// as their own tests on their own clusters (t2_*, t5_*, t11_*_test.go,
// scrun_test.go), with pass criteria and figures of their own.
package chaos
