// Package procs runs tokend as real operating-system processes on loopback:
// it builds bin/tokend once, starts nodes with their own data dirs and free
// ports, and kills (SIGKILL), stops and restarts them. Tests drive the nodes
// only through the external contract (flags, HTTP).
package procs

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
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
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Binary builds ./cmd/tokend once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tokend-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tokend")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/tokend/tokend/cmd/tokend")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Node is one tokend process.
type Node struct {
	ID       string
	DataDir  string
	HTTPAddr string
	RaftAddr string
	Gossip   string
	LogPath  string

	cmd  *exec.Cmd
	done chan struct{}
}

// Cluster is a set of tokend processes.
type Cluster struct {
	t         testing.TB
	bin       string
	Nodes     []*Node
	RootToken string
	// CertDir holds the gen-certs output when the cluster runs cluster TLS.
	CertDir   string
	clientTLS bool
	client    *http.Client
	opts      Options

	// Dir holds the nodes' data dirs, logs and the key files.
	Dir string
	// TokenHashKeyFile is every node's -token-hash-key-file (outside the
	// data dirs, mode 0600); TokenHashKey is its key.
	TokenHashKeyFile string
	TokenHashKey     []byte
	// ClusterKey is every node's -cluster-key (base64).
	ClusterKey string
}

// Options tune a process cluster; the zero value is plain TCP between
// nodes and New's defaults.
type Options struct {
	// ClusterTLS creates a CA and node certificates with `tokend operator
	// gen-certs` and starts every node with -cluster-tls-*.
	ClusterTLS bool
	// Args returns extra server flags for node i (nil: none).
	Args func(i int) []string
	// Env is added to every node's environment.
	Env []string
	// ClientTLS (with ClusterTLS) also serves every node's HTTP API over
	// TLS with its gen-certs certificate (SANs localhost and 127.0.0.1);
	// Do then speaks https trusting the generated CA.
	ClientTLS bool
}

// New starts n processes with -bootstrap-expect n, waits for a leader and
// initialises the cluster. Every process is killed by t.Cleanup.
func New(t testing.TB, n int) *Cluster {
	t.Helper()
	return NewWith(t, n, Options{})
}

// NewWithArgs is New with extra server flags for every node.
func NewWithArgs(t testing.TB, n int, extra ...string) *Cluster {
	t.Helper()
	return NewWith(t, n, Options{Args: func(int) []string { return extra }})
}

// NewWith is New with options.
func NewWith(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: Binary(t), client: &http.Client{Timeout: 5 * time.Second}, opts: opts}
	base := t.TempDir()
	c.Dir = base
	c.TokenHashKey = randomKey(t, 32)
	c.TokenHashKeyFile = filepath.Join(base, "token-hash.key")
	if err := os.WriteFile(c.TokenHashKeyFile, []byte(base64.StdEncoding.EncodeToString(c.TokenHashKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ClusterKey = base64.StdEncoding.EncodeToString(randomKey(t, 32))
	if opts.ClusterTLS {
		c.CertDir = filepath.Join(base, "certs")
		args := []string{"operator", "gen-certs", "-dir", c.CertDir}
		for i := 0; i < n; i++ {
			args = append(args, fmt.Sprintf("node%d", i))
		}
		if out, err := exec.Command(c.bin, args...).CombinedOutput(); err != nil {
			t.Fatalf("tokend operator gen-certs: %v\n%s", err, out)
		}
		if opts.ClientTLS {
			pem, err := os.ReadFile(filepath.Join(c.CertDir, "ca.pem"))
			if err != nil {
				t.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			c.clientTLS = true
			c.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		}
	}
	for i := 0; i < n; i++ {
		node := &Node{
			ID:       fmt.Sprintf("node%d", i),
			DataDir:  filepath.Join(base, fmt.Sprintf("node%d", i)),
			HTTPAddr: freeAddr(t),
			RaftAddr: freeAddr(t),
			Gossip:   freeAddr(t),
			LogPath:  filepath.Join(base, fmt.Sprintf("node%d.log", i)),
		}
		if err := os.MkdirAll(node.DataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, node)
	}
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.Kill(i)
		}
		if t.Failed() {
			for _, n := range c.Nodes {
				if data, err := os.ReadFile(n.LogPath); err == nil {
					t.Logf("--- log of %s (last 4 KiB) ---\n%s", n.ID, tail(data, 4096))
				}
			}
		}
	})
	for i := range c.Nodes {
		c.Start(i)
	}
	leader := c.WaitForLeader(30 * time.Second)
	var init struct {
		RootToken string `json:"root_token"`
	}
	status, body := c.Do(leader, http.MethodPut, "/v1/sys/init", "", `{}`)
	if status != http.StatusOK {
		t.Fatalf("sys/init: %d %s", status, body)
	}
	if err := json.Unmarshal(body, &init); err != nil || init.RootToken == "" {
		t.Fatalf("sys/init body %s: %v", body, err)
	}
	c.RootToken = init.RootToken
	return c
}

func randomKey(t testing.TB, n int) []byte {
	k := make([]byte, n)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// freeAddr finds a free loopback port. The port is released before tokend
// binds it; a collision in that gap fails the start loudly.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Start launches node i (again) on its data dir and addresses.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	n := c.Nodes[i]
	var join []string
	for j, other := range c.Nodes {
		if j != i {
			join = append(join, other.Gossip)
		}
	}
	logFile, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	args := []string{"server",
		"-node-id", n.ID,
		"-data-dir", n.DataDir,
		"-http-addr", n.HTTPAddr,
		"-raft-addr", n.RaftAddr,
		"-gossip-addr", n.Gossip,
		"-bootstrap-expect", strconv.Itoa(len(c.Nodes)),
		"-log-level", "debug",
		"-token-hash-key-file", c.TokenHashKeyFile,
		"-cluster-key", c.ClusterKey,
	}
	for _, j := range join {
		args = append(args, "-join", j)
	}
	if c.CertDir != "" {
		args = append(args,
			"-cluster-tls-cert-file", filepath.Join(c.CertDir, n.ID+".pem"),
			"-cluster-tls-key-file", filepath.Join(c.CertDir, n.ID+"-key.pem"),
			"-cluster-tls-ca-file", filepath.Join(c.CertDir, "ca.pem"))
	}
	if c.opts.Args != nil {
		args = append(args, c.opts.Args(i)...)
	}
	if c.clientTLS {
		args = append(args,
			"-tls-cert-file", filepath.Join(c.CertDir, n.ID+".pem"),
			"-tls-key-file", filepath.Join(c.CertDir, n.ID+"-key.pem"))
	}
	cmd := exec.Command(c.bin, args...)
	if len(c.opts.Env) > 0 {
		cmd.Env = append(os.Environ(), c.opts.Env...)
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		c.t.Fatalf("start %s: %v", n.ID, err)
	}
	n.cmd = cmd
	n.done = make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}(n.done)
}

// Running reports whether node i's process is alive.
func (c *Cluster) Running(i int) bool {
	n := c.Nodes[i]
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL to node i and waits for it to exit.
func (c *Cluster) Kill(i int) { c.signal(i, syscall.SIGKILL) }

// Terminate sends SIGTERM to node i and waits for it to exit.
func (c *Cluster) Terminate(i int) { c.signal(i, syscall.SIGTERM) }

func (c *Cluster) signal(i int, sig syscall.Signal) {
	n := c.Nodes[i]
	if !c.Running(i) {
		return
	}
	_ = n.cmd.Process.Signal(sig)
	select {
	case <-n.done:
	case <-time.After(30 * time.Second):
		_ = n.cmd.Process.Kill()
		<-n.done
		c.t.Errorf("%s did not exit within 30s of %v", n.ID, sig)
	}
}

// Do sends one HTTP request to node i and returns status and body (status 0
// on a transport error). headers are extra name, value pairs.
func (c *Cluster) Do(i int, method, path, token, body string, headers ...string) (int, []byte) {
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	scheme := "http://"
	if c.clientTLS {
		scheme = "https://"
	}
	req, err := http.NewRequest(method, scheme+c.Nodes[i].HTTPAddr+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	for k := 0; k+1 < len(headers); k += 2 {
		req.Header.Set(headers[k], headers[k+1])
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// LeaderIndex asks every running node for sys/leader and returns the index of
// the node that says it leads, or -1.
func (c *Cluster) LeaderIndex() int {
	for i := range c.Nodes {
		if !c.Running(i) {
			continue
		}
		status, body := c.Do(i, http.MethodGet, "/v1/sys/leader", "", "")
		if status != http.StatusOK {
			continue
		}
		var leader struct {
			IsSelf bool `json:"is_self"`
		}
		if json.Unmarshal(body, &leader) == nil && leader.IsSelf {
			return i
		}
	}
	return -1
}

// WaitForLeader polls until a running node reports itself leader.
func (c *Cluster) WaitForLeader(timeout time.Duration) int {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.LeaderIndex(); l >= 0 {
			return l
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	c.t.Fatalf("no leader within %s", timeout)
	return -1
}
