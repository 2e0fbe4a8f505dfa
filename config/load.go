package config

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	"github.com/hashicorp/hcl/hcl/token"
)

// Defaults of the settings that have one independent of -dev.
const (
	DefaultHTTPAddr   = "127.0.0.1:8200"
	DefaultRaftAddr   = "127.0.0.1:8201"
	DefaultGossipAddr = "127.0.0.1:8301"
	DefaultMaxStale   = time.Second
	DefaultLogLevel   = "info"
	// DefaultTLSMinVersion is the oldest TLS version the HTTP API accepts.
	DefaultTLSMinVersion = "tls12"
	// Rate limits per client address (see -rate-limit*): requests are not
	// limited by default; failed authentications are, far above what a
	// client with a valid token ever produces.
	DefaultRateLimit             = 0
	DefaultRateLimitBurst        = 4000
	DefaultRateLimitBadAuth      = 20
	DefaultRateLimitBadAuthBurst = 100
	// DevNodeID is the node ID of a -dev node unless -node-id is given.
	DevNodeID = "dev"
)

// EnvPrefix prefixes every environment variable that sets a server flag:
// -data-dir ↔ TOKEND_DATA_DIR.
const EnvPrefix = "TOKEND_"

// configFlag names the flag (and TOKEND_CONFIG) that points at the config file.
const configFlag = "config"

// option is one setting: a flag, an env variable and a file key at once.
// Every layer hands the setting over as text and set parses it, so a value
// means the same thing wherever it comes from.
type option struct {
	name   string // flag name without the dash: "bootstrap-expect"
	arg    string // placeholder in the usage text: "N"
	usage  string
	def    string // default as shown in the usage text
	isBool bool
	isList bool // repeated flags and file lists accumulate, comma separated
	set    func(c *Config, v string) error
	noFile bool // not settable from the config file (only -config itself)
}

// fileKey is the option's key in the config file: snake_case of the flag.
func (o option) fileKey() string { return strings.ReplaceAll(o.name, "-", "_") }

// envKey is the option's environment variable: TOKEND_ + UPPER_SNAKE flag.
func (o option) envKey() string { return EnvPrefix + strings.ToUpper(o.fileKey()) }

// options is the table of every `tokend server` setting, in usage order.
var options = []option{
	{name: configFlag, arg: "FILE", noFile: true,
		usage: "read settings from an HCL or JSON file (keys are the flag names in snake_case)",
		set:   func(c *Config, v string) error { c.ConfigFile = v; return nil }},
	{name: "node-id", arg: "ID", def: `hostname; "dev" with -dev`,
		usage: "unique, stable name of this node in raft and gossip",
		set:   func(c *Config, v string) error { c.NodeID = v; return nil }},
	{name: "data-dir", arg: "DIR", def: "required; a temporary directory with -dev",
		usage: "directory for the raft log, stable store and snapshots (created 0700 if missing)",
		set:   func(c *Config, v string) error { c.DataDir = v; return nil }},
	{name: "http-addr", arg: "HOST:PORT", def: DefaultHTTPAddr,
		usage: "address of the HTTP API; also advertised to the other nodes for forwarding",
		set:   func(c *Config, v string) error { c.HTTPAddr = v; return nil }},
	{name: "raft-addr", arg: "HOST:PORT", def: DefaultRaftAddr,
		usage: "address of the raft transport (bound and advertised)",
		set:   func(c *Config, v string) error { c.RaftAddr = v; return nil }},
	{name: "gossip-addr", arg: "HOST:PORT", def: DefaultGossipAddr,
		usage: "address of memberlist gossip, TCP and UDP (bound and advertised)",
		set:   func(c *Config, v string) error { c.GossipAddr = v; return nil }},
	{name: "join", arg: "ADDR,ADDR", def: "none", isList: true,
		usage: "gossip addresses of cluster members to join; retried until one answers",
		set:   func(c *Config, v string) error { c.Join = splitList(v); return nil }},
	{name: "bootstrap-expect", arg: "N", def: "required; 1 with -dev",
		usage: "size of the initial cluster: a fresh cluster bootstraps once this many servers see each other (use the same value on every server, also on nodes that join later)",
		set: func(c *Config, v string) error {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("not an integer: %q", v)
			}
			c.BootstrapExpect = n
			return nil
		}},
	{name: "cluster-key", arg: "BASE64", def: "none (gossip unencrypted)",
		usage: "base64 of a 16, 24 or 32 byte key that encrypts gossip (same on every node)",
		set: func(c *Config, v string) error {
			v = strings.TrimSpace(v)
			if v == "" {
				c.ClusterKey = nil
				return nil
			}
			k, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				// Never echo the value: it is a secret.
				return errors.New("not valid base64")
			}
			c.ClusterKey = k
			return nil
		}},
	{name: "max-stale", arg: "DURATION", def: DefaultMaxStale.String(),
		usage: "read-lease length: a follower cut off from the leader this long stops answering reads from its own state",
		set: func(c *Config, v string) error {
			d, err := parseDuration(v)
			if err != nil {
				return err
			}
			c.MaxStale = d
			return nil
		}},
	{name: "log-level", arg: "LEVEL", def: DefaultLogLevel,
		usage: "trace, debug, info, warn or error",
		set:   func(c *Config, v string) error { c.LogLevel = strings.ToLower(strings.TrimSpace(v)); return nil }},
	{name: "log-format", arg: "FORMAT", def: "json; text with -dev",
		usage: "text or json",
		set:   func(c *Config, v string) error { c.LogFormat = strings.ToLower(strings.TrimSpace(v)); return nil }},
	{name: "dev", isBool: true, def: "false",
		usage: "run one throw-away node: bootstrapped, initialised, root token printed on stdout",
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("not a boolean: %q", v)
			}
			c.Dev = b
			return nil
		}},
	{name: "dev-root-token-id", arg: "ID", def: "random hvs. token",
		usage: "with -dev: use this ID for the root token",
		set:   func(c *Config, v string) error { c.DevRootTokenID = v; return nil }},
	{name: "audit-file", arg: "PATH", def: "none (no audit log)",
		usage: "append an audit log here: one JSON line per request and per response, every token and accessor as hmac-sha256:<hex> (see sys/audit-hash); created 0600; reopened on SIGHUP for log rotation",
		set:   func(c *Config, v string) error { c.AuditFile = strings.TrimSpace(v); return nil }},
	{name: "audit-fail-open", isBool: true, def: "false",
		usage: "when an audit entry cannot be written, serve the request anyway (logged at error); by default such a request fails with 500 before it runs",
		set: func(c *Config, v string) error {
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return fmt.Errorf("not a boolean: %q", v)
			}
			c.AuditFailOpen = b
			return nil
		}},
	{name: "tls-cert-file", arg: "PATH", def: "none (plain HTTP)",
		usage: "serve the HTTP API over TLS with this PEM certificate (leaf first, then intermediates); needs -tls-key-file; reloaded on SIGHUP",
		set:   func(c *Config, v string) error { c.TLSCertFile = strings.TrimSpace(v); return nil }},
	{name: "tls-key-file", arg: "PATH", def: "none",
		usage: "PEM private key of -tls-cert-file; reloaded on SIGHUP",
		set:   func(c *Config, v string) error { c.TLSKeyFile = strings.TrimSpace(v); return nil }},
	{name: "tls-client-ca-file", arg: "PATH", def: "none (no client certificates requested)",
		usage: "request client certificates and reject a connection whose certificate does not verify against this PEM CA bundle; clients without a certificate are still served (authorisation is by token)",
		set:   func(c *Config, v string) error { c.TLSClientCAFile = strings.TrimSpace(v); return nil }},
	{name: "tls-min-version", arg: "VERSION", def: DefaultTLSMinVersion,
		usage: "oldest TLS version accepted: tls12 or tls13",
		set:   func(c *Config, v string) error { c.TLSMinVersion = strings.ToLower(strings.TrimSpace(v)); return nil }},
	{name: "cluster-tls-cert-file", arg: "PATH", def: "none (plain TCP between nodes)",
		usage: "run raft, forwarding and lease grants over mutual TLS with this PEM certificate; it must name this node in a tokend://node/<node-id> URI SAN (tokend operator gen-certs makes one); needs -cluster-tls-key-file and -cluster-tls-ca-file; reloaded on SIGHUP",
		set:   func(c *Config, v string) error { c.ClusterTLSCertFile = strings.TrimSpace(v); return nil }},
	{name: "cluster-tls-key-file", arg: "PATH", def: "none",
		usage: "PEM private key of -cluster-tls-cert-file; reloaded on SIGHUP",
		set:   func(c *Config, v string) error { c.ClusterTLSKeyFile = strings.TrimSpace(v); return nil }},
	{name: "cluster-tls-ca-file", arg: "PATH", def: "none",
		usage: "PEM bundle of the cluster CA: a peer must present a certificate from it naming a node of the cluster; reloaded on SIGHUP",
		set:   func(c *Config, v string) error { c.ClusterTLSCAFile = strings.TrimSpace(v); return nil }},
	{name: "token-hash-key-file", arg: "PATH", def: "required; a random in-memory key with -dev",
		usage: "file holding the base64 of 32-64 random bytes (mode 0600, outside -data-dir, the same on every node): token IDs are stored only as HMAC-SHA256 under this key, which is never written to the data dir; create one with `tokend operator keygen -bytes 32`",
		set:   func(c *Config, v string) error { c.TokenHashKeyFile = strings.TrimSpace(v); return nil }},
	{name: "rate-limit", arg: "N", def: "0 (off)",
		usage: "requests per second allowed from one client address (token bucket of -rate-limit-burst); more get 429 with Retry-After; 0 = no limit; sys/health is exempt",
		set:   func(c *Config, v string) error { return setRate(&c.RateLimit, v) }},
	{name: "rate-limit-burst", arg: "N", def: strconv.Itoa(DefaultRateLimitBurst),
		usage: "requests one client address may send at once before -rate-limit applies",
		set:   func(c *Config, v string) error { return setInt(&c.RateLimitBurst, v) }},
	{name: "rate-limit-bad-auth", arg: "N", def: strconv.Itoa(DefaultRateLimitBadAuth),
		usage: "failed authentications (403 invalid token) per second allowed from one client address; once -rate-limit-bad-auth-burst is used up, every request from that address gets 429 with Retry-After until the budget refills; keyed by address, so changing the token does not help; 0 = no limit",
		set:   func(c *Config, v string) error { return setRate(&c.RateLimitBadAuth, v) }},
	{name: "rate-limit-bad-auth-burst", arg: "N", def: strconv.Itoa(DefaultRateLimitBadAuthBurst),
		usage: "failed authentications one client address may make at once before -rate-limit-bad-auth applies",
		set:   func(c *Config, v string) error { return setInt(&c.RateLimitBadAuthBurst, v) }},
	{name: "rate-limit-token", arg: "N", def: "0 (off)",
		usage: "requests per second allowed with one token (keyed by the token's accessor, counted on the node that authenticates the request: the leader for a forwarded one); more get 429 with Retry-After; 0 = no limit",
		set:   func(c *Config, v string) error { return setRate(&c.RateLimitToken, v) }},
	{name: "rate-limit-token-burst", arg: "N", def: "one second's worth of -rate-limit-token",
		usage: "requests one token may make at once before -rate-limit-token applies",
		set:   func(c *Config, v string) error { return setInt(&c.RateLimitTokenBurst, v) }},
	{name: "max-request-size", arg: "BYTES", def: "65536 (64 KiB)",
		usage: "largest request body accepted, in bytes (Vault's max_request_size); a larger one gets 413 and the connection is closed",
		set: func(c *Config, v string) error {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return fmt.Errorf("not an integer: %q", v)
			}
			c.MaxRequestSize = n
			return nil
		}},
}

// setRate parses a non-negative, finite rate per second.
func setRate(dst *float64, v string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("not a number: %q", v)
	}
	*dst = f
	return nil
}

// setInt parses an integer.
func setInt(dst *int, v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("not an integer: %q", v)
	}
	*dst = n
	return nil
}

// origin says where a raw value came from, for error messages.
type origin struct {
	value string
	from  string // "flag", "env TOKEND_X", "file f.hcl"
}

// hostnameFunc is os.Hostname; tests replace it.
var hostnameFunc = os.Hostname

// Load builds the server configuration from command-line args (without the
// "server" subcommand), the environment (through getenv) and the -config
// file, applies the defaults and validates the result. Precedence is
// flag > env > file > default.
//
// Every error is one line starting with "invalid config: ". For -h/-help it
// returns an error that wraps flag.ErrHelp; print Usage then.
func Load(args []string, getenv func(string) string) (Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	raw, err := collect(args, getenv)
	if err != nil {
		return Config{}, err
	}
	c, err := build(raw)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	if c.TokenHashKeyFile != "" {
		if c.TokenHashKey, err = ReadTokenHashKey(c.TokenHashKeyFile); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// collect gathers the raw text of every option from the three layers,
// keeping the one with the highest precedence.
func collect(args []string, getenv func(string) string) (map[string]origin, error) {
	flags, err := parseFlags(args)
	if err != nil {
		return nil, err
	}
	raw := make(map[string]origin)

	// The file is named by -config or TOKEND_CONFIG.
	file := ""
	if v, ok := flags[configFlag]; ok {
		file = v
	} else if v := getenv(EnvPrefix + "CONFIG"); v != "" {
		file = v
	}
	if file != "" {
		fileVals, err := readFile(file)
		if err != nil {
			return nil, err
		}
		for k, v := range fileVals {
			raw[k] = origin{value: v, from: "file " + file}
		}
		raw[configFlag] = origin{value: file, from: "flag"}
	}
	for _, o := range options {
		if v := getenv(o.envKey()); v != "" {
			raw[o.name] = origin{value: v, from: "env " + o.envKey()}
		}
	}
	for name, v := range flags {
		raw[name] = origin{value: v, from: "flag"}
	}
	return raw, nil
}

// parseFlags parses args into the raw text of each flag that was given.
func parseFlags(args []string) (map[string]string, error) {
	fs := flag.NewFlagSet("tokend server", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned as one line; -h is the caller's job
	given := make(map[string]string)
	for _, o := range options {
		fs.Var(&flagValue{opt: o, given: given}, o.name, o.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, fmt.Errorf("invalid config: help requested: %w", flag.ErrHelp)
		}
		return nil, invalid("%s", err)
	}
	if fs.NArg() > 0 {
		return nil, invalid("unexpected argument %q (flags only; see tokend server -h)", fs.Arg(0))
	}
	return given, nil
}

// flagValue records the text of a flag as given; parsing happens in build so
// that flags, env and file share one code path.
type flagValue struct {
	opt   option
	given map[string]string
}

func (f *flagValue) String() string {
	if f == nil || f.given == nil {
		return ""
	}
	return f.given[f.opt.name]
}

func (f *flagValue) Set(v string) error {
	if old, ok := f.given[f.opt.name]; ok && f.opt.isList && old != "" {
		v = old + "," + v
	}
	if f.opt.isBool {
		// Check here so "-dev=maybe" fails like the flag package would.
		if _, err := strconv.ParseBool(v); err != nil {
			return errors.New("not a boolean")
		}
	}
	f.given[f.opt.name] = v
	return nil
}

// IsBoolFlag lets boolean options be given without a value (-dev).
func (f *flagValue) IsBoolFlag() bool { return f.opt.isBool }

// build applies defaults, then every raw value.
func build(raw map[string]origin) (Config, error) {
	var c Config
	// -dev decides several defaults, so it is resolved first.
	if o, ok := raw["dev"]; ok {
		if err := lookup("dev").set(&c, o.value); err != nil {
			return Config{}, invalid("-dev: %v (from %s)", err, o.from)
		}
	}
	c.HTTPAddr = DefaultHTTPAddr
	c.RaftAddr = DefaultRaftAddr
	c.GossipAddr = DefaultGossipAddr
	c.MaxStale = DefaultMaxStale
	c.LogLevel = DefaultLogLevel
	c.TLSMinVersion = DefaultTLSMinVersion
	c.RateLimit = DefaultRateLimit
	c.RateLimitBurst = DefaultRateLimitBurst
	c.RateLimitBadAuth = DefaultRateLimitBadAuth
	c.RateLimitBadAuthBurst = DefaultRateLimitBadAuthBurst
	if c.Dev {
		// A dev node is a cluster of one. Without -dev there is no default:
		// 1 on a node meant to join others would bootstrap a split cluster.
		c.BootstrapExpect = 1
		c.NodeID = DevNodeID
		c.LogFormat = "text"
	} else {
		c.LogFormat = "json"
	}
	for _, o := range options {
		r, ok := raw[o.name]
		if !ok {
			continue
		}
		if err := o.set(&c, r.value); err != nil {
			return Config{}, invalid("-%s: %v (from %s)", o.name, err, r.from)
		}
	}
	if c.NodeID == "" && !c.Dev {
		h, err := hostnameFunc()
		if err != nil || h == "" {
			return Config{}, invalid("-node-id is not set and the hostname is unknown")
		}
		c.NodeID = h
	}
	return c, nil
}

func lookup(name string) option {
	for _, o := range options {
		if o.name == name {
			return o
		}
	}
	panic("config: unknown option " + name)
}

// readFile parses an HCL or JSON config file into raw values keyed by flag
// name. Unknown keys, nested blocks and repeated keys are errors.
func readFile(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, invalid("-config: %s", oneLine(err.Error()))
	}
	f, err := hcl.ParseBytes(b)
	if err != nil {
		return nil, invalid("%s: %s", path, oneLine(err.Error()))
	}
	list, ok := f.Node.(*ast.ObjectList)
	if !ok {
		return nil, invalid("%s: expected key = value settings at the top level", path)
	}
	byKey := make(map[string]option)
	for _, o := range options {
		if !o.noFile {
			byKey[o.fileKey()] = o
		}
	}
	out := make(map[string]string)
	for _, item := range list.Items {
		if len(item.Keys) != 1 {
			return nil, invalid("%s: %s: nested blocks are not supported", path, keyName(item))
		}
		key := keyName(item)
		o, ok := byKey[key]
		if !ok {
			return nil, invalid("%s: unknown key %q (known keys: %s)", path, key, knownKeys())
		}
		if _, dup := out[o.name]; dup {
			return nil, invalid("%s: key %q is set twice", path, key)
		}
		v, err := literal(item.Val, o.isList)
		if err != nil {
			return nil, invalid("%s: %s: %v", path, key, err)
		}
		out[o.name] = v
	}
	return out, nil
}

func keyName(item *ast.ObjectItem) string {
	if len(item.Keys) == 0 {
		return "?"
	}
	if s, ok := item.Keys[0].Token.Value().(string); ok {
		return s
	}
	return item.Keys[0].Token.Text
}

// literal renders a file value as the text a flag would carry.
func literal(n ast.Node, list bool) (string, error) {
	switch v := n.(type) {
	case *ast.LiteralType:
		return tokenText(v.Token), nil
	case *ast.ListType:
		if !list {
			return "", errors.New("expected a single value, got a list")
		}
		parts := make([]string, 0, len(v.List))
		for _, e := range v.List {
			lit, ok := e.(*ast.LiteralType)
			if !ok || lit.Token.Type != token.STRING {
				return "", errors.New("expected a list of strings")
			}
			parts = append(parts, tokenText(lit.Token))
		}
		return strings.Join(parts, ","), nil
	default:
		return "", errors.New("expected a string, number, boolean or list")
	}
}

// tokenText is the value of a literal as text. Numbers and booleans use the
// source text: hcl's Token.Value panics on an out-of-range number.
func tokenText(t token.Token) string {
	switch t.Type {
	case token.STRING, token.HEREDOC:
		if s, ok := t.Value().(string); ok {
			return s
		}
	}
	return t.Text
}

func knownKeys() string {
	var ks []string
	for _, o := range options {
		if !o.noFile {
			ks = append(ks, o.fileKey())
		}
	}
	sort.Strings(ks)
	return strings.Join(ks, ", ")
}

// Usage writes the help text of `tokend server` with every flag, its env
// variable, its file key and its default.
func Usage(w io.Writer) {
	fmt.Fprint(w, `Usage: tokend server [flags]

Runs one tokend node. Every flag can also be set in the environment
(TOKEND_<FLAG>, e.g. TOKEND_DATA_DIR) and in the -config file (HCL or JSON,
keys in snake_case, e.g. data_dir = "/var/lib/tokend"). A flag beats the
environment, which beats the file, which beats the default.

Flags:
`)
	for _, o := range options {
		name := "-" + o.name
		if o.arg != "" {
			name += " " + o.arg
		}
		fmt.Fprintf(w, "  %s\n        %s\n", name, o.usage)
		var where []string
		where = append(where, "env "+o.envKey())
		if !o.noFile {
			where = append(where, "file key "+o.fileKey())
		}
		if o.def != "" {
			where = append(where, "default: "+o.def)
		}
		fmt.Fprintf(w, "        (%s)\n", strings.Join(where, "; "))
	}
}

// splitList splits "a, b,,c" into [a b c].
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseDuration accepts Go durations ("1500ms", "2s") and bare integers as
// seconds, the way Vault reads durations.
func parseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(time.Duration(1<<63-1)/time.Second) || n < -int64(time.Duration(1<<63-1)/time.Second) {
			return 0, fmt.Errorf("duration out of range: %q", v)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q", v)
	}
	return d, nil
}

// invalid formats a one-line configuration error.
func invalid(format string, args ...any) error {
	return errors.New("invalid config: " + oneLine(fmt.Sprintf(format, args...)))
}

// oneLine keeps an error message on one line (hcl and os errors may span
// several).
func oneLine(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s))
}
