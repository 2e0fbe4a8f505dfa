package config

import "time"

// Config is the validated configuration of `tokend server`. Each field
// matches a flag (-node-id ↔ NodeID), a config-file key (node_id) and an env
// variable (TOKEND_NODE_ID). Precedence: flag > env > file > default.
type Config struct {
	NodeID          string        // -node-id; default: hostname-derived or "dev" in dev mode
	DataDir         string        // -data-dir; required unless -dev
	HTTPAddr        string        // -http-addr; default 127.0.0.1:8200
	RaftAddr        string        // -raft-addr; default 127.0.0.1:8201
	GossipAddr      string        // -gossip-addr; default 127.0.0.1:8301
	Join            []string      // -join a,b: gossip addresses to join
	BootstrapExpect int           // -bootstrap-expect; default 1 in dev, else required >= 1
	ClusterKey      []byte        // -cluster-key BASE64 (16, 24 or 32 bytes); nil = no gossip encryption
	MaxStale        time.Duration // -max-stale; default 1s
	LogLevel        string        // -log-level; default info
	Dev             bool          // -dev: single in-memory-dir node, bootstrapped and initialised
	DevRootTokenID  string        // -dev-root-token-id
}
