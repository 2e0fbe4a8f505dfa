package chaos

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// BuildBinary builds ./cmd/tokend (module github.com/tokend/tokend) into dir.
func BuildBinary(dir string) (string, error) {
	bin := filepath.Join(dir, "tokend")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/tokend/tokend/cmd/tokend")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
}

// Proc is one tokend node: its addresses and its current process.
type Proc struct {
	ID       string
	IP       string
	DataDir  string
	HTTPAddr string
	RaftAddr string
	Gossip   string
	LogPath  string
	// Env is added to the process environment at every start (test
	// knobs such as TOKEND_TEST_CLOCK_OFFSET).
	Env []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
	// crashes records every exit that the harness did not cause.
	crashes []string
	// expectExit is set while the harness kills or stops the process.
	expectExit bool
}

// Cluster is N tokend processes.
type Cluster struct {
	Bin       string
	Nodes     []*Proc
	RootToken string
	MaxStale  time.Duration
	Netns     bool
	// HashKeyFile is every node's -token-hash-key-file (outside the data
	// dirs, mode 0600).
	HashKeyFile string
	client      *http.Client
}

// NewCluster lays out n nodes under base. In a private namespace node k is
// on 127.0.0.(k+2) with fixed ports; otherwise all on 127.0.0.1 with free
// ports.
func NewCluster(bin, base string, n int, netns bool, maxStale time.Duration) (*Cluster, error) {
	c := &Cluster{Bin: bin, MaxStale: maxStale, Netns: netns,
		client: &http.Client{Timeout: 3 * time.Second}}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	c.HashKeyFile = filepath.Join(base, "token-hash.key")
	if err := os.WriteFile(c.HashKeyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, err
	}
	for k := 0; k < n; k++ {
		p := &Proc{
			ID:      fmt.Sprintf("n%d", k+1),
			DataDir: filepath.Join(base, fmt.Sprintf("n%d", k+1)),
			LogPath: filepath.Join(base, fmt.Sprintf("n%d.log", k+1)),
		}
		if netns {
			p.IP = fmt.Sprintf("127.0.0.%d", k+2)
			p.HTTPAddr, p.RaftAddr, p.Gossip = p.IP+":8200", p.IP+":8201", p.IP+":8301"
		} else {
			p.IP = "127.0.0.1"
			var err error
			if p.HTTPAddr, err = freeAddr(); err != nil {
				return nil, err
			}
			if p.RaftAddr, err = freeAddr(); err != nil {
				return nil, err
			}
			if p.Gossip, err = freeAddr(); err != nil {
				return nil, err
			}
		}
		if err := os.MkdirAll(p.DataDir, 0o700); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, p)
	}
	return c, nil
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Addr returns node k's IP (used by the nftables rules).
func (c *Cluster) Addr(k int) string { return c.Nodes[k].IP }

// Start launches node k on its data dir.
func (c *Cluster) Start(k int) error {
	p := c.Nodes[k]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return nil // running
		}
	}
	args := []string{"server",
		"-node-id", p.ID,
		"-data-dir", p.DataDir,
		"-token-hash-key-file", c.HashKeyFile,
		"-http-addr", p.HTTPAddr,
		"-raft-addr", p.RaftAddr,
		"-gossip-addr", p.Gossip,
		"-bootstrap-expect", strconv.Itoa(len(c.Nodes)),
		"-max-stale", c.MaxStale.String(),
		// The workload validates revoked tokens on purpose; the per-address
		// failed-authentication limiter would turn them into 429s.
		"-rate-limit-bad-auth", "0",
		"-log-level", "info",
	}
	for j, other := range c.Nodes {
		if j != k {
			args = append(args, "-join", other.Gossip)
		}
	}
	logFile, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logFile, "{\"@message\":\"chaos harness: process start\",\"@timestamp\":%q}\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(c.Bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if len(p.Env) > 0 {
		cmd.Env = append(os.Environ(), p.Env...)
	}
	if c.Netns {
		cmd.SysProcAttr = nodeCredential(k)
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", p.ID, err)
	}
	p.cmd, p.done, p.paused, p.expectExit = cmd, make(chan struct{}), false, false
	go func(cmd *exec.Cmd, done chan struct{}) {
		err := cmd.Wait()
		logFile.Close()
		p.mu.Lock()
		if !p.expectExit {
			p.crashes = append(p.crashes, fmt.Sprintf("%s exited on its own at %s: %v", p.ID, time.Now().Format(time.RFC3339Nano), err))
		}
		p.mu.Unlock()
		close(done)
	}(cmd, p.done)
	return nil
}

// Running reports whether node k's process exists (it may be paused).
func (c *Cluster) Running(k int) bool {
	p := c.Nodes[k]
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Paused reports whether node k is SIGSTOPped.
func (c *Cluster) Paused(k int) bool {
	p := c.Nodes[k]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.paused
}

// Signal sends sig to node k; SIGKILL and SIGTERM wait for the exit
// (bounded: a SIGTERM that does not end the process within 30 s is
// followed by SIGKILL and reported).
func (c *Cluster) Signal(k int, sig syscall.Signal) error {
	p := c.Nodes[k]
	p.mu.Lock()
	if p.cmd == nil {
		p.mu.Unlock()
		return nil
	}
	select {
	case <-p.done:
		p.mu.Unlock()
		return nil
	default:
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		p.expectExit = true
	}
	if sig == syscall.SIGTERM && p.paused {
		_ = p.cmd.Process.Signal(syscall.SIGCONT)
		p.paused = false
	}
	switch sig {
	case syscall.SIGSTOP:
		p.paused = true
	case syscall.SIGCONT:
		p.paused = false
	}
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if err := cmd.Process.Signal(sig); err != nil {
		return err
	}
	if sig != syscall.SIGKILL && sig != syscall.SIGTERM {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		// SIGQUIT makes the Go runtime dump every goroutine into the log
		// before it exits, which shows where the shutdown hangs.
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		return fmt.Errorf("%s did not exit within 30s of %v (goroutine dump in its log)", p.ID, sig)
	}
}

// Wipe deletes node k's data dir (the node must be stopped).
func (c *Cluster) Wipe(k int) error {
	p := c.Nodes[k]
	if err := os.RemoveAll(p.DataDir); err != nil {
		return err
	}
	return os.MkdirAll(p.DataDir, 0o700)
}

// Crashes lists every exit the harness did not cause.
func (c *Cluster) Crashes() []string {
	var out []string
	for _, p := range c.Nodes {
		p.mu.Lock()
		out = append(out, p.crashes...)
		p.mu.Unlock()
	}
	return out
}

// StopAll kills every node (SIGCONT first for paused ones).
func (c *Cluster) StopAll() {
	for k := range c.Nodes {
		if c.Paused(k) {
			_ = c.Signal(k, syscall.SIGCONT)
		}
		_ = c.Signal(k, syscall.SIGKILL)
	}
}

// do sends one request to node k with the harness's own client.
func (c *Cluster) do(ctx context.Context, k int, method, path, token, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Nodes[k].HTTPAddr+path, rd)
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
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return resp.StatusCode, data, err
}

// Leaders returns every running, unpaused node that says it leads.
func (c *Cluster) Leaders() []int {
	var out []int
	for k := range c.Nodes {
		if !c.Running(k) || c.Paused(k) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		status, body, err := c.do(ctx, k, http.MethodGet, "/v1/sys/leader", "", "")
		cancel()
		if err != nil || status != http.StatusOK {
			continue
		}
		var l struct {
			IsSelf bool `json:"is_self"`
		}
		if json.Unmarshal(body, &l) == nil && l.IsSelf {
			out = append(out, k)
		}
	}
	return out
}

// Leader returns the one node that says it leads, or -1.
func (c *Cluster) Leader() int {
	if l := c.Leaders(); len(l) == 1 {
		return l[0]
	}
	return -1
}

// WaitLeader polls until exactly one node leads, up to timeout.
func (c *Cluster) WaitLeader(timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		if l := c.Leader(); l >= 0 {
			return l
		}
		if time.Now().After(deadline) {
			return -1
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// Healthy reports whether node k answers sys/health with 200 (active or
// standby with a lease).
func (c *Cluster) Healthy(k int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	status, _, err := c.do(ctx, k, http.MethodGet, "/v1/sys/health?standbyok=true", "", "")
	return err == nil && status == http.StatusOK
}

// WaitHealthy waits until every node is running, healthy and one leads.
func (c *Cluster) WaitHealthy(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		var bad []string
		for k := range c.Nodes {
			if !c.Running(k) || c.Paused(k) || !c.Healthy(k) {
				ok = false
				bad = append(bad, c.Nodes[k].ID)
			}
		}
		if ok && c.Leader() >= 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cluster not healthy within %s (unhealthy: %v, leaders: %v)", timeout, bad, c.Leaders())
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

// Init starts every node, waits for a leader and initialises the cluster.
func (c *Cluster) Init(timeout time.Duration) error {
	for k := range c.Nodes {
		if err := c.Start(k); err != nil {
			return err
		}
	}
	leader := c.WaitLeader(timeout)
	if leader < 0 {
		return fmt.Errorf("no leader within %s", timeout)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, body, err := c.do(ctx, leader, http.MethodPut, "/v1/sys/init", "", `{}`)
	if err != nil || status != http.StatusOK {
		return fmt.Errorf("sys/init: %d %s %v", status, body, err)
	}
	var init struct {
		RootToken string `json:"root_token"`
	}
	if err := json.Unmarshal(body, &init); err != nil || init.RootToken == "" {
		return fmt.Errorf("sys/init body %s: %v", body, err)
	}
	c.RootToken = init.RootToken
	return c.WaitHealthy(timeout)
}

// Accessors lists node k's accessors from its local state (consistent=false)
// or the leader's (consistent=true).
func (c *Cluster) Accessors(k int, consistent bool) ([]string, error) {
	path := "/v1/auth/token/accessors?list=true"
	if consistent {
		path += "&consistent"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, body, err := c.do(ctx, k, http.MethodGet, path, c.RootToken, "")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("accessors on %s: %d %s", c.Nodes[k].ID, status, body)
	}
	var r struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, err
	}
	return r.Data.Keys, nil
}
