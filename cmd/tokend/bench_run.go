package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// reqKind is one kind of HTTP request the bench times separately.
type reqKind int

const (
	kindCreate reqKind = iota
	kindLookupSelf
	kindLookup
	kindRenewSelf
	kindRevoke
	kindCreateParent
	kindCreateChild
	kindRevokeCascade
	numKinds
)

var kindNames = [numKinds]string{"create", "lookup-self", "lookup", "renew-self", "revoke", "create-parent", "create-child", "revoke-cascade"}

// The standard Vault endpoints the bench uses.
const (
	pathCreate     = "/v1/auth/token/create"
	pathLookupSelf = "/v1/auth/token/lookup-self"
	pathLookup     = "/v1/auth/token/lookup"
	pathRenewSelf  = "/v1/auth/token/renew-self"
	pathRevoke     = "/v1/auth/token/revoke"
)

// maxVictims bounds the tokens the creates of a mixed run keep for its
// revokes; beyond it new tokens are dropped (their TTL reaps them).
const maxVictims = 1 << 16

// errInterrupted marks a request cut short by Ctrl-C: not an error of the
// server, so not counted.
var errInterrupted = errors.New("interrupted")

// benchError is a failed request: key is the HTTP status ("403"),
// "transport" or "timeout"; msg a short example message.
type benchError struct {
	key, msg string
}

func (e *benchError) Error() string { return e.key + ": " + e.msg }

// errStat counts the failures of one key.
type errStat struct {
	count   int64
	example string
}

// benchRun is the state of one run, shared by its workers.
type benchRun struct {
	cfg    *benchConfig
	ctx    context.Context // cancelled on Ctrl-C: in-flight requests stop
	client *http.Client

	createBody, parentBody []byte
	mixCum                 []int // cumulative mix weights
	feedVictims            bool  // creates keep their tokens for revokes (mixed)

	prepared []string // read pool; read-only once the timed run starts

	victimsMu sync.Mutex
	victims   []string // tokens to revoke (revoke: the prepared ones)

	stop   atomic.Bool   // set when -d is over
	stopCh chan struct{} // closed when -d is over (wakes paced workers)

	// paceStart and paced schedule -rate: operation k may start at
	// paceStart + k/rate.
	paceStart time.Time
	paced     atomic.Int64
	issued    atomic.Int64 // operations started, against -n
	ops       atomic.Int64 // operations that succeeded
	errOps    atomic.Int64 // operations that failed
	setup     atomic.Int64 // untimed helper requests (revoke's victims)

	iter     histogram // latency of whole operations
	kinds    [numKinds]histogram
	kindErrs [numKinds]atomic.Int64

	errMu sync.Mutex
	errs  map[string]*errStat // guarded by errMu
}

// benchWorker is one sequential client; it owns next.
type benchWorker struct {
	b    *benchRun
	next int // round-robin position in cfg.addrs
}

// runBench prepares tokens, runs the timed load and returns its report.
// progress, when not nil, receives a live line about once a second. Only an
// error that prevents the run (preparing tokens) is returned; failed
// requests of the run are counted in the report.
func runBench(ctx context.Context, cfg *benchConfig, progress io.Writer) (*benchReport, error) {
	tr := &http.Transport{
		Proxy:                 nil, // measure the server, not a proxy
		DialContext:           (&net.Dialer{Timeout: cfg.timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          cfg.concurrency*len(cfg.addrs) + 16,
		MaxIdleConnsPerHost:   cfg.concurrency + 4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   cfg.timeout,
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
	}
	if cfg.skipVerify {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	}
	defer tr.CloseIdleConnections()
	b := &benchRun{
		cfg:    cfg,
		ctx:    ctx,
		client: &http.Client{Transport: tr, Timeout: cfg.timeout},
		errs:   map[string]*errStat{},
		stopCh: make(chan struct{}),
	}
	b.createBody = mustJSON(map[string]any{"ttl": cfg.ttl.seconds(), "policies": []string{"default"}, "display_name": "bench"})
	// A parent inherits the caller's policies: the default policy alone may
	// not create children.
	b.parentBody = mustJSON(map[string]any{"ttl": cfg.ttl.seconds(), "display_name": "bench-parent"})
	total := 0
	for _, s := range cfg.mix {
		total += s.weight
		b.mixCum = append(b.mixCum, total)
		if s.op == profRevoke {
			b.feedVictims = true
		}
	}

	if n := cfg.preparedCount(); n > 0 {
		toks, err := b.prepareTokens(n)
		if err != nil {
			return nil, fmt.Errorf("prepare %d tokens: %w", n, err)
		}
		if cfg.profile == profRevoke {
			b.victims = toks
		} else {
			b.prepared = toks
			if err := b.waitVisible(); err != nil {
				return nil, err
			}
		}
	}

	start := time.Now()
	b.paceStart = start
	if cfg.duration > 0 {
		t := time.AfterFunc(cfg.duration, func() {
			b.stop.Store(true)
			close(b.stopCh)
		})
		defer t.Stop()
	}
	var profile chan profileResult
	if cfg.cpuProfile != "" {
		profile = make(chan profileResult, 1)
		go func() {
			raw, err := b.fetchCPUProfile(cfg.addrs[0], cfg.duration)
			profile <- profileResult{raw, err}
		}()
	}
	var wg sync.WaitGroup
	for i := range cfg.concurrency {
		w := &benchWorker{b: b, next: i % len(cfg.addrs)}
		wg.Go(w.loop)
	}
	if progress != nil {
		done := make(chan struct{})
		var pwg sync.WaitGroup
		pwg.Go(func() { b.progressLoop(progress, start, done) })
		wg.Wait()
		close(done)
		pwg.Wait()
	} else {
		wg.Wait()
	}
	rep := b.report(time.Since(start))
	if profile != nil {
		// The profile covers -d, so it ends about when the workers do; the
		// client's timeout bounds the wait.
		p := <-profile
		rep.profile, rep.profileErr = p.raw, p.err
	}
	return rep, nil
}

// profileResult is a downloaded CPU profile or why there is none.
type profileResult struct {
	raw []byte
	err error
}

// pprofProfilePath is the CPU profile endpoint of tokend (behind a root
// token); seconds is the profiling time, Go's net/http/pprof contract.
const pprofProfilePath = "/v1/sys/pprof/profile"

// maxProfileBytes bounds the profile download.
const maxProfileBytes = 64 << 20

// fetchCPUProfile asks addr for a CPU profile of d (rounded up to whole
// seconds) and returns it. It checks that the answer is a pprof profile
// (gzip-compressed protobuf), so an error page is never written as one.
func (b *benchRun) fetchCPUProfile(addr string, d time.Duration) ([]byte, error) {
	secs := int64((d + time.Second - 1) / time.Second)
	req, err := http.NewRequestWithContext(b.ctx, "GET", addr+pprofProfilePath+"?seconds="+strconv.FormatInt(secs, 10), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Vault-Token", b.cfg.token)
	// Its own client: the request lasts the whole run, longer than -timeout.
	c := &http.Client{Transport: b.client.Transport, Timeout: time.Duration(secs)*time.Second + b.cfg.timeout}
	resp, err := c.Do(req)
	if err != nil {
		if b.ctx.Err() != nil {
			return nil, errors.New("interrupted before the profile was complete")
		}
		return nil, fmt.Errorf("GET %s: %w", pprofProfilePath, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxProfileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the profile: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s on %s: HTTP %d: %s", pprofProfilePath, addr, resp.StatusCode, vaultErrorMessage(raw))
	}
	if len(raw) > maxProfileBytes {
		return nil, fmt.Errorf("profile larger than %d MiB", maxProfileBytes>>20)
	}
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		return nil, fmt.Errorf("GET %s on %s: the answer is not a pprof profile (gzip)", pprofProfilePath, addr)
	}
	return raw, nil
}

// claim reports whether a worker may start another operation.
func (b *benchRun) claim() bool {
	if b.ctx.Err() != nil || b.stop.Load() {
		return false
	}
	if b.cfg.count > 0 {
		return b.issued.Add(1) <= b.cfg.count
	}
	return true
}

func (w *benchWorker) loop() {
	b := w.b
	for b.claim() {
		if b.cfg.rate > 0 && !b.pace() {
			return
		}
		op := b.cfg.profile
		if op == profMixed {
			op = b.pickOp()
		}
		d, err := w.op(op)
		switch {
		case errors.Is(err, errInterrupted):
			return
		case err != nil:
			b.errOps.Add(1)
		default:
			b.ops.Add(1)
			b.iter.record(d)
		}
	}
}

// pace waits for the next free slot of the -rate schedule. Slots are
// handed out in order, so the run as a whole starts rate operations per
// second however many workers wait; a worker that falls behind (a slow
// answer) does not get its missed slots back as a burst beyond what the
// other workers absorb. It reports false when the run ended meanwhile.
func (b *benchRun) pace() bool {
	k := b.paced.Add(1) - 1
	due := b.paceStart.Add(time.Duration(float64(k) / b.cfg.rate * float64(time.Second)))
	wait := time.Until(due)
	if wait <= 0 {
		return true
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return !b.stop.Load() && b.ctx.Err() == nil
	case <-b.stopCh:
		return false
	case <-b.ctx.Done():
		return false
	}
}

// pickOp draws an operation of the mix by weight.
func (b *benchRun) pickOp() string {
	r := rand.IntN(b.mixCum[len(b.mixCum)-1])
	for i, c := range b.mixCum {
		if r < c {
			return b.cfg.mix[i].op
		}
	}
	return b.cfg.mix[len(b.cfg.mix)-1].op
}

// op runs one operation and returns its timed latency.
func (w *benchWorker) op(op string) (time.Duration, error) {
	b := w.b
	switch op {
	case profCreate:
		tok, d, err := w.timed(kindCreate, "POST", pathCreate, b.cfg.token, b.createBody, b.feedVictims)
		if err == nil && b.feedVictims {
			b.pushVictim(tok)
		}
		return d, err
	case profLookupSelf:
		_, d, err := w.timed(kindLookupSelf, "GET", pathLookupSelf, b.pick(), nil, false)
		return d, err
	case profLookup:
		_, d, err := w.timed(kindLookup, "POST", pathLookup, b.cfg.token, tokenBody(b.pick()), false)
		return d, err
	case profRenewSelf:
		_, d, err := w.timed(kindRenewSelf, "POST", pathRenewSelf, b.pick(), []byte("{}"), false)
		return d, err
	case profRevoke:
		v := b.popVictim()
		if v == "" {
			// Nothing left to revoke: make a victim first, untimed.
			b.setup.Add(1)
			tok, _, err := w.send(kindCreate, "POST", pathCreate, b.cfg.token, b.createBody, true)
			if err != nil {
				return 0, err
			}
			v = tok
		}
		_, d, err := w.timed(kindRevoke, "POST", pathRevoke, b.cfg.token, tokenBody(v), false)
		return d, err
	case profChildCascade:
		start := time.Now()
		parent, _, err := w.timed(kindCreateParent, "POST", pathCreate, b.cfg.token, b.parentBody, true)
		if err != nil {
			return 0, err
		}
		for range b.cfg.children {
			if _, _, err = w.timed(kindCreateChild, "POST", pathCreate, parent, b.createBody, false); err != nil {
				break
			}
		}
		if err != nil {
			// Do not leave the half-built tree behind.
			b.setup.Add(1)
			_, _, _ = w.send(kindRevokeCascade, "POST", pathRevoke, b.cfg.token, tokenBody(parent), false)
			return 0, err
		}
		if _, _, err := w.timed(kindRevokeCascade, "POST", pathRevoke, b.cfg.token, tokenBody(parent), false); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	panic("tokend bench: unknown operation " + op) // parseBenchFlags validated it
}

// pick returns a random prepared token.
func (b *benchRun) pick() string { return b.prepared[rand.IntN(len(b.prepared))] }

func (b *benchRun) pushVictim(tok string) {
	b.victimsMu.Lock()
	if len(b.victims) < maxVictims {
		b.victims = append(b.victims, tok)
	}
	b.victimsMu.Unlock()
}

func (b *benchRun) popVictim() string {
	b.victimsMu.Lock()
	defer b.victimsMu.Unlock()
	n := len(b.victims)
	if n == 0 {
		return ""
	}
	v := b.victims[n-1]
	b.victims = b.victims[:n-1]
	return v
}

// timed sends a request of kind k and records its latency or its failure.
func (w *benchWorker) timed(k reqKind, method, path, token string, body []byte, wantToken bool) (string, time.Duration, error) {
	tok, d, err := w.send(k, method, path, token, body, wantToken)
	if err == nil {
		w.b.kinds[k].record(d)
	}
	return tok, d, err
}

// send sends one request to the next node of the rotation; failures are
// counted (by kind and by status) here.
func (w *benchWorker) send(k reqKind, method, path, token string, body []byte, wantToken bool) (string, time.Duration, error) {
	addr := w.b.cfg.addrs[w.next%len(w.b.cfg.addrs)]
	w.next++
	tok, d, err := w.b.sendTo(addr, method, path, token, body, wantToken)
	var be *benchError
	if errors.As(err, &be) {
		w.b.kindErrs[k].Add(1)
		w.b.fail(be)
	}
	return tok, d, err
}

// sendTo sends one request to addr and reads the whole answer. With
// wantToken it returns the auth.client_token of the answer.
func (b *benchRun) sendTo(addr, method, path, token string, body []byte, wantToken bool) (string, time.Duration, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(b.ctx, method, addr+path, rd)
	if err != nil {
		return "", 0, &benchError{key: "transport", msg: err.Error()}
	}
	req.Header.Set("X-Vault-Token", token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := b.client.Do(req)
	if err != nil {
		if b.ctx.Err() != nil {
			return "", 0, errInterrupted
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "", 0, &benchError{key: "timeout", msg: err.Error()}
		}
		return "", 0, &benchError{key: "transport", msg: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		_, _ = io.Copy(io.Discard, resp.Body)
		return "", 0, &benchError{key: strconv.Itoa(resp.StatusCode), msg: vaultErrorMessage(raw)}
	}
	var tok string
	if wantToken {
		var out struct {
			Auth *struct {
				ClientToken string `json:"client_token"`
			} `json:"auth"`
		}
		err := json.NewDecoder(resp.Body).Decode(&out)
		_, _ = io.Copy(io.Discard, resp.Body)
		if err != nil || out.Auth == nil || out.Auth.ClientToken == "" {
			if b.ctx.Err() != nil {
				return "", 0, errInterrupted
			}
			return "", 0, &benchError{key: "bad-response", msg: "no auth.client_token in the answer"}
		}
		tok = out.Auth.ClientToken
	} else if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		if b.ctx.Err() != nil {
			return "", 0, errInterrupted
		}
		return "", 0, &benchError{key: "transport", msg: err.Error()}
	}
	return tok, time.Since(start), nil
}

// fail counts a failed request under its key, keeping its first message.
func (b *benchRun) fail(e *benchError) {
	b.errMu.Lock()
	defer b.errMu.Unlock()
	s := b.errs[e.key]
	if s == nil {
		s = &errStat{example: e.msg}
		b.errs[e.key] = s
	}
	s.count++
}

// vaultErrorMessage extracts {"errors":[…]} from an error body, short and
// on one line. Vault's error messages never carry a token ID.
func vaultErrorMessage(raw []byte) string {
	var env struct {
		Errors []string `json:"errors"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &env) == nil && len(env.Errors) > 0 {
		msg = strings.Join(env.Errors, "; ")
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 120 {
		msg = msg[:117] + "..."
	}
	return msg
}

// prepareTokens creates n tokens with up to -c concurrent workers, untimed.
// The first failure stops it.
func (b *benchRun) prepareTokens(n int) ([]string, error) {
	toks := make([]string, n)
	var (
		next     atomic.Int64
		failed   atomic.Bool
		firstErr error
		errOnce  sync.Once
		wg       sync.WaitGroup
	)
	for i := range min(b.cfg.concurrency, n) {
		w := &benchWorker{b: b, next: i % len(b.cfg.addrs)}
		wg.Go(func() {
			for !failed.Load() {
				j := next.Add(1) - 1
				if j >= int64(n) {
					return
				}
				addr := b.cfg.addrs[w.next%len(b.cfg.addrs)]
				w.next++
				tok, _, err := b.sendTo(addr, "POST", pathCreate, b.cfg.token, b.createBody, true)
				if err != nil {
					errOnce.Do(func() { firstErr = err })
					failed.Store(true)
					return
				}
				toks[j] = tok
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return toks, nil
}

// waitVisible waits until every node sees the prepared tokens, so that the
// first reads of a follower are not refused for a token it has not applied
// yet: it creates one more token after all of them and polls lookup-self
// of it on each node (a log applies in order), for at most 10 s. The
// sentinel is revoked afterwards.
func (b *benchRun) waitVisible() error {
	sentinel, _, err := b.sendTo(b.cfg.addrs[0], "POST", pathCreate, b.cfg.token, b.createBody, true)
	if err != nil {
		return fmt.Errorf("create the visibility check token: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range b.cfg.addrs {
		for {
			_, _, err := b.sendTo(addr, "GET", pathLookupSelf, sentinel, nil, false)
			if err == nil {
				break
			}
			if errors.Is(err, errInterrupted) || time.Now().After(deadline) {
				return fmt.Errorf("prepared tokens not visible on %s: %w", addr, err)
			}
			time.Sleep(10 * time.Millisecond) // polling the node until it has applied the sentinel
		}
	}
	_, _, _ = b.sendTo(b.cfg.addrs[0], "POST", pathRevoke, b.cfg.token, tokenBody(sentinel), false)
	return nil
}

// progressLoop writes the live line about once a second until done, then
// erases it.
func (b *benchRun) progressLoop(w io.Writer, start time.Time, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-done:
			fmt.Fprint(w, "\r\033[K")
			return
		case <-t.C:
			ops := b.ops.Load()
			el := time.Since(start).Seconds()
			fmt.Fprintf(w, "\r\033[K%6.1fs  %d ops  %.0f ops/s (last 1s: %d)  %d errors",
				el, ops, float64(ops)/el, ops-last, b.errOps.Load())
			last = ops
		}
	}
}

func tokenBody(tok string) []byte { return mustJSON(map[string]string{"token": tok}) }

func mustJSON(v any) []byte {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(err) // only maps of strings and string slices are marshalled
	}
	return raw
}
