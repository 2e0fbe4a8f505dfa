package test

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tokend/tokend/test/procs"
)

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestCLIAgainstDevServer starts `tokend server -dev` as a process and drives
// it with the tokend CLI: create, lookup, renew, revoke and the operator
// commands, in table and JSON formats.
func TestCLIAgainstDevServer(t *testing.T) {
	bin := procs.Binary(t)
	httpAddr := freeLoopbackAddr(t)
	server := exec.Command(bin, "server", "-dev", "-dev-root-token-id", "clitestroot",
		"-http-addr", httpAddr, "-raft-addr", freeLoopbackAddr(t), "-gossip-addr", freeLoopbackAddr(t))
	// A file, not a buffer: the process writes to it directly, so reading it
	// from the test does not race with a copying goroutine.
	out, err := os.CreateTemp(t.TempDir(), "server-output")
	if err != nil {
		t.Fatal(err)
	}
	server.Stdout = out
	server.Stderr = out
	output := func() string {
		data, _ := os.ReadFile(out.Name())
		return string(data)
	}
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = server.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- server.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("dev server did not exit cleanly on SIGTERM: %v\n%s", err, output())
			}
		case <-time.After(20 * time.Second):
			_ = server.Process.Kill()
			t.Errorf("dev server did not stop within 20s of SIGTERM")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev server not healthy within 20s:\n%s", output())
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}

	run := func(token string, args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "TOKEND_ADDR=http://"+httpAddr, "TOKEND_TOKEN="+token, "VAULT_ADDR=", "VAULT_TOKEN=")
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	mustRun := func(token string, args ...string) string {
		t.Helper()
		stdout, stderr, err := run(token, args...)
		if err != nil {
			t.Fatalf("tokend %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout, stderr)
		}
		return stdout
	}

	created := mustRun("clitestroot", "token", "create", "-format=json", "-ttl=1h", "-policy=web", "-metadata=team=a")
	var secret struct {
		Auth struct {
			ClientToken string `json:"client_token"`
			Accessor    string `json:"accessor"`
		} `json:"auth"`
	}
	if err := json.Unmarshal([]byte(created), &secret); err != nil || secret.Auth.ClientToken == "" {
		t.Fatalf("token create -format=json printed %q: %v", created, err)
	}
	tok := secret.Auth.ClientToken

	table := mustRun("clitestroot", "token", "lookup", tok)
	for _, want := range []string{"policies", "web", "display_name", secret.Auth.Accessor} {
		if !strings.Contains(table, want) {
			t.Errorf("token lookup table lacks %q:\n%s", want, table)
		}
	}
	self := mustRun(tok, "token", "lookup", "-format=json")
	if !strings.Contains(self, `"team"`) {
		t.Errorf("self lookup lacks the metadata: %s", self)
	}
	renewed := mustRun("clitestroot", "token", "renew", "-increment=2h", "-format=json", tok)
	if !strings.Contains(renewed, `"lease_duration": 7200`) && !strings.Contains(renewed, `"lease_duration":7200`) {
		t.Errorf("renew -increment=2h: %s", renewed)
	}
	if out := mustRun("clitestroot", "operator", "members"); !strings.Contains(out, "dev") || !strings.Contains(out, "alive") {
		t.Errorf("operator members:\n%s", out)
	}
	if out := mustRun("clitestroot", "operator", "raft", "list-peers"); !strings.Contains(out, "dev") || !strings.Contains(out, "leader") {
		t.Errorf("operator raft list-peers:\n%s", out)
	}
	mustRun("clitestroot", "token", "revoke", tok)
	_, stderr, err := run("clitestroot", "token", "lookup", tok)
	if err == nil {
		t.Fatal("lookup of a revoked token exited 0")
	}
	if !strings.Contains(stderr, "bad token") {
		t.Errorf("lookup of a revoked token: stderr %q, want the server's error", stderr)
	}
	if _, _, err := run("", "token", "create"); err == nil {
		t.Error("token create without a token exited 0")
	}
	if strings.Contains(output(), strings.TrimPrefix(tok, "hvs.")) {
		t.Error("the server's output contains an issued token")
	}
}
