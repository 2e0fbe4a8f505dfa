// Command benchcluster is `make bench-cluster`: it starts a private 3-node
// tokend cluster on loopback (free ports, its own temporary directory),
// runs the `tokend bench` profiles against it, measures both reference
// ceilings of issue 5 in the same run, and prints one table of ratios
// against the targets.
//
//	go run ./scripts/benchcluster -bin bin/tokend -d 5s
//
// Ceilings: (a) a bare net/http handler in this process answering
// lookup-self with the very bytes a tokend follower returned (same size),
// loaded by the same `tokend bench` command line; (b) test/ceiling's raw
// 3-node raft + raft-boltdb/v2 cluster with the same number of concurrent
// proposers as bench workers and CreateToken-sized entries. Each ceiling
// runs right before the profile it is compared with, so the two see the
// same machine load.
//
// Every process it starts is in its own process group and is stopped
// (SIGTERM, then SIGKILL) on return, on error and on Ctrl-C; on Linux the
// nodes also die with this process (Pdeathsig).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tokend/tokend/test/ceiling"
)

// opts is the command line.
type opts struct {
	bin         string
	dur         time.Duration
	conc        int
	prepare     int
	writeRate   int
	children    int
	profileDir  string
	keep        bool
	strict      bool
	jsonOut     string
	nodeLogLvl  string
	ceilingSize int
	writesOnly  int
	binB        string
	envB        string
	abProfiles  string
	abRounds    int
	abReadRate  int
	abWriteRate int
}

func main() {
	var o opts
	flag.StringVar(&o.bin, "bin", "bin/tokend", "tokend binary (make build)")
	flag.DurationVar(&o.dur, "d", 5*time.Second, "duration of each profile and ceiling run")
	flag.IntVar(&o.conc, "c", 64, "concurrent clients (bench workers, raft proposers)")
	flag.IntVar(&o.prepare, "prepare", 1000, "tokens prepared for the read profiles")
	flag.IntVar(&o.writeRate, "write-rate", 200, "creates/s of the background write load of the lookup-self-under-writes row")
	flag.IntVar(&o.children, "children", 10, "children per parent in child-cascade")
	flag.StringVar(&o.profileDir, "cpuprofile-dir", "", "write the leader's CPU profile of the create run (and the follower's of lookup-self under writes) here")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (node data and logs, raw bench JSON)")
	flag.BoolVar(&o.strict, "strict", false, "exit 3 when a target is missed")
	flag.StringVar(&o.jsonOut, "json", "", "also write the rows as JSON to this file")
	flag.StringVar(&o.nodeLogLvl, "node-log-level", "warn", "-log-level of the nodes")
	flag.IntVar(&o.ceilingSize, "entry-size", ceiling.DefaultEntrySize, "command size of ceiling (b) in bytes (a CreateToken entry)")
	flag.IntVar(&o.writesOnly, "writes-only", 0, "only ceiling (b) and create, alternately this many times (for tuning the write path)")
	flag.StringVar(&o.envB, "compare-env", "", "with -compare-bin: extra environment of the compared clusters' nodes, K=V,K=V (e.g. GOGC=200)")
	flag.StringVar(&o.binB, "compare-bin", "", "also run a cluster of each of these tokend binaries (comma list): with -writes-only their creates alternate with the first's, else their lookup-self rows (with and without writes) follow the first's (same-run A/B)")
	flag.StringVar(&o.abProfiles, "ab", "", "with -compare-bin: only these profiles (comma list of create, lookup-self, lookup, renew-self, revoke, child-cascade, mixed), each run on every cluster in turn, -ab-rounds times (same-run A/B of CPU per op); with -cpuprofile-dir every node of the first cluster is profiled per run")
	flag.IntVar(&o.abRounds, "ab-rounds", 2, "with -ab: rounds of the interleaved runs")
	flag.IntVar(&o.abReadRate, "ab-read-rate", 0, "with -ab: -rate of the read profiles (lookup-self, lookup); a fixed rate keeps CPU per op comparable on a busy machine (0: as fast as possible)")
	flag.IntVar(&o.abWriteRate, "ab-write-rate", 0, "with -ab: -rate of the other profiles (0: as fast as possible)")
	flag.Parse()
	switch {
	case o.abProfiles != "" && o.binB == "":
		fail("-ab needs -compare-bin")
	case o.abRounds < 1:
		fail("-ab-rounds must be >= 1")
	case flag.NArg() > 0:
		fail("unexpected argument %q", flag.Arg(0))
	case o.dur < time.Second:
		fail("-d must be at least 1s")
	case o.writesOnly < 0:
		fail("-writes-only must be >= 0")
	case o.envB != "" && o.binB == "":
		fail("-compare-env needs -compare-bin")
	case o.conc < 1 || o.prepare < 1 || o.writeRate < 1 || o.children < 1 || o.ceilingSize < 1:
		fail("-c, -prepare, -write-rate, -children and -entry-size must be >= 1")
	}
	if _, err := os.Stat(o.bin); err != nil {
		fail("%s: %v (run make build)", o.bin, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, o)
	stop()
	os.Exit(code)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchcluster: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// run does everything and returns the exit code; every process it started
// is gone when it returns.
func run(ctx context.Context, o opts) int {
	dir, err := os.MkdirTemp("", "tokend-bench-cluster-")
	if err != nil {
		logf("temp dir: %v", err)
		return 1
	}
	c := &cluster{bin: o.bin, dir: dir, logLevel: o.nodeLogLvl}
	failed := true
	defer func() {
		c.stop()
		if o.keep || failed {
			logf("kept %s (node logs: node*/tokend.log)", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	if err := c.start(ctx, 3); err != nil {
		if ctx.Err() != nil {
			failed = false
			logf("interrupted")
			return 130
		}
		logf("start cluster: %v", err)
		c.tailLogs()
		return 1
	}
	logf("cluster up: leader %s, follower %s", c.leader, c.follower)
	var cb []*cluster
	if o.binB != "" {
		for i, bin := range strings.Split(o.binB, ",") {
			b := &cluster{bin: bin, dir: filepath.Join(dir, fmt.Sprintf("b%d", i+1)), logLevel: o.nodeLogLvl}
			if o.envB != "" {
				b.env = strings.Split(o.envB, ",")
			}
			cb = append(cb, b)
			defer b.stop()
			if err := b.start(ctx, 3); err != nil {
				logf("start cluster B%d: %v", i+1, err)
				b.tailLogs()
				return 1
			}
		}
	}
	var rows []row
	switch {
	case o.abProfiles != "":
		rows, err = measureAB(ctx, o, c, cb)
	case o.writesOnly > 0:
		rows, err = measureWrites(ctx, o, c, cb)
	default:
		rows, err = measure(ctx, o, c, cb)
	}
	if ctx.Err() != nil {
		// Ctrl-C: clean up (the deferred stop) and say so, no log dump.
		failed = false
		logf("interrupted")
		return 130
	}
	if err != nil {
		logf("%v", err)
		c.tailLogs()
		return 1
	}
	missed := printTable(os.Stdout, o, rows)
	if o.jsonOut != "" {
		raw, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(raw, '\n'), 0o644); err != nil {
			logf("write %s: %v", o.jsonOut, err)
			return 1
		}
	}
	failed = false
	if missed && o.strict {
		return 3
	}
	return 0
}

// result is one measured line: a bench report or a ceiling run.
type result struct {
	// CPUPerOp is the CPU time (user+system) the server side spent per
	// successful operation: all three tokend processes for a bench row,
	// this process for ceiling (b). Less noisy than ops/s on a shared
	// machine, where a busy neighbour slows everything down.
	CPUPerOp time.Duration `json:"cpu_per_op_ns"`
	// ClientCPUPerOp is the load generator's (tokend bench's) CPU time per
	// operation: it shares the machine with the servers.
	ClientCPUPerOp time.Duration `json:"client_cpu_per_op_ns,omitempty"`
	Ops            int64         `json:"ops"`
	OpsPerS        float64       `json:"ops_per_s"`
	P50            float64       `json:"p50_ms"`
	P99            float64       `json:"p99_ms"`
	Errors         int64         `json:"errors"`
}

// row is one line of the table.
type row struct {
	Name    string  `json:"profile"`
	Res     result  `json:"result"`
	Ceiling string  `json:"ceiling,omitempty"` // what the ratio compares with
	CeilVal float64 `json:"ceiling_value,omitempty"`
	Ratio   float64 `json:"ratio,omitempty"`
	// Target is "≥ x" or "≤ x" on Ratio; "" for rows without a target.
	Target string `json:"target,omitempty"`
	Pass   *bool  `json:"pass,omitempty"`
	Note   string `json:"note,omitempty"`
}

func (r *row) judge(ratio float64, atLeast bool, bound float64) {
	r.Ratio = ratio
	ok := ratio >= bound
	r.Target = "≥ " + strconv.FormatFloat(bound, 'f', -1, 64)
	if !atLeast {
		ok = ratio <= bound
		r.Target = "≤ " + strconv.FormatFloat(bound, 'f', -1, 64)
	}
	r.Pass = &ok
}

// measure runs the profiles and ceilings in an order that puts each
// ceiling next to the profile it is compared with.
func measure(ctx context.Context, o opts, c *cluster, cbs []*cluster) ([]row, error) {
	all := strings.Join(c.addrs, ",")
	// Capture what a follower answers, for ceiling (a).
	createBody, lookupBody, err := c.sampleBodies()
	if err != nil {
		return nil, err
	}
	bare, err := startBare(createBody, lookupBody)
	if err != nil {
		return nil, err
	}
	defer bare.Close()

	d := o.dur.String()
	cc := strconv.Itoa(o.conc)
	prep := strconv.Itoa(o.prepare)
	var rows []row

	logf("ceiling (a): bare net/http handler, %d-byte lookup-self body", len(lookupBody))
	self := os.Getpid()
	selfCPU := procCPU(self)
	bareRes, err := c.bench(ctx, "bare-http", "-profile", "lookup-self", "-addr", bare.url, "-d", d, "-c", cc, "-prepare", prep)
	if err != nil {
		return nil, err
	}
	// The server side of ceiling (a) is this process, not the nodes.
	bareRes.CPUPerOp = 0
	if cpu := procCPU(self) - selfCPU; cpu > 0 && bareRes.Ops > 0 {
		bareRes.CPUPerOp = cpu / time.Duration(bareRes.Ops)
	}
	logf("lookup-self on a follower")
	ls, err := c.bench(ctx, "lookup-self", "-profile", "lookup-self", "-addr", c.follower, "-d", d, "-c", cc, "-prepare", prep)
	if err != nil {
		return nil, err
	}

	logf("lookup-self on a follower under %d creates/s", o.writeRate)
	lsw, bg, err := c.underWrites(ctx, o)
	if err != nil {
		return nil, err
	}

	logf("ceiling (b): raw 3-node raft, %d proposers, %d-byte entries", o.conc, o.ceilingSize)
	raftRow, err := raftCeiling(ctx, o)
	if err != nil {
		return nil, err
	}

	logf("create through all nodes")
	createArgs := []string{"-profile", "create", "-addr", c.leader + "," + strings.Join(c.others(c.leader), ","), "-d", d, "-c", cc}
	if o.profileDir != "" {
		createArgs = append(createArgs, "-cpuprofile", filepath.Join(o.profileDir, "leader-create.pprof"))
	}
	cr, err := c.bench(ctx, "create", createArgs...)
	if err != nil {
		return nil, err
	}

	r := row{Name: "create (3 nodes)", Res: cr, Ceiling: "raft (b)", CeilVal: raftRow.OpsPerS}
	r.judge(cr.OpsPerS/raftRow.OpsPerS, true, 0.5)
	rows = append(rows, r)
	r = row{Name: "lookup-self (follower)", Res: ls, Ceiling: "bare http (a)", CeilVal: bareRes.OpsPerS}
	r.judge(ls.OpsPerS/bareRes.OpsPerS, true, 0.8)
	rows = append(rows, r)
	r = row{Name: fmt.Sprintf("lookup-self + %d creates/s", o.writeRate), Res: lsw, Ceiling: "p99 w/o writes", CeilVal: ls.P99,
		Note: fmt.Sprintf("ratio is p99/p99; background creates %.0f/s, %d errors", bg.OpsPerS, bg.Errors)}
	r.judge(lsw.P99/ls.P99, false, 2)
	rows = append(rows, r)
	// Compared builds: the read rows once more on each of their clusters.
	for j, cb := range cbs {
		logf("B%d: lookup-self on a follower, without and under writes", j+1)
		bls, err := cb.bench(ctx, "b-lookup-self", "-profile", "lookup-self", "-addr", cb.follower, "-d", d, "-c", cc, "-prepare", prep)
		if err != nil {
			return nil, err
		}
		blsw, bbg, err := cb.underWrites(ctx, o)
		if err != nil {
			return nil, err
		}
		r = row{Name: fmt.Sprintf("B%d: lookup-self (follower)", j+1), Res: bls, Ceiling: "bare http (a)", CeilVal: bareRes.OpsPerS,
			Note: "cluster B" + strconv.Itoa(j+1) + " runs " + cb.bin + " " + strings.Join(cb.env, " ")}
		r.judge(bls.OpsPerS/bareRes.OpsPerS, true, 0.8)
		rows = append(rows, r)
		r = row{Name: fmt.Sprintf("B%d: lookup-self + %d creates/s", j+1, o.writeRate), Res: blsw, Ceiling: "p99 w/o writes", CeilVal: bls.P99,
			Note: fmt.Sprintf("background creates %.0f/s, %d errors", bbg.OpsPerS, bbg.Errors)}
		r.judge(blsw.P99/bls.P99, false, 2)
		rows = append(rows, r)
	}

	others := []struct {
		name string
		args []string
	}{
		{"lookup (follower)", []string{"-profile", "lookup", "-addr", c.follower, "-prepare", prep}},
		{"renew-self (3 nodes)", []string{"-profile", "renew-self", "-addr", all, "-prepare", prep}},
		{"revoke (3 nodes)", []string{"-profile", "revoke", "-addr", all, "-prepare", prep}},
		{fmt.Sprintf("child-cascade ×%d (3 nodes)", o.children), []string{"-profile", "child-cascade", "-children", strconv.Itoa(o.children), "-addr", all}},
		{"mixed (3 nodes)", []string{"-profile", "mixed", "-addr", all, "-prepare", prep}},
	}
	for _, p := range others {
		logf("%s", p.name)
		res, err := c.bench(ctx, p.name, append(p.args, "-d", d, "-c", cc)...)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row{Name: p.name, Res: res})
	}
	rows = append(rows,
		row{Name: "ceiling (a) bare http", Res: bareRes, Note: fmt.Sprintf("%d-byte body, same bench command", len(lookupBody))},
		row{Name: "ceiling (b) raw raft", Res: raftRow, Note: fmt.Sprintf("%d proposers, %d-byte entries", o.conc, o.ceilingSize)},
	)
	return rows, nil
}

// measureWrites alternates ceiling (b) and create o.writesOnly times,
// each pair its own ratio.
func measureWrites(ctx context.Context, o opts, c *cluster, cbs []*cluster) ([]row, error) {
	var rows []row
	for i := range o.writesOnly {
		raftRes, err := raftCeiling(ctx, o)
		if err != nil {
			return nil, err
		}
		cr, err := c.bench(ctx, "create", "-profile", "create", "-addr", c.leader+","+strings.Join(c.others(c.leader), ","), "-d", o.dur.String(), "-c", strconv.Itoa(o.conc))
		if err != nil {
			return nil, err
		}
		r := row{Name: fmt.Sprintf("create (3 nodes) #%d", i+1), Res: cr, Ceiling: "raft (b)", CeilVal: raftRes.OpsPerS}
		r.judge(cr.OpsPerS/raftRes.OpsPerS, true, 0.5)
		lo, err := c.bench(ctx, "create-leader", "-profile", "create", "-addr", c.leader, "-d", o.dur.String(), "-c", strconv.Itoa(o.conc))
		if err != nil {
			return nil, err
		}
		rl := row{Name: fmt.Sprintf("create (leader only) #%d", i+1), Res: lo, Ceiling: "raft (b)", CeilVal: raftRes.OpsPerS}
		if i == 0 {
			rl.Note = "no forwarding: what forwarding costs"
		}
		rl.Ratio = lo.OpsPerS / raftRes.OpsPerS
		rows = append(rows, r, rl)
		for j, cb := range cbs {
			crb, err := cb.bench(ctx, "create-b", "-profile", "create", "-addr", cb.leader+","+strings.Join(cb.others(cb.leader), ","), "-d", o.dur.String(), "-c", strconv.Itoa(o.conc))
			if err != nil {
				return nil, err
			}
			rb := row{Name: fmt.Sprintf("B%d: create (3 nodes) #%d", j+1, i+1), Res: crb, Ceiling: "raft (b)", CeilVal: raftRes.OpsPerS}
			if i == 0 {
				rb.Note = "cluster B" + strconv.Itoa(j+1) + " runs " + cb.bin + " " + strings.Join(cb.env, " ")
			}
			rb.judge(crb.OpsPerS/raftRes.OpsPerS, true, 0.5)
			rows = append(rows, rb)
		}
		rows = append(rows, row{Name: fmt.Sprintf("ceiling (b) raw raft #%d", i+1), Res: raftRes})
	}
	return rows, nil
}

// underWrites runs lookup-self on the follower while a paced create load
// runs over all nodes; the load starts a second earlier and ends a second
// later, so the whole read run is under it.
func (c *cluster) underWrites(ctx context.Context, o opts) (result, result, error) {
	bgCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		bg    result
		bgErr error
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		bg, bgErr = c.bench(bgCtx, "background-create", "-profile", "create", "-addr", strings.Join(c.addrs, ","),
			"-rate", strconv.Itoa(o.writeRate), "-c", "16", "-d", (o.dur + 2*time.Second).String())
	})
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
	}
	args := []string{"-profile", "lookup-self", "-addr", c.follower, "-d", o.dur.String(), "-c", strconv.Itoa(o.conc), "-prepare", strconv.Itoa(o.prepare)}
	if o.profileDir != "" {
		args = append(args, "-cpuprofile", filepath.Join(o.profileDir, "follower-lookup-under-writes.pprof"))
	}
	res, err := c.bench(ctx, "lookup-self-under-writes", args...)
	wg.Wait()
	if err == nil {
		err = bgErr
	}
	return res, bg, err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// printTable prints the one table and reports whether a target was missed.
func printTable(w io.Writer, o opts, rows []row) bool {
	fmt.Fprintf(w, "\nbench-cluster: 3 nodes on loopback, %d clients, %s per run, GOMAXPROCS of each process = cores (%d)\n\n",
		o.conc, o.dur, numCPU())
	head := []string{"profile", "ops/s", "p50", "p99", "cpu/op", "ceiling", "ratio", "target", "result"}
	table := [][]string{head}
	missed := false
	for _, r := range rows {
		cpu := "-"
		if r.Res.CPUPerOp > 0 {
			cpu = strconv.FormatInt(r.Res.CPUPerOp.Microseconds(), 10) + "µs"
		}
		if r.Res.ClientCPUPerOp > 0 {
			cpu += " +" + strconv.FormatInt(r.Res.ClientCPUPerOp.Microseconds(), 10)
		}
		line := []string{r.Name, strconv.FormatFloat(r.Res.OpsPerS, 'f', 0, 64), fmtMS(r.Res.P50), fmtMS(r.Res.P99), cpu, "", "", "", ""}
		if r.Ceiling != "" {
			v := strconv.FormatFloat(r.CeilVal, 'f', 0, 64) + "/s"
			if strings.HasPrefix(r.Ceiling, "p99") {
				v = fmtMS(r.CeilVal)
			}
			line[5] = r.Ceiling + " " + v
			line[6] = strconv.FormatFloat(r.Ratio, 'f', 2, 64)
			line[7] = r.Target
		}
		if r.Pass != nil {
			line[8] = "PASS"
			if !*r.Pass {
				line[8] = "FAIL"
				missed = true
			}
		}
		if r.Res.Errors > 0 {
			line[8] = strings.TrimSpace(line[8] + fmt.Sprintf(" (%d errors)", r.Res.Errors))
		}
		table = append(table, line)
	}
	widths := make([]int, len(head))
	for _, l := range table {
		for i, cell := range l {
			widths[i] = max(widths[i], len([]rune(cell)))
		}
	}
	for i, l := range table {
		var b strings.Builder
		for j, cell := range l {
			b.WriteString(cell)
			if j < len(l)-1 {
				b.WriteString(strings.Repeat(" ", widths[j]-len([]rune(cell))+2))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if i == 0 {
			var u strings.Builder
			for j := range head {
				u.WriteString(strings.Repeat("-", widths[j]))
				if j < len(head)-1 {
					u.WriteString("  ")
				}
			}
			fmt.Fprintln(w, u.String())
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "  cpu/op: CPU time of the 3 tokend processes per operation (ceiling (a): of the bare server's process,")
	fmt.Fprintln(w, "  ceiling (b): of the raw raft process), + the load generator's (tokend bench) CPU per operation")
	for _, r := range rows {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Name, r.Note)
		}
	}
	return missed
}

func fmtMS(v float64) string {
	if v >= 10 {
		return strconv.FormatFloat(v, 'f', 1, 64) + "ms"
	}
	return strconv.FormatFloat(v, 'f', 3, 64) + "ms"
}

// benchReport is the part of `tokend bench -format=json` used here.
type benchReport struct {
	Ops     int64   `json:"ops"`
	OpsPerS float64 `json:"ops_per_s"`
	Errors  int64   `json:"errors"`
	Latency struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"latency_ms"`
}

// bench runs `tokend bench -format json args…` with the root token and
// returns its summary; the raw report is kept in the temp dir.
func (c *cluster) bench(ctx context.Context, name string, args ...string) (result, error) {
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"bench", "-format", "json"}, args...)...)
	cmd.Env = append(os.Environ(), "TOKEND_TOKEN="+c.root, "VAULT_TOKEN=")
	cmd.SysProcAttr = childAttr()
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cpu0 := c.cpu()
	err := cmd.Run()
	cpu := c.cpu() - cpu0
	file := filepath.Join(c.dir, "bench-"+sanitize(name)+".json")
	_ = os.WriteFile(file, out.Bytes(), 0o600)
	if err != nil {
		if ctx.Err() != nil {
			return result{}, fmt.Errorf("%s: interrupted", name)
		}
		return result{}, fmt.Errorf("%s: tokend bench %s: %v\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	var rep benchReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return result{}, fmt.Errorf("%s: bench output: %v", name, err)
	}
	res := result{Ops: rep.Ops, OpsPerS: rep.OpsPerS, P50: rep.Latency.P50, P99: rep.Latency.P99, Errors: rep.Errors}
	if rep.Ops > 0 && cpu > 0 {
		res.CPUPerOp = cpu / time.Duration(rep.Ops)
	}
	if st := cmd.ProcessState; st != nil && rep.Ops > 0 {
		res.ClientCPUPerOp = (st.UserTime() + st.SystemTime()) / time.Duration(rep.Ops)
	}
	return res, nil
}

// cpu returns the CPU time used so far by the cluster's processes (0 where
// /proc is not available).
func (c *cluster) cpu() time.Duration {
	var sum time.Duration
	for _, p := range c.nodes {
		if p.cmd != nil && p.cmd.Process != nil {
			sum += procCPU(p.cmd.Process.Pid)
		}
	}
	return sum
}

// procCPU reads utime+stime of pid from /proc (Linux), 0 if unavailable.
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields count from after it.
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	// USER_HZ is 100 on every Linux ABI Go supports.
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// raftCeiling runs ceiling (b) and measures this process's CPU time for it.
func raftCeiling(ctx context.Context, o opts) (result, error) {
	self := os.Getpid()
	cpu0 := procCPU(self)
	r, err := ceiling.Run(ctx, 3, o.conc, o.ceilingSize, o.dur)
	if err != nil {
		return result{}, fmt.Errorf("raft ceiling: %w", err)
	}
	res := result{Ops: int64(r.Applies), OpsPerS: r.AppliesPerSec, P50: ms(r.P50), P99: ms(r.P99), Errors: int64(r.Errors)}
	if cpu := procCPU(self) - cpu0; cpu > 0 && r.Applies > 0 {
		res.CPUPerOp = cpu / time.Duration(r.Applies)
	}
	return res, nil
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '_'
	}, strings.ToLower(s))
}

// bareServer is ceiling (a).
type bareServer struct {
	srv *http.Server
	url string
}

func (b *bareServer) Close() { _ = b.srv.Close() }

// startBare serves the captured bodies: create for POST auth/token/create
// (the bench prepares its read tokens with it), the lookup-self body for
// everything else. No routing beyond that, no auth, no state.
func startBare(createBody, lookupBody []byte) (*bareServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodPost && r.URL.Path == "/v1/auth/token/create" {
			_, _ = w.Write(createBody)
			return
		}
		_, _ = w.Write(lookupBody)
	})
	s := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.Serve(ln) }()
	return &bareServer{srv: s, url: "http://" + ln.Addr().String()}, nil
}

// cluster is the 3 tokend processes.
type cluster struct {
	bin, dir, logLevel string
	env                []string // extra environment of the nodes
	nodes              []*proc
	addrs              []string // http://host:port of each node
	leader, follower   string
	root               string
	client             http.Client
}

type proc struct {
	id, dir, http, raft, gossip string
	cmd                         *exec.Cmd
	done                        chan struct{}
}

func (c *cluster) start(ctx context.Context, n int) error {
	c.client = http.Client{Timeout: 10 * time.Second}
	// Every node needs the same token hash key, kept outside the data dirs.
	hashKey := filepath.Join(c.dir, "token-hash.key")
	if err := os.MkdirAll(c.dir, 0o700); err != nil { // a compared cluster's dir is new
		return err
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails on Linux
	if err := os.WriteFile(hashKey, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return err
	}
	for i := range n {
		p := &proc{id: fmt.Sprintf("node%d", i+1), dir: filepath.Join(c.dir, fmt.Sprintf("node%d", i+1))}
		var err error
		if p.http, err = freeTCP(); err != nil {
			return err
		}
		if p.raft, err = freeTCP(); err != nil {
			return err
		}
		if p.gossip, err = freeTCPUDP(); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(p.dir, "data"), 0o700); err != nil {
			return err
		}
		c.nodes = append(c.nodes, p)
		c.addrs = append(c.addrs, "http://"+p.http)
	}
	for _, p := range c.nodes {
		args := []string{"server", "-node-id", p.id, "-data-dir", filepath.Join(p.dir, "data"),
			"-http-addr", p.http, "-raft-addr", p.raft, "-gossip-addr", p.gossip,
			"-bootstrap-expect", strconv.Itoa(n), "-log-level", c.logLevel, "-token-hash-key-file", hashKey}
		for _, q := range c.nodes {
			if q != p {
				args = append(args, "-join", q.gossip)
			}
		}
		logFile, err := os.OpenFile(filepath.Join(p.dir, "tokend.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		p.cmd = exec.Command(c.bin, args...)
		p.cmd.Env = append(os.Environ(), c.env...)
		p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
		p.cmd.SysProcAttr = childAttr()
		if err := p.cmd.Start(); err != nil {
			logFile.Close()
			return fmt.Errorf("start %s: %w", p.id, err)
		}
		p.done = make(chan struct{})
		go func() {
			_ = p.cmd.Wait()
			logFile.Close()
			close(p.done)
		}()
	}
	// A leader every node agrees on.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, p := range c.nodes {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited during start-up", p.id)
			default:
			}
		}
		if l := c.commonLeader(); l != "" {
			c.leader = l
			break
		}
		if time.Now().After(deadline) {
			return errors.New("no common leader within 30s")
		}
		time.Sleep(100 * time.Millisecond) // polling the nodes' leader view
	}
	c.follower = c.others(c.leader)[0]
	var init struct {
		RootToken string `json:"root_token"`
	}
	code, body, err := c.do("PUT", c.leader+"/v1/sys/init", "", `{}`)
	if err != nil || code != 200 || json.Unmarshal(body, &init) != nil || init.RootToken == "" {
		return fmt.Errorf("sys/init: HTTP %d %v", code, err)
	}
	c.root = init.RootToken
	return nil
}

// commonLeader returns the leader's API address when every node reports
// the same one, else "".
func (c *cluster) commonLeader() string {
	seen := ""
	for _, a := range c.addrs {
		code, body, err := c.do("GET", a+"/v1/sys/leader", "", "")
		var l struct {
			Addr string `json:"leader_address"`
		}
		if err != nil || code != 200 || json.Unmarshal(body, &l) != nil || l.Addr == "" || (seen != "" && l.Addr != seen) {
			return ""
		}
		seen = l.Addr
	}
	for _, a := range c.addrs {
		if a == seen {
			return seen
		}
	}
	return ""
}

func (c *cluster) others(addr string) []string {
	var out []string
	for _, a := range c.addrs {
		if a != addr {
			out = append(out, a)
		}
	}
	return out
}

func (c *cluster) do(method, url, token, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}

// sampleBodies creates a token the way tokend bench does and returns the
// create answer and the follower's lookup-self answer for it.
func (c *cluster) sampleBodies() ([]byte, []byte, error) {
	code, create, err := c.do("POST", c.follower+"/v1/auth/token/create", c.root, `{"ttl":"3600s","policies":["default"],"display_name":"bench"}`)
	if err != nil || code != 200 {
		return nil, nil, fmt.Errorf("sample create: HTTP %d %v", code, err)
	}
	var tok struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(create, &tok); err != nil || tok.Auth.ClientToken == "" {
		return nil, nil, errors.New("sample create: no client_token")
	}
	for range 100 {
		code, lookup, err := c.do("GET", c.follower+"/v1/auth/token/lookup-self", tok.Auth.ClientToken, "")
		if err == nil && code == 200 {
			return create, lookup, nil
		}
		time.Sleep(20 * time.Millisecond) // the follower applies the create
	}
	return nil, nil, errors.New("sample lookup-self on the follower failed")
}

// stop ends every node: SIGTERM to its process group, SIGKILL after 3 s
// (the data is thrown away, so a node still busy leaving gracefully is not
// waited for).
func (c *cluster) stop() {
	var wg sync.WaitGroup
	for _, p := range c.nodes {
		if p.cmd == nil || p.cmd.Process == nil {
			continue
		}
		wg.Go(func() {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(3 * time.Second):
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.done
			}
		})
	}
	wg.Wait()
}

func (c *cluster) tailLogs() {
	for _, p := range c.nodes {
		raw, err := os.ReadFile(filepath.Join(p.dir, "tokend.log"))
		if err != nil {
			continue
		}
		if len(raw) > 2048 {
			raw = raw[len(raw)-2048:]
		}
		fmt.Fprintf(os.Stderr, "--- %s (last 2 KiB of its log) ---\n%s\n", p.id, raw)
	}
}

// freeTCP returns a loopback address whose TCP port was free a moment ago.
func freeTCP() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// freeTCPUDP returns a loopback port free for both TCP and UDP (gossip
// binds both).
func freeTCPUDP() (string, error) {
	for range 20 {
		a, err := freeTCP()
		if err != nil {
			return "", err
		}
		pc, err := net.ListenPacket("udp", a)
		if err == nil {
			pc.Close()
			return a, nil
		}
	}
	return "", errors.New("no port free for both TCP and UDP")
}

func numCPU() int { return runtime.NumCPU() }
