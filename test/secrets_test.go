package test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/test/inproc"
	"github.com/tokend/tokend/test/procs"
)

// secretForms are the encodings under which a secret is searched for: the
// raw bytes, standard and URL base64 (padded and not), hex, and for a
// prefixed token (hvs./hvb.) its base62 body alone.
func secretForms(secret []byte) map[string]string {
	forms := map[string]string{
		"raw":           string(secret),
		"base64":        base64.StdEncoding.EncodeToString(secret),
		"base64-raw":    base64.RawStdEncoding.EncodeToString(secret),
		"base64url":     base64.URLEncoding.EncodeToString(secret),
		"base64url-raw": base64.RawURLEncoding.EncodeToString(secret),
		"hex":           hex.EncodeToString(secret),
		"HEX":           strings.ToUpper(hex.EncodeToString(secret)),
	}
	for _, p := range []string{"hvs.", "hvb."} {
		if body, ok := strings.CutPrefix(string(secret), p); ok {
			forms["base62-body"] = body
		}
	}
	return forms
}

// grepSecrets searches every file under roots for every form of every
// secret with grep -a -F (a multi-pattern search, as RELIABILITY.md S1
// describes) and returns "file: name (form)" for each hit. Forms grep
// cannot take as a pattern line (binary keys with a newline) are searched
// for in Go.
func grepSecrets(t *testing.T, secrets map[string][]byte, roots ...string) []string {
	t.Helper()
	patFile := filepath.Join(t.TempDir(), "patterns")
	var pats bytes.Buffer
	owner := map[string]string{}
	binary := map[string]string{}
	for name, s := range secrets {
		for form, v := range secretForms(s) {
			if len(v) < 16 {
				t.Fatalf("secret %s (%s) is too short to search for", name, form)
			}
			if strings.ContainsAny(v, "\n\x00") {
				binary[v] = name + " (" + form + ")"
				continue
			}
			owner[v] = name + " (" + form + ")"
			pats.WriteString(v + "\n")
		}
	}
	if err := os.WriteFile(patFile, pats.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	var hits []string
	if len(binary) > 0 {
		for _, r := range roots {
			err := filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				for v, name := range binary {
					if bytes.Contains(data, []byte(v)) {
						hits = append(hits, p+": "+name)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	args := []string{"-r", "-a", "-o", "-H", "-F", "-f", patFile, "--"}
	args = append(args, roots...)
	out, err := exec.Command("grep", args...).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return hits // no match
	}
	if err != nil {
		t.Fatalf("grep: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		// -o prints the pattern that matched at each place.
		file, match, _ := strings.Cut(sc.Text(), ":")
		hits = append(hits, fmt.Sprintf("%s: %s", file, owner[match]))
	}
	return hits
}

// checkPrivateModes fails for any directory under root that is not 0700 or
// file that is not 0600 (CVE-2021-38553).
func checkPrivateModes(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %04o, want %04o", p, fi.Mode().Perm(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var auditTokenRE = regexp.MustCompile(`^hmac-sha256:[0-9a-f]{64}$`)

// auditClientTokens checks every "client_token" value at any depth of every
// audit line and returns how many it checked.
func auditClientTokens(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && k == "client_token" && s != "" {
					n++
					if !auditTokenRE.MatchString(s) {
						t.Errorf("%s: client_token %.20q… is not hmac-sha256:<64 hex>", path, s)
					}
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	for i, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var v any
		if err := json.Unmarshal(line, &v); err != nil {
			t.Fatalf("%s line %d is not JSON: %v", path, i+1, err)
		}
		walk(v)
	}
	return n
}

// TestProcessNoPlaintextAtRest is RELIABILITY.md S1: three real nodes with
// audit logs and small snapshot thresholds serve service, child and batch
// tokens, renewals, lookups and revocations across a leader kill and
// restart; afterwards no token (and not the token hash key) appears in any
// form in any file of any data dir, in the process logs or in the audit
// logs, and every file is private.
func TestProcessNoPlaintextAtRest(t *testing.T) {
	auditDir := t.TempDir()
	c := procs.NewWith(t, 3, procs.Options{
		Args: func(i int) []string {
			return []string{"-audit-file", filepath.Join(auditDir, fmt.Sprintf("node%d.audit.log", i)), "-log-level", "trace"}
		},
		Env: []string{"TOKEND_TEST_SNAPSHOT_THRESHOLD=32"},
	})
	ledger := map[string][]byte{"root": []byte(c.RootToken)}
	record := func(kind, tok string) {
		if tok == "" {
			t.Fatalf("%s: no token", kind)
		}
		ledger[fmt.Sprintf("%s-%d", kind, len(ledger))] = []byte(tok)
	}
	call := func(i int, method, path, token, body string) map[string]any {
		t.Helper()
		var status int
		var resp []byte
		// A write during an election answers 503; clients retry.
		for try := 0; try < 100; try++ {
			if status, resp = c.Do(i, method, path, token, body); status != http.StatusServiceUnavailable && status != 0 {
				break
			}
			time.Sleep(100 * time.Millisecond) // client retry interval
			i = (i + 1) % len(c.Nodes)
			for !c.Running(i) {
				i = (i + 1) % len(c.Nodes)
			}
		}
		if status/100 != 2 {
			t.Fatalf("%s %s via node %d: %d %s", method, path, i, status, resp)
		}
		var v map[string]any
		if len(resp) > 0 {
			if err := json.Unmarshal(resp, &v); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
		}
		return v
	}
	clientToken := func(v map[string]any) string {
		auth, _ := v["auth"].(map[string]any)
		s, _ := auth["client_token"].(string)
		return s
	}
	round := func(r int) {
		for i := range c.Nodes {
			if !c.Running(i) {
				continue
			}
			svc := clientToken(call(i, "POST", "/v1/auth/token/create", c.RootToken, `{"ttl":"1h","policies":["default"]}`))
			record("service", svc)
			parent := clientToken(call(i, "POST", "/v1/auth/token/create", c.RootToken, `{"ttl":"1h","policies":["root"]}`))
			record("parent", parent)
			child := clientToken(call(i, "POST", "/v1/auth/token/create", parent, `{"ttl":"30m"}`))
			record("child", child)
			batch := clientToken(call(i, "POST", "/v1/auth/token/create", c.RootToken, `{"ttl":"1h","type":"batch","policies":["default"]}`))
			if !strings.HasPrefix(batch, "hvb.") {
				t.Fatalf("batch create gave %.4q…", batch)
			}
			record("batch", batch)
			call(i, "POST", "/v1/auth/token/renew", c.RootToken, `{"token":"`+svc+`","increment":"2h"}`)
			call(i, "POST", "/v1/auth/token/renew-self", child, `{}`)
			call(i, "POST", "/v1/auth/token/lookup", c.RootToken, `{"token":"`+batch+`"}`)
			call(i, "GET", "/v1/auth/token/lookup-self", svc, "")
			call(i, "POST", "/v1/auth/token/revoke", c.RootToken, `{"token":"`+parent+`"}`) // cascades to child
			call(i, "POST", "/v1/auth/token/revoke-self", svc, "")
		}
		t.Logf("round %d: %d tokens issued", r, len(ledger))
	}
	for r := 0; r < 3; r++ {
		round(r)
	}
	leader := c.WaitForLeader(30 * time.Second)
	c.Kill(leader)
	c.WaitForLeader(30 * time.Second)
	round(3)
	c.Start(leader)
	waitHealthy(t, c, leader)
	for r := 4; r < 6; r++ {
		round(r)
	}
	// Wait until every node holds a snapshot (threshold 32, checked every 1-2 s).
	deadline := time.Now().Add(30 * time.Second)
	for i, n := range c.Nodes {
		for {
			m, _ := filepath.Glob(filepath.Join(n.DataDir, "raft", "snapshots", "*", "state.bin"))
			if len(m) == 0 {
				m, _ = filepath.Glob(filepath.Join(n.DataDir, "*", "*", "state.bin"))
			}
			if len(m) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d has no snapshot within 30s", i)
			}
			round(99)
			time.Sleep(500 * time.Millisecond) // the snapshot check runs every 1-2 s
		}
	}
	for i := range c.Nodes {
		c.Terminate(i)
	}

	// Control: the same search finds every token in the test's own ledger.
	ledgerFile := filepath.Join(t.TempDir(), "ledger")
	var lb bytes.Buffer
	for _, tok := range ledger {
		lb.Write(tok)
		lb.WriteByte('\n')
	}
	if err := os.WriteFile(ledgerFile, lb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, h := range grepSecrets(t, ledger, ledgerFile) {
		found[h] = true
	}
	for name := range ledger {
		if !found[ledgerFile+": "+name+" (raw)"] {
			t.Fatalf("control: the search does not find %s in the ledger", name)
		}
	}

	secrets := map[string][]byte{"token-hash-key": c.TokenHashKey}
	for k, v := range ledger {
		secrets[k] = v
	}
	var roots []string
	for _, n := range c.Nodes {
		roots = append(roots, n.DataDir, n.LogPath)
	}
	roots = append(roots, auditDir)
	if hits := grepSecrets(t, secrets, roots...); len(hits) > 0 {
		t.Fatalf("%d secrets at rest, e.g.:\n%s", len(hits), strings.Join(hits[:min(len(hits), 20)], "\n"))
	}

	checked := 0
	for i := range c.Nodes {
		checked += auditClientTokens(t, filepath.Join(auditDir, fmt.Sprintf("node%d.audit.log", i)))
		checkPrivateModes(t, c.Nodes[i].DataDir)
		checkPrivateModes(t, filepath.Join(auditDir, fmt.Sprintf("node%d.audit.log", i)))
	}
	if checked == 0 {
		t.Fatal("no client_token in any audit log")
	}
	var files, bytesTotal int64
	var names []string
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if fi, err := d.Info(); err == nil {
					files++
					bytesTotal += fi.Size()
					if rel, err := filepath.Rel(c.Dir, p); err == nil && !strings.HasPrefix(rel, "..") {
						names = append(names, rel)
					}
				}
			}
			return nil
		})
	}
	t.Logf("searched: %s and the audit logs", strings.Join(names, ", "))
	t.Logf("%d tokens × %d forms searched in %d files (%d KiB): 0 hits; %d audit client_token fields checked",
		len(ledger), len(secretForms([]byte("hvs.x"))), files, bytesTotal/1024, checked)
}

// TestTokenHashKeyNeverInDataDir: the key under which token IDs are hashed
// is never written to a data dir (raft log, snapshots, anything), nor
// logged, while tokens are created, snapshotted and revoked.
func TestTokenHashKeyNeverInDataDir(t *testing.T) {
	timing := cluster.FastTiming()
	timing.SnapshotThreshold, timing.TrailingLogs, timing.SnapshotInterval = 16, 8, 200*time.Millisecond
	c := inproc.NewWith(t, 3, inproc.Options{Timing: timing})
	tokens := map[string][]byte{}
	// 503s (elections on a loaded machine) are retried, as clients do.
	eventually := func(what string, f func() error) {
		t.Helper()
		var err error
		for try := 0; try < 50; try++ {
			if err = f(); !retryable(err) {
				break
			}
			time.Sleep(100 * time.Millisecond) // client retry interval
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for i := 0; i < 60; i++ {
		var s *vaultapi.Secret
		eventually("create", func() (err error) {
			s, err = c.Client(i % 3).Auth().Token().Create(&vaultapi.TokenCreateRequest{TTL: "1h"})
			return err
		})
		tokens[fmt.Sprintf("token-%d", i)] = []byte(s.Auth.ClientToken)
		if i%3 == 0 {
			eventually("revoke", func() error { return c.Client(i % 3).Auth().Token().RevokeTree(s.Auth.ClientToken) })
		}
	}
	c.WaitFor(20*time.Second, "a snapshot on every node", func() bool {
		for _, n := range c.Nodes {
			if m, _ := filepath.Glob(filepath.Join(n.DataDir, "raft", "snapshots", "*", "state.bin")); len(m) == 0 {
				return false
			}
		}
		return true
	})
	c.StopAll()
	logFile := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(logFile, []byte(c.LogOutput()), 0o600); err != nil {
		t.Fatal(err)
	}
	roots := []string{logFile}
	for _, n := range c.Nodes {
		roots = append(roots, n.DataDir)
	}
	// Control: the hash of every token is there; the key and the tokens are not.
	var hashes int
	for _, tok := range tokens {
		for _, r := range roots[1:] {
			if m, _ := filepath.Glob(filepath.Join(r, "raft", "snapshots", "*", "state.bin")); len(m) > 0 {
				data, err := os.ReadFile(m[len(m)-1])
				if err != nil {
					t.Fatal(err)
				}
				if bytes.Contains(data, []byte(c.Hasher.Hash(string(tok)))) {
					hashes++
					break
				}
			}
		}
	}
	if hashes == 0 {
		t.Fatal("control: no token hash found in any snapshot")
	}
	secrets := map[string][]byte{"token-hash-key": c.TokenHashKey}
	for k, v := range tokens {
		secrets[k] = v
	}
	if hits := grepSecrets(t, secrets, roots...); len(hits) > 0 {
		t.Fatalf("secrets at rest:\n%s", strings.Join(hits, "\n"))
	}
	// File modes are not checked here: files raft creates after start-up
	// get their mode from the server's umask (077), which this test process
	// does not set; TestProcessNoPlaintextAtRest checks them on real servers.
}
