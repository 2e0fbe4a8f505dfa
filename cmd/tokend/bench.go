package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// tokend bench is a load generator for the Vault token API. It speaks only
// standard Vault endpoints (auth/token/create, lookup-self, lookup,
// renew-self, revoke), so the same run can be pointed at tokend or at
// Vault. It uses net/http directly (one keep-alive transport sized for -c
// connections per node), not the Vault client, to keep the client's own
// cost out of the numbers. Files: bench.go (flags), bench_run.go (workers),
// bench_report.go (output), bench_hist.go (latency histogram).

// Profiles. Every profile but mixed is also a valid -mix key.
const (
	profCreate       = "create"
	profLookupSelf   = "lookup-self"
	profLookup       = "lookup"
	profRenewSelf    = "renew-self"
	profRevoke       = "revoke"
	profChildCascade = "child-cascade"
	profMixed        = "mixed"
)

// benchProfiles lists the profiles in help order.
var benchProfiles = []string{profCreate, profLookupSelf, profLookup, profRenewSelf, profRevoke, profChildCascade, profMixed}

// defaultMix is the -mix of the mixed profile when none is given.
const defaultMix = "create=10,lookup-self=80,renew-self=5,revoke=5"

// mixShare is one entry of -mix: an operation and its relative weight.
type mixShare struct {
	op     string
	weight int
}

// benchConfig is a validated tokend bench command line.
type benchConfig struct {
	profile     string
	mix         []mixShare // mixed only; weights > 0, in -mix order
	addrs       []string   // base URLs without a trailing slash
	concurrency int
	duration    time.Duration // 0 with -n
	count       int64         // 0 with -d
	prepare     int
	children    int
	token       string
	ttl         durationFlag
	timeout     time.Duration
	format      string
	skipVerify  bool
	// rate caps the operations started per second over all workers; 0 is
	// no cap.
	rate float64
	// cpuProfile is where the CPU profile of the first node during the run
	// is written; "" fetches none.
	cpuProfile string
}

// needsPrepared reports whether the run reads prepared tokens (read
// profiles, or a mix with a read share).
func (c *benchConfig) needsPrepared() bool {
	switch c.profile {
	case profLookupSelf, profLookup, profRenewSelf:
		return true
	case profMixed:
		for _, s := range c.mix {
			if s.op == profLookupSelf || s.op == profLookup || s.op == profRenewSelf {
				return true
			}
		}
	}
	return false
}

// preparedCount is how many tokens are created before the timed run: the
// read pool of read profiles, the victims of revoke, none otherwise.
func (c *benchConfig) preparedCount() int {
	if c.needsPrepared() || c.profile == profRevoke {
		return c.prepare
	}
	return 0
}

const benchHelp = `Generates load against a tokend (or Vault) cluster through the standard
Vault token endpoints, then prints ops/s, latency percentiles and errors by
HTTP status. It always stops by itself: after -d (default 10s) or -n
operations, or at the first Ctrl-C (which still prints the report).

Profiles (-profile):
  create          POST auth/token/create (default policy, -ttl)
  lookup-self     GET auth/token/lookup-self with a prepared token
  lookup          POST auth/token/lookup {token} with -token
  renew-self      POST auth/token/renew-self with a prepared token
  revoke          POST auth/token/revoke {token}: revokes prepared tokens, then
                  creates each victim first (untimed, counted as setup)
  child-cascade   one op = create a parent, -children children with the
                  parent's token, then revoke the parent (cascade)
  mixed           a weighted mix (-mix); reads use prepared tokens, revokes
                  take tokens created by the run's creates

Requests rotate over -addr per worker (round-robin), on keep-alive
connections. -rate caps the operations started per second over all
workers (a steady background load: -rate 200 -c 8); without it every
worker sends its next request as soon as the last one is answered.
-cpuprofile FILE downloads GET /v1/sys/pprof/profile?seconds=<-d> from the
first -addr node with -token while the timed run goes on, and writes it
(Go's pprof format: go tool pprof FILE) once the run is over.
-prepare tokens are created (concurrently, untimed) before a read profile
starts, and the run waits until every node can see them.
-token defaults to TOKEND_TOKEN, else VAULT_TOKEN; -addr to TOKEND_ADDR,
else VAULT_ADDR, else ` + defaultAddr + `.
Exit codes: 0 the run completed (errors, if any, are in the report);
1 bad usage; 2 preparing failed, no operation succeeded or the CPU
profile could not be fetched (the report is still printed).`

// parseBenchFlags parses and validates the command line of tokend bench.
// It returns flag.ErrHelp for -h, with the help written to stdout.
func parseBenchFlags(getenv func(string) string, argv []string, stdout io.Writer) (*benchConfig, error) {
	fs := flag.NewFlagSet("tokend bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		c        = &benchConfig{}
		addrs    listFlag
		dur      durationFlag
		timeout  durationFlag
		mix      string
		count    int64
		profile  string
		mixIsSet bool
	)
	c.ttl = durationFlag{d: time.Hour, set: true}
	fs.StringVar(&profile, "profile", profLookupSelf, "workload: "+strings.Join(benchProfiles, ", "))
	fs.StringVar(&mix, "mix", "", "shares of the mixed profile, op=weight,… (default "+defaultMix+"); implies -profile mixed")
	fs.Var(&addrs, "addr", "node API addresses, a comma list or repeated (default: TOKEND_ADDR, VAULT_ADDR or "+defaultAddr+")")
	fs.Var(&addrs, "address", "same as -addr")
	fs.IntVar(&c.concurrency, "c", 64, "concurrent workers (each keeps its connections alive)")
	fs.Var(&dur, "d", "run for this long (default 10s; not with -n)")
	fs.Int64Var(&count, "n", 0, "run this many operations instead of a duration")
	fs.IntVar(&c.prepare, "prepare", 100, "tokens created before read and revoke profiles (untimed)")
	fs.IntVar(&c.children, "children", 10, "children per parent in child-cascade")
	fs.StringVar(&c.token, "token", "", "token making creates, lookups and revokes (default: TOKEND_TOKEN or VAULT_TOKEN)")
	fs.Var(&c.ttl, "ttl", "TTL of the tokens the run creates")
	fs.Var(&timeout, "timeout", "timeout of one HTTP request (default 10s)")
	fs.StringVar(&c.format, "format", "table", "report format: table or json")
	fs.BoolVar(&c.skipVerify, "tls-skip-verify", false, "do not verify the servers' TLS certificates (https addresses)")
	fs.Float64Var(&c.rate, "rate", 0, "cap the operations started per second over all workers (0: as fast as -c allows)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write the first -addr node's CPU profile of the timed run to this file (needs -d and a root token)")

	err := fs.Parse(argv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: tokend bench [flags]\n\n%s\n\nFlags:\n", benchHelp)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return nil, err
	}
	if err != nil {
		return nil, usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q (flags only)", fs.Arg(0))
	}
	profileSet := false
	fs.Visit(func(f *flag.Flag) {
		mixIsSet = mixIsSet || f.Name == "mix"
		profileSet = profileSet || f.Name == "profile"
	})
	switch {
	case mixIsSet && !profileSet:
		profile = profMixed
	case mixIsSet && profile != profMixed:
		return nil, usagef("-mix is only for -profile mixed (got -profile %s)", profile)
	}
	if !validProfile(profile) {
		return nil, usagef("-profile must be one of %s (got %q)", strings.Join(benchProfiles, ", "), profile)
	}
	c.profile = profile
	if profile == profMixed {
		if !mixIsSet {
			mix = defaultMix
		}
		if c.mix, err = parseMix(mix); err != nil {
			return nil, err
		}
	}

	switch {
	case c.concurrency < 1:
		return nil, usagef("-c must be >= 1 (got %d)", c.concurrency)
	case count < 0:
		return nil, usagef("-n must be >= 0 (got %d)", count)
	case count > 0 && dur.set:
		return nil, usagef("-n and -d are exclusive: give a count or a duration")
	case dur.set && dur.d <= 0:
		return nil, usagef("-d must be > 0")
	case c.prepare < 0:
		return nil, usagef("-prepare must be >= 0 (got %d)", c.prepare)
	case c.children < 1:
		return nil, usagef("-children must be >= 1 (got %d)", c.children)
	case timeout.set && timeout.d <= 0:
		return nil, usagef("-timeout must be > 0")
	case c.format != "table" && c.format != "json":
		return nil, usagef("-format must be table or json (got %q)", c.format)
	case c.rate < 0 || math.IsNaN(c.rate) || math.IsInf(c.rate, 0):
		return nil, usagef("-rate must be a number of operations per second >= 0 (got %v)", c.rate)
	case c.cpuProfile != "" && count > 0:
		return nil, usagef("-cpuprofile needs a duration (-d): the profile covers a fixed number of seconds")
	}
	c.count = count
	if count == 0 {
		c.duration = 10 * time.Second
		if dur.set {
			c.duration = dur.d
		}
	}
	if c.cpuProfile != "" && c.duration < time.Second {
		return nil, usagef("-cpuprofile needs -d of at least 1s (the profile is taken in whole seconds)")
	}
	c.timeout = 10 * time.Second
	if timeout.set {
		c.timeout = timeout.d
	}
	if c.needsPrepared() && c.prepare < 1 {
		return nil, usagef("-prepare must be >= 1 for profile %s (its reads need tokens)", profile)
	}

	if len(addrs) == 0 {
		addrs = listFlag{firstNonEmpty(getenv("TOKEND_ADDR"), getenv("VAULT_ADDR"), defaultAddr)}
	}
	for _, a := range addrs {
		u, err := normalizeAddr(a)
		if err != nil {
			return nil, err
		}
		c.addrs = append(c.addrs, u)
	}
	if c.token == "" {
		c.token = firstNonEmpty(getenv("TOKEND_TOKEN"), getenv("VAULT_TOKEN"))
	}
	if c.token == "" {
		return nil, usagef("no token: set -token, TOKEND_TOKEN or VAULT_TOKEN")
	}
	if !c.skipVerify {
		c.skipVerify = parseBoolLooseEnv(firstNonEmpty(getenv("TOKEND_SKIP_VERIFY"), getenv("VAULT_SKIP_VERIFY")))
	}
	return c, nil
}

func validProfile(p string) bool {
	for _, q := range benchProfiles {
		if p == q {
			return true
		}
	}
	return false
}

// parseMix parses "op=weight,…". Weights are relative integers (they need
// not add up to 100); zero weights are dropped, at least one must be
// positive, and an operation may appear once.
func parseMix(s string) ([]mixShare, error) {
	var out []mixShare
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		op, w, ok := strings.Cut(part, "=")
		op = strings.TrimSpace(op)
		if !ok {
			return nil, usagef("-mix: expected op=weight, got %q", part)
		}
		if op == profMixed || !validProfile(op) {
			return nil, usagef("-mix: unknown operation %q (one of %s)", op, strings.Join(benchProfiles[:len(benchProfiles)-1], ", "))
		}
		if seen[op] {
			return nil, usagef("-mix: %s given twice", op)
		}
		seen[op] = true
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 0 {
			return nil, usagef("-mix: weight of %s must be a whole number >= 0 (got %q)", op, w)
		}
		if n > 0 {
			out = append(out, mixShare{op: op, weight: n})
		}
	}
	if len(out) == 0 {
		return nil, usagef("-mix: no operation with a positive weight in %q", s)
	}
	return out, nil
}

// mixString renders shares back as op=weight,… sorted by operation.
func mixString(m []mixShare) string {
	parts := make([]string, len(m))
	for i, s := range m {
		parts[i] = s.op + "=" + strconv.Itoa(s.weight)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// normalizeAddr turns "host:port" or "http://host:port/" into a base URL.
func normalizeAddr(a string) (string, error) {
	if !strings.Contains(a, "://") {
		a = "http://" + a
	}
	u, err := url.Parse(a)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", usagef("-addr: not an http(s) address: %q", a)
	}
	return strings.TrimSuffix(u.Scheme+"://"+u.Host+u.Path, "/"), nil
}

func parseBoolLooseEnv(v string) bool {
	b, err := strconv.ParseBool(v)
	return err == nil && b
}

// isTerminal reports whether w is a character device (a terminal), where
// the live progress line belongs.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// benchCmd is tokend bench.
func benchCmd(e *env, argv []string) int {
	cfg, err := parseBenchFlags(e.getenv, argv, e.stdout)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "tokend bench: %v\n(run \"tokend bench -h\" for help)\n", err)
		return exitFailure
	}
	var profFile *os.File
	if cfg.cpuProfile != "" {
		// Created before the run, so a bad path fails at once, not after it.
		if profFile, err = os.OpenFile(cfg.cpuProfile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600); err != nil {
			fmt.Fprintf(e.stderr, "tokend bench: -cpuprofile: %v\n", err)
			return exitFailure
		}
	}
	progress := cfg.format == "table" && isTerminal(e.stdout)
	rep, err := runBench(e.ctx, cfg, progressWriter(progress, e.stdout))
	if profFile != nil {
		if err == nil && rep.profileErr == nil {
			_, werr := profFile.Write(rep.profile)
			rep.profileErr = errors.Join(werr, profFile.Close())
		} else {
			profFile.Close()
		}
		if err != nil || rep.profileErr != nil {
			// Never leave an empty or partial file that looks like a profile.
			os.Remove(cfg.cpuProfile)
		}
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "tokend bench: %v\n", err)
		return exitAPIError
	}
	if err := rep.write(e.stdout, cfg.format); err != nil {
		fmt.Fprintf(e.stderr, "tokend bench: %v\n", err)
		return exitFailure
	}
	if rep.Ops == 0 && rep.Errors > 0 {
		fmt.Fprintln(e.stderr, "tokend bench: no operation succeeded")
		return exitAPIError
	}
	if rep.profileErr != nil {
		fmt.Fprintf(e.stderr, "tokend bench: -cpuprofile: %v\n", rep.profileErr)
		return exitAPIError
	}
	return exitOK
}

// progressWriter is where the live line goes: w on a terminal, else nowhere.
func progressWriter(on bool, w io.Writer) io.Writer {
	if on {
		return w
	}
	return nil
}
