package config

import (
	"fmt"
	"strings"
	"time"
)

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

	// Fields below were added after the contract was agreed (additive).

	LogFormat  string // -log-format: "text" or "json"; default text with -dev, json otherwise
	ConfigFile string // -config: the HCL/JSON file the settings were read from ("" = none)

	AuditFile     string // -audit-file: audit log (JSON lines, secrets hashed); "" = no audit log
	AuditFailOpen bool   // -audit-fail-open: serve requests that cannot be audited (default: refuse with 500)

	TLSCertFile     string // -tls-cert-file: PEM certificate (chain) of the HTTP API; "" = plain HTTP
	TLSKeyFile      string // -tls-key-file: PEM private key of -tls-cert-file; set both or neither
	TLSClientCAFile string // -tls-client-ca-file: request client certificates and verify those given against this CA
	TLSMinVersion   string // -tls-min-version: "tls12" (default) or "tls13"

	ClusterTLSCertFile string // -cluster-tls-cert-file: this node's cluster certificate (node id in a tokend://node/<id> URI SAN); "" = plain TCP between nodes
	ClusterTLSKeyFile  string // -cluster-tls-key-file: its private key
	ClusterTLSCAFile   string // -cluster-tls-ca-file: the cluster CA every peer's certificate must chain to

	RateLimit             float64 // -rate-limit: requests/s per client address; 0 = off (default)
	RateLimitBurst        int     // -rate-limit-burst: requests at once per client address
	RateLimitBadAuth      float64 // -rate-limit-bad-auth: failed authentications/s per client address; 0 = off
	RateLimitBadAuthBurst int     // -rate-limit-bad-auth-burst: failed authentications at once per client address

	TokenHashKeyFile string // -token-hash-key-file: base64 key of the token-ID HMAC; required unless -dev
	// TokenHashKey is the key read from TokenHashKeyFile by Load (nil with
	// -dev and no file: the server generates one in memory). Never logged.
	TokenHashKey []byte

	RateLimitToken      float64 // -rate-limit-token: requests/s per authenticated token; 0 = off (default)
	RateLimitTokenBurst int     // -rate-limit-token-burst: requests at once per token; 0 = one second's worth

	MaxRequestSize int64 // -max-request-size: request body limit in bytes; 0 = 64 KiB (413 beyond it)
}

// ClusterTLSEnabled reports whether raft and forwarding use mutual TLS.
func (c Config) ClusterTLSEnabled() bool { return c.ClusterTLSCertFile != "" }

// TLSEnabled reports whether the HTTP API is served over TLS.
func (c Config) TLSEnabled() bool { return c.TLSCertFile != "" }

// String renders the configuration for humans and logs. The cluster key is
// never included, only whether one is set.
func (c Config) String() string {
	var b strings.Builder
	b.WriteString("config{")
	for i, kv := range pairs(c.LogFields()) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%v", kv[0], kv[1])
	}
	b.WriteByte('}')
	return b.String()
}

// GoString is String: %#v must not print the cluster key either.
func (c Config) GoString() string { return c.String() }

// LogFields returns the settings as hclog key/value pairs for the start-up
// log line. Secrets are left out: the cluster key appears only as
// gossip_encryption=true/false and the dev root token ID not at all.
func (c Config) LogFields() []any {
	return []any{
		"node_id", c.NodeID,
		"data_dir", c.DataDir,
		"http_addr", c.HTTPAddr,
		"raft_addr", c.RaftAddr,
		"gossip_addr", c.GossipAddr,
		"join", strings.Join(c.Join, ","),
		"bootstrap_expect", c.BootstrapExpect,
		"gossip_encryption", len(c.ClusterKey) > 0,
		"max_stale", c.MaxStale.String(),
		"log_level", c.LogLevel,
		"log_format", c.LogFormat,
		"dev", c.Dev,
		"config_file", c.ConfigFile,
		"audit_file", c.AuditFile,
		"audit_fail_open", c.AuditFailOpen,
		"tls", c.TLSEnabled(),
		"tls_cert_file", c.TLSCertFile,
		"tls_client_ca_file", c.TLSClientCAFile,
		"tls_min_version", c.TLSMinVersion,
		"cluster_tls", c.ClusterTLSEnabled(),
		"cluster_tls_cert_file", c.ClusterTLSCertFile,
		"cluster_tls_ca_file", c.ClusterTLSCAFile,
		"rate_limit", c.RateLimit,
		"rate_limit_burst", c.RateLimitBurst,
		"rate_limit_bad_auth", c.RateLimitBadAuth,
		"rate_limit_bad_auth_burst", c.RateLimitBadAuthBurst,
		"token_hash_key_file", c.TokenHashKeyFile,
		"rate_limit_token", c.RateLimitToken,
		"rate_limit_token_burst", c.RateLimitTokenBurst,
		"max_request_size", c.MaxRequestSize,
	}
}

func pairs(kv []any) [][2]any {
	out := make([][2]any, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, [2]any{kv[i], kv[i+1]})
	}
	return out
}
