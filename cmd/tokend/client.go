package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// defaultAddr is where client commands go without TOKEND_ADDR/VAULT_ADDR.
const defaultAddr = "http://127.0.0.1:8200"

// clientFlags are the flags every client command has.
type clientFlags struct {
	address string
	format  string
	field   string // only registered where a single value makes sense
}

// usageError is a mistake on the command line (exit 1, not 2).
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// clientCmd parses the flags of one client command (also after positional
// arguments) and runs body with a ready API client. It owns error
// reporting and exit codes.
type clientCmd struct {
	name     string // "token create"
	args     string // positional synopsis: "[TOKEN]"
	help     string
	hasField bool
	maxArgs  int
	flags    func(fs *flag.FlagSet)
	body     func(e *env, c *api.Client, cf clientFlags, args []string) error
}

func (cc clientCmd) run(e *env, argv []string) int {
	fs := flag.NewFlagSet("tokend "+cc.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var cf clientFlags
	fs.StringVar(&cf.address, "address", "", "tokend API address (default: TOKEND_ADDR, VAULT_ADDR or "+defaultAddr+")")
	fs.StringVar(&cf.format, "format", "table", "output format: table or json")
	if cc.hasField {
		fs.StringVar(&cf.field, "field", "", "print only this field's value")
	}
	if cc.flags != nil {
		cc.flags(fs)
	}
	args, err := parseInterspersed(fs, argv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(e.stdout, "Usage: %s\n\n%s\n\nFlags:\n", strings.TrimSpace("tokend "+cc.name+" [flags] "+cc.args), cc.help)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		return exitOK
	}
	if err == nil && len(args) > cc.maxArgs {
		err = usagef("too many arguments (expected at most %d, got %d)", cc.maxArgs, len(args))
	}
	if err == nil && cf.format != "table" && cf.format != "json" {
		err = usagef("-format must be table or json (got %q)", cf.format)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "tokend %s: %v\n(run \"tokend %s -h\" for help)\n", cc.name, err, cc.name)
		return exitFailure
	}
	// "-" reads a token or accessor from stdin, so it stays out of the
	// process list and shell history.
	for i, a := range args {
		if a == "-" {
			line, err := bufio.NewReader(e.stdin).ReadString('\n')
			if err != nil && line == "" {
				fmt.Fprintf(e.stderr, "tokend %s: reading stdin: %v\n", cc.name, err)
				return exitFailure
			}
			args[i] = strings.TrimSpace(line)
		}
	}
	client, err := newClient(e.getenv, cf.address)
	if err != nil {
		fmt.Fprintf(e.stderr, "tokend %s: %v\n", cc.name, err)
		return exitFailure
	}
	if err := cc.body(e, client, cf, args); err != nil {
		fmt.Fprintf(e.stderr, "tokend %s: %v\n", cc.name, err)
		var ue usageError
		if errors.As(err, &ue) {
			return exitFailure
		}
		return exitAPIError
	}
	return exitOK
}

// parseInterspersed parses flags that may come before or after positional
// arguments (tokend token lookup TOKEN -format=json).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newClient builds a Vault API client for the configured address and token.
func newClient(getenv func(string) string, address string) (*api.Client, error) {
	addr := firstNonEmpty(address, getenv("TOKEND_ADDR"), getenv("VAULT_ADDR"), defaultAddr)
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, cfg.Error
	}
	cfg.Address = addr
	if err := cfg.ConfigureTLS(clientTLS(getenv)); err != nil {
		return nil, fmt.Errorf("TLS client settings: %w", err)
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	// NewClient reads VAULT_TOKEN from the process environment itself; the
	// token must come from getenv with TOKEND_TOKEN first.
	if tok := firstNonEmpty(getenv("TOKEND_TOKEN"), getenv("VAULT_TOKEN")); tok != "" {
		c.SetToken(tok)
	} else {
		c.ClearToken()
	}
	return c, nil
}

// clientTLS reads the client's TLS settings from the environment, each
// TOKEND_ variable before its VAULT_ twin. api.DefaultConfig has already
// applied the VAULT_ variables of the process environment; this applies
// getenv on top, so TOKEND_ aliases (and tests' environments) reach the same
// settings. Unset fields leave the defaults alone.
func clientTLS(getenv func(string) string) *api.TLSConfig {
	get := func(name string) string { return firstNonEmpty(getenv("TOKEND_"+name), getenv("VAULT_"+name)) }
	insecure, _ := strconv.ParseBool(get("SKIP_VERIFY"))
	return &api.TLSConfig{
		CACert:        get("CACERT"),
		CAPath:        get("CAPATH"),
		ClientCert:    get("CLIENT_CERT"),
		ClientKey:     get("CLIENT_KEY"),
		TLSServerName: get("TLS_SERVER_NAME"),
		Insecure:      insecure,
	}
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// listFlag is a repeatable string flag; each value may also be a comma list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l = append(*l, p)
		}
	}
	return nil
}

// kvFlag is a repeatable k=v flag.
type kvFlag map[string]string

func (m kvFlag) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k+"="+m[k])
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func (m kvFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("expected key=value, got %q", v)
	}
	m[k] = val
	return nil
}

// durationFlag takes a Go duration ("1h30m") or whole seconds ("90").
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return f.d.String()
}

func (f *durationFlag) Set(v string) error {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		f.d, f.set = time.Duration(n)*time.Second, true
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("expected a duration like 1h30m or a number of seconds")
	}
	if d < 0 {
		return errors.New("must not be negative")
	}
	f.d, f.set = d, true
	return nil
}

// seconds renders the duration the way the server parses it best: whole
// seconds ("" when unset).
func (f *durationFlag) seconds() string {
	if !f.set {
		return ""
	}
	return strconv.FormatInt(int64(f.d/time.Second), 10) + "s"
}

// --- token create ---------------------------------------------------------

func tokenCreate(e *env, argv []string) int {
	var (
		policies    listFlag
		meta        kvFlag
		ttl, maxTTL durationFlag
		period      durationFlag
		orphan      bool
		noDefault   bool
		renewable   bool
		display     string
		useLimit    int
		id          string
	)
	meta = kvFlag{}
	cc := clientCmd{
		name: "token create", hasField: true,
		help: "Creates a token as a child of the calling token (or an orphan with -orphan).",
		flags: func(fs *flag.FlagSet) {
			fs.Var(&policies, "policy", "policy to attach (repeatable, or a comma list)")
			fs.Var(&ttl, "ttl", "initial TTL (e.g. 1h or 3600)")
			fs.Var(&maxTTL, "explicit-max-ttl", "hard cap on the token's lifetime, renewals included")
			fs.Var(&period, "period", "make a periodic token renewable by this period forever")
			fs.BoolVar(&orphan, "orphan", false, "create the token without a parent")
			fs.BoolVar(&noDefault, "no-default-policy", false, "do not attach the default policy")
			fs.BoolVar(&renewable, "renewable", true, "allow the token to be renewed")
			fs.StringVar(&display, "display-name", "", "display name (prefixed with token-)")
			fs.IntVar(&useLimit, "use-limit", 0, "number of uses before the token is revoked (0 = unlimited)")
			fs.Var(meta, "metadata", "metadata key=value (repeatable)")
			fs.StringVar(&id, "id", "", "token ID to use instead of a random one (root only)")
		},
		body: func(e *env, c *api.Client, cf clientFlags, _ []string) error {
			if useLimit < 0 {
				return usagef("-use-limit must be >= 0 (got %d)", useLimit)
			}
			req := &api.TokenCreateRequest{
				ID:              id,
				Policies:        policies,
				TTL:             ttl.seconds(),
				ExplicitMaxTTL:  maxTTL.seconds(),
				Period:          period.seconds(),
				NoParent:        orphan,
				NoDefaultPolicy: noDefault,
				DisplayName:     display,
				NumUses:         useLimit,
			}
			if len(meta) > 0 {
				req.Metadata = meta
			}
			if !renewable {
				// Only sent when false: absent means Vault's default (true).
				req.Renewable = &renewable
			}
			s, err := c.Auth().Token().CreateWithContext(e.ctx, req)
			if err != nil {
				return fmt.Errorf("create token: %w", err)
			}
			return printAuth(e, cf, s)
		},
	}
	return cc.run(e, argv)
}

// --- token lookup ---------------------------------------------------------

func tokenLookup(e *env, argv []string) int {
	var accessor bool
	cc := clientCmd{
		name: "token lookup", args: "[TOKEN | -accessor ACCESSOR]", hasField: true, maxArgs: 1,
		help: "Shows a token's properties. Without an argument it looks up the calling token.\nAn argument of \"-\" reads it from stdin.",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&accessor, "accessor", false, "treat the argument as an accessor")
		},
		body: func(e *env, c *api.Client, cf clientFlags, args []string) error {
			t := c.Auth().Token()
			var (
				s   *api.Secret
				err error
			)
			switch {
			case accessor && len(args) == 0:
				return usagef("-accessor needs an accessor argument")
			case accessor:
				s, err = t.LookupAccessorWithContext(e.ctx, args[0])
			case len(args) == 0:
				s, err = t.LookupSelfWithContext(e.ctx)
			default:
				s, err = t.LookupWithContext(e.ctx, args[0])
			}
			if err != nil {
				return fmt.Errorf("look up token: %w", err)
			}
			return printData(e, cf, s)
		},
	}
	return cc.run(e, argv)
}

// --- token renew ----------------------------------------------------------

func tokenRenew(e *env, argv []string) int {
	var (
		accessor  bool
		increment durationFlag
	)
	cc := clientCmd{
		name: "token renew", args: "[TOKEN | -accessor ACCESSOR]", hasField: true, maxArgs: 1,
		help: "Renews a token's lease. Without an argument it renews the calling token.",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&accessor, "accessor", false, "treat the argument as an accessor")
			fs.Var(&increment, "increment", "requested TTL from now (default: the token's last TTL)")
		},
		body: func(e *env, c *api.Client, cf clientFlags, args []string) error {
			t := c.Auth().Token()
			inc := int(increment.d / time.Second)
			var (
				s   *api.Secret
				err error
			)
			switch {
			case accessor && len(args) == 0:
				return usagef("-accessor needs an accessor argument")
			case accessor:
				s, err = t.RenewAccessorWithContext(e.ctx, args[0], inc)
			case len(args) == 0:
				s, err = t.RenewSelfWithContext(e.ctx, inc)
			default:
				s, err = t.RenewWithContext(e.ctx, args[0], inc)
			}
			if err != nil {
				return fmt.Errorf("renew token: %w", err)
			}
			return printAuth(e, cf, s)
		},
	}
	return cc.run(e, argv)
}

// --- token revoke ---------------------------------------------------------

func tokenRevoke(e *env, argv []string) int {
	var (
		self, accessor bool
		mode           string
	)
	cc := clientCmd{
		name: "token revoke", args: "[TOKEN | -accessor ACCESSOR | -self]", maxArgs: 1,
		help: "Revokes a token and all its descendants. With -mode=orphan only the token\nis revoked and its children become orphans.",
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&self, "self", false, "revoke the calling token")
			fs.BoolVar(&accessor, "accessor", false, "treat the argument as an accessor")
			fs.StringVar(&mode, "mode", "", `"orphan" revokes only the token, not its children`)
		},
		body: func(e *env, c *api.Client, cf clientFlags, args []string) error {
			t := c.Auth().Token()
			var err error
			switch {
			case mode != "" && mode != "orphan":
				return usagef("-mode must be orphan (got %q)", mode)
			case self && len(args) > 0:
				return usagef("-self takes no argument")
			case self && (accessor || mode != ""):
				return usagef("-self cannot be combined with -accessor or -mode")
			case !self && len(args) == 0:
				return usagef("a token (or -accessor ACCESSOR, or -self) is required")
			case accessor && mode != "":
				return usagef("-mode=orphan cannot be combined with -accessor")
			case self:
				err = t.RevokeSelfWithContext(e.ctx, "")
			case accessor:
				err = t.RevokeAccessorWithContext(e.ctx, args[0])
			case mode == "orphan":
				err = t.RevokeOrphanWithContext(e.ctx, args[0])
			default:
				err = t.RevokeTreeWithContext(e.ctx, args[0])
			}
			if err != nil {
				return fmt.Errorf("revoke token: %w", err)
			}
			if cf.format == "table" {
				fmt.Fprintln(e.stdout, "Success! Revoked token (if it existed)")
			}
			return nil
		},
	}
	return cc.run(e, argv)
}

// --- operator -------------------------------------------------------------

// member is one row of GET /v1/sys/members.
type member struct {
	Name     string `json:"name"`
	Addr     string `json:"address"`
	HTTPAddr string `json:"http_address"`
	RaftAddr string `json:"raft_address"`
	Version  string `json:"version"`
	Status   string `json:"status"`
}

func operatorMembers(e *env, argv []string) int {
	return listCmd(e, argv, listSpec[member]{
		name:   "operator members",
		help:   "Lists the cluster members as this node's gossip sees them.",
		what:   "list members",
		path:   "sys/members",
		key:    "members",
		header: []string{"Node", "Address", "HTTP Address", "Raft Address", "Status", "Version"},
		row: func(m member) []string {
			return []string{m.Name, m.Addr, m.HTTPAddr, m.RaftAddr, m.Status, m.Version}
		},
	})
}

// raftServer is one server of GET /v1/sys/storage/raft/configuration.
type raftServer struct {
	NodeID  string `json:"node_id"`
	Address string `json:"address"`
	Leader  bool   `json:"leader"`
	Voter   bool   `json:"voter"`
}

func operatorRaftListPeers(e *env, argv []string) int {
	return listCmd(e, argv, listSpec[raftServer]{
		name:   "operator raft list-peers",
		help:   "Lists the servers of the raft configuration, as Vault's \"operator raft list-peers\".",
		what:   "list raft peers",
		path:   "sys/storage/raft/configuration",
		key:    "servers",
		header: []string{"Node", "Address", "State", "Voter"},
		row: func(s raftServer) []string {
			state := "follower"
			if s.Leader {
				state = "leader"
			}
			return []string{s.NodeID, s.Address, state, strconv.FormatBool(s.Voter)}
		},
	})
}

// listSpec describes a command that reads one list from the API and prints
// it as a table (or the raw JSON with -format=json).
type listSpec[T any] struct {
	name, help string
	what       string // "list members": prefix of error messages
	path       string // API path to GET
	key        string // name of the list in the response
	header     []string
	row        func(T) []string
}

func listCmd[T any](e *env, argv []string, ls listSpec[T]) int {
	return clientCmd{
		name: ls.name,
		help: ls.help,
		body: func(e *env, c *api.Client, cf clientFlags, _ []string) error {
			raw, err := readJSON(e, c, ls.path)
			if err != nil {
				return fmt.Errorf("%s: %w", ls.what, err)
			}
			if cf.format == "json" {
				return printJSON(e.stdout, raw)
			}
			var items []T
			if err := json.Unmarshal(findList(raw, ls.key), &items); err != nil {
				return fmt.Errorf("%s: unexpected response: %w", ls.what, err)
			}
			rows := make([][]string, 0, len(items))
			for _, it := range items {
				rows = append(rows, ls.row(it))
			}
			return writeTable(e.stdout, ls.header, rows)
		},
	}.run(e, argv)
}

// readJSON GETs a path and returns its body. Any non-2xx is an error.
func readJSON(e *env, c *api.Client, path string) (json.RawMessage, error) {
	resp, err := c.Logical().ReadRawWithContext(e.ctx, path)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, errors.New("empty response")
	}
	if err := resp.Error(); err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	return raw, nil
}

// writeJSON POSTs body as JSON to path and returns the answer's body (at
// most 1 MiB; empty for a 204), or the server's error.
func writeJSON(e *env, c *api.Client, path string, body any) ([]byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	resp, err := c.Logical().WriteRawWithContext(e.ctx, path, b)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err == nil && resp == nil {
		err = errors.New("empty response")
	}
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	return raw, nil
}

// findList finds the list named key in a Vault envelope or a bare object:
// {"data":{"config":{"servers":[…]}}}, {"data":{"members":[…]}},
// {"members":[…]} or a bare […].
func findList(raw json.RawMessage, key string) json.RawMessage {
	t := strings.TrimSpace(string(raw))
	if strings.HasPrefix(t, "[") {
		return raw
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) != nil {
		return raw
	}
	if v, ok := obj[key]; ok {
		return v
	}
	for _, k := range []string{"data", "config"} {
		if v, ok := obj[k]; ok && v != nil && string(v) != "null" {
			return findList(v, key)
		}
	}
	return raw
}
