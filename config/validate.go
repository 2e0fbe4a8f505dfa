package config

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// LogLevels are the accepted -log-level values.
var LogLevels = []string{"trace", "debug", "info", "warn", "error"}

// Validate checks the configuration and returns the first problem as a
// one-line error naming the flag, e.g.
// "invalid config: -bootstrap-expect must be >= 1 (got 0)".
// It does not create anything; see PrepareDataDir.
func (c Config) Validate() error {
	if err := validNodeID(c.NodeID); err != nil {
		return err
	}
	if c.DataDir == "" && !c.Dev {
		return invalid("-data-dir is required (or run with -dev)")
	}
	if c.DataDir != "" {
		if err := creatableDir(c.DataDir); err != nil {
			return err
		}
	}
	addrs := []struct{ flag, v string }{
		{"http-addr", c.HTTPAddr},
		{"raft-addr", c.RaftAddr},
		{"gossip-addr", c.GossipAddr},
	}
	seen := make(map[string]string)
	for _, a := range addrs {
		if err := validAddr("-"+a.flag, a.v); err != nil {
			return err
		}
		if _, port, _ := net.SplitHostPort(a.v); port != "0" {
			if prev, dup := seen[a.v]; dup {
				return invalid("-%s and -%s are both %s", prev, a.flag, a.v)
			}
			seen[a.v] = a.flag
		}
	}
	for _, j := range c.Join {
		if err := validAddr("-join", j); err != nil {
			return err
		}
	}
	switch n := len(c.ClusterKey); n {
	case 0, 16, 24, 32:
	default:
		return invalid("-cluster-key must decode to 16, 24 or 32 bytes (got %d)", n)
	}
	if c.BootstrapExpect < 1 {
		return invalid("-bootstrap-expect must be >= 1 (got %d)", c.BootstrapExpect)
	}
	if c.Dev && c.BootstrapExpect != 1 {
		return invalid("-bootstrap-expect must be 1 with -dev (got %d)", c.BootstrapExpect)
	}
	if c.MaxStale <= 0 {
		return invalid("-max-stale must be > 0 (got %s)", c.MaxStale)
	}
	if !validLevel(c.LogLevel) {
		return invalid("-log-level must be one of trace, debug, info, warn, error (got %q)", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return invalid("-log-format must be text or json (got %q)", c.LogFormat)
	}
	if err := validAuditFile(c.AuditFile); err != nil {
		return err
	}
	if c.AuditFailOpen && c.AuditFile == "" {
		return invalid("-audit-fail-open requires -audit-file")
	}
	if err := c.validClusterTLS(); err != nil {
		return err
	}
	if err := c.validTLS(); err != nil {
		return err
	}
	if err := validRate("rate-limit", c.RateLimit, c.RateLimitBurst); err != nil {
		return err
	}
	if err := validRate("rate-limit-bad-auth", c.RateLimitBadAuth, c.RateLimitBadAuthBurst); err != nil {
		return err
	}
	if c.RateLimitToken < 0 || c.RateLimitToken != c.RateLimitToken {
		return invalid("-rate-limit-token must be >= 0 (got %v)", c.RateLimitToken)
	}
	if c.RateLimitTokenBurst < 0 {
		return invalid("-rate-limit-token-burst must be >= 0 (got %d)", c.RateLimitTokenBurst)
	}
	if c.MaxRequestSize < 0 || (c.MaxRequestSize > 0 && c.MaxRequestSize < minRequestSize) || c.MaxRequestSize > maxRequestSize {
		return invalid("-max-request-size must be between %d and %d bytes, or 0 for the default (got %d)", minRequestSize, maxRequestSize, c.MaxRequestSize)
	}
	if c.DevRootTokenID != "" {
		if !c.Dev {
			return invalid("-dev-root-token-id requires -dev")
		}
		if len(c.DevRootTokenID) > 256 || !printable(c.DevRootTokenID) {
			// The value is a secret: say what is wrong, never echo it.
			return invalid("-dev-root-token-id must be 1-256 printable characters without spaces")
		}
	}
	return c.validTokenHashKey()
}

func validNodeID(id string) error {
	if id == "" {
		return invalid("-node-id must not be empty")
	}
	if len(id) > 128 {
		return invalid("-node-id must be at most 128 characters (got %d)", len(id))
	}
	for _, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return invalid("-node-id may only contain letters, digits, '-', '_' and '.' (got %q)", id)
		}
	}
	return nil
}

// validAddr checks host:port where other nodes can reach host: the address
// is advertised as well as bound, so an empty or unspecified host is
// rejected.
func validAddr(flag, v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return invalid("%s must be host:port (got %q)", flag, v)
	}
	if host == "" {
		return invalid("%s needs a host other nodes can reach (got %q)", flag, v)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return invalid("%s needs a host other nodes can reach, not %s (got %q)", flag, host, v)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return invalid("%s has an invalid port (got %q)", flag, v)
	}
	return nil
}

// creatableDir reports whether dir is a directory or could be created: it
// must not be a file, and its closest existing ancestor must be a directory.
func creatableDir(dir string) error {
	for p := filepath.Clean(dir); ; {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return nil
		case err == nil:
			if p == filepath.Clean(dir) {
				return invalid("-data-dir %q is not a directory", dir)
			}
			return invalid("-data-dir %q cannot be created: %q is not a directory", dir, p)
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return invalid("-data-dir %q: %s", dir, oneLine(err.Error()))
		}
		parent := filepath.Dir(p)
		if parent == p {
			return invalid("-data-dir %q cannot be created", dir)
		}
		p = parent
	}
}

// PrepareDataDir makes sure the data directory exists (created with mode
// 0700 if missing). With -dev and no -data-dir it creates a temporary
// directory, stores it in DataDir and returns a remove function that deletes
// it; otherwise remove does nothing. Errors are one-line "invalid config: …".
func (c *Config) PrepareDataDir() (remove func() error, err error) {
	nothing := func() error { return nil }
	if c.DataDir == "" {
		if !c.Dev {
			return nothing, invalid("-data-dir is required (or run with -dev)")
		}
		dir, err := os.MkdirTemp("", "tokend-dev-")
		if err != nil {
			return nothing, invalid("-data-dir: cannot create a temporary directory: %s", oneLine(err.Error()))
		}
		c.DataDir = dir
		return func() error { return os.RemoveAll(dir) }, nil
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nothing, invalid("-data-dir %q cannot be created: %s", c.DataDir, oneLine(err.Error()))
	}
	return nothing, nil
}

func validLevel(l string) bool {
	for _, v := range LogLevels {
		if l == v {
			return true
		}
	}
	return false
}

func printable(s string) bool {
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return s != ""
}

// validAuditFile checks that the audit log can be created: not a directory,
// and its directory exists (the file itself is opened at start-up).
func validAuditFile(path string) error {
	if path == "" {
		return nil
	}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return invalid("-audit-file %q is a directory", path)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return invalid("-audit-file %q: directory %q: %s", path, dir, oneLine(err.Error()))
	}
	if !fi.IsDir() {
		return invalid("-audit-file %q: %q is not a directory", path, dir)
	}
	return nil
}

// Bounds of -max-request-size: below 1 KiB a policy does not fit; above
// 1 GiB one request could exhaust a node's memory.
const (
	minRequestSize = 1 << 10
	maxRequestSize = 1 << 30
)

// validRate checks a rate limit (-NAME) and its burst (-NAME-burst).
func validRate(name string, rate float64, burst int) error {
	if rate < 0 || rate != rate {
		return invalid("-%s must be >= 0 (got %v)", name, rate)
	}
	if burst < 0 {
		return invalid("-%s-burst must be >= 0 (got %d)", name, burst)
	}
	if rate > 0 && burst < 1 {
		return invalid("-%s-burst must be >= 1 when -%s is set (got %d)", name, name, burst)
	}
	return nil
}
