// Package scale measures tokend with many stored tokens (issue 5): the time
// a restarted node takes to serve its first read, and lookup-self/s and
// creates/s at growing token counts.
//
// Seeding. Creating a million tokens through HTTP takes far too long, so a
// stopped node's state is grown offline, through the same paths a real node
// uses: Seed reads the node's newest raft snapshot from its
// FileSnapshotStore, restores it into an fsm.FSM, applies real CreateToken
// log entries (encoded and applied exactly as raft would) for the extra
// tokens, and writes the result back as a new raft snapshot at the node's
// last log index and term. On restart, raft loads that snapshot (the path a
// node restarted after a snapshot takes) and there is no log left to
// replay. The seeded tokens are realistic (as httpapi creates them through
// auth/token/create: policies ["default", …], 768h TTL, a quarter orphans and
// the rest children, some with meta), and their IDs are known, so the
// benchmarks can use them over HTTP.
//
// The benchmarks run one in-process node (test/inproc: real raft, bolt on
// disk, snapshot store, HTTP on loopback) — see scale_test.go for what is
// measured and how to run it.
package scale
