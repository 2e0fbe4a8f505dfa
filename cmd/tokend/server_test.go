package main

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	addrRE = regexp.MustCompile(`export VAULT_ADDR='([^']+)'`)
	rootRE = regexp.MustCompile(`Root Token: (\S+)`)
)

// devServer runs `tokend server -dev` in-process on loopback port 0 until
// stop is called; stop returns the exit code.
func devServer(t *testing.T, extra ...string) (stdout, stderr *syncBuffer, stop func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	args := append([]string{"server", "-dev", "-http-addr", "127.0.0.1:0", "-raft-addr", "127.0.0.1:0",
		"-gossip-addr", "127.0.0.1:0", "-log-level", "warn"}, extra...)
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, mapEnv(), strings.NewReader(""), stdout, stderr) }()
	var once sync.Once
	code := -1
	stop = func() int {
		once.Do(func() {
			cancel()
			select {
			case code = <-done:
			case <-time.After(60 * time.Second):
				t.Errorf("server did not stop; stderr:\n%s", stderr.String())
			}
		})
		return code
	}
	t.Cleanup(func() { stop() })
	// Wait for the banner (or an early exit).
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "dev mode") {
		select {
		case c := <-done:
			done <- c
			t.Fatalf("server exited %d before the banner; stderr:\n%s", c, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner; stderr:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	// The banner is written in one call after the root line; wait for its end.
	for !strings.Contains(stdout.String(), "\n\n") || !(rootRE.MatchString(stdout.String()) || strings.Contains(stdout.String(), "already initialised")) {
		if time.Now().After(deadline) {
			t.Fatalf("incomplete banner:\n%s", stdout.String())
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	return stdout, stderr, stop
}

func TestServerDevLifecycle(t *testing.T) {
	stdout, stderr, stop := devServer(t, "-dev-root-token-id", "s.devroot")
	out := stdout.String()
	m := addrRE.FindStringSubmatch(out)
	r := rootRE.FindStringSubmatch(out)
	if m == nil || r == nil || r[1] != "s.devroot" {
		t.Fatalf("banner:\n%s", out)
	}
	dataDir := regexp.MustCompile(`data in (\S+) \(removed at exit\)`).FindStringSubmatch(out)
	if dataDir == nil {
		t.Fatalf("banner lacks the temp data dir:\n%s", out)
	}
	if strings.Contains(stderr.String(), "s.devroot") {
		t.Errorf("root token in the log")
	}

	cfg := api.DefaultConfig()
	cfg.Address = m[1]
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(r[1])
	inited, err := c.Sys().InitStatus()
	if err != nil || !inited {
		t.Fatalf("init status %v %v", inited, err)
	}

	if code := stop(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(dataDir[1]); !os.IsNotExist(err) {
		t.Fatalf("dev data dir %s not removed: %v", dataDir[1], err)
	}
}

func TestServerDevRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	stdout, stderr, stop := devServer(t, "-data-dir", dir)
	if !rootRE.MatchString(stdout.String()) || strings.Contains(stdout.String(), "removed at exit") {
		t.Fatalf("first banner:\n%s", stdout.String())
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	stdout, stderr, stop = devServer(t, "-data-dir", dir)
	if rootRE.MatchString(stdout.String()) || !strings.Contains(stdout.String(), "already initialised") {
		t.Fatalf("second banner:\n%s", stdout.String())
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("explicit data dir removed: %v", err)
	}
}
