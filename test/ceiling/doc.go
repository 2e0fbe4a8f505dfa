// Package ceiling measures the reference ceiling for tokend's write path: a
// raw 3-node hashicorp/raft cluster with raft-boltdb/v2 log stores, real TCP
// transports on loopback and a trivial state machine, applying commands of
// the same size as a tokend CreateToken entry from the same number of
// concurrent proposers. tokend's creates/s through the cluster divided by
// this ceiling's applies/s is the write-path efficiency reported by
// `make bench` (issue 5, target ≥ 0.5).
//
// The package deliberately contains no tokend code: it imports only
// hashicorp/raft, raft-boltdb/v2 and go-hclog (its tests may import fsm to
// measure the entry size). The raft timers mirror cluster.DefaultTiming as
// constants instead of importing cluster, so a change there must be copied
// here by hand.
package ceiling
