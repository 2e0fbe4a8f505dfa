package audit

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

var hashRE = regexp.MustCompile(`^hmac-sha256:[0-9a-f]{64}$`)

func testHasher() *Hasher { return NewHasher(DeriveKey([]byte("0123456789abcdef0123456789abcdef"))) }

func TestHashIsHMACOfDerivedKey(t *testing.T) {
	index := []byte("0123456789abcdef0123456789abcdef")
	m := hmac.New(sha256.New, index)
	m.Write([]byte("tokend-audit"))
	key := m.Sum(nil)
	if !bytes.Equal(DeriveKey(index), key) {
		t.Fatal("DeriveKey is not HMAC-SHA256(indexKey, \"tokend-audit\")")
	}
	m = hmac.New(sha256.New, key)
	m.Write([]byte("hvs.secret"))
	want := "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
	h := NewHasher(key)
	for i := 0; i < 3; i++ { // pooled hashers must reset
		if got := h.Hash("hvs.secret"); got != want {
			t.Fatalf("Hash = %s, want %s", got, want)
		}
	}
	if h.Hash("") != "" {
		t.Fatal("empty input must stay empty")
	}
	if NewHasher(DeriveKey([]byte("other"))).Hash("hvs.secret") == want {
		t.Fatal("different keys gave the same hash")
	}
}

func TestRedactHashesEverySecretField(t *testing.T) {
	h := testHasher()
	secret := "hvs.TOPSECRET0123456789abcd"
	secretKeys := []string{"token", "id", "accessor", "client_token", "client_token_accessor",
		"wrapped_accessor", "root_token", "input", "display_name", "entity_id", "unknown_field"}
	in := map[string]any{
		"policies":  []string{"default", "dev"},
		"ttl":       "1h",
		"num_uses":  json.Number("3"),
		"renewable": true,
		"meta":      map[string]string{"policies": secret, "owner": secret},
		"keys":      []string{secret, secret},
		"nested":    map[string]any{"deep": []any{map[string]any{"token": secret}}},
		"typed":     struct{ Token string }{Token: secret},
		"nothing":   nil,
	}
	for _, k := range secretKeys {
		in[k] = secret
	}
	out := Redact(in, h)
	if in["token"] != secret {
		t.Fatal("Redact modified its input")
	}
	for _, k := range secretKeys {
		if got, _ := out[k].(string); !hashRE.MatchString(got) || got != h.Hash(secret) {
			t.Errorf("%s = %v, want the hash", k, out[k])
		}
	}
	if got := out["policies"].([]any); got[0] != "default" || got[1] != "dev" {
		t.Errorf("policies = %v, want readable", got)
	}
	if out["ttl"] != "1h" || out["num_uses"] != json.Number("3") || out["renewable"] != true || out["nothing"] != nil {
		t.Errorf("plain values changed: %v", out)
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("TOPSECRET")) {
		t.Fatalf("plaintext secret in redacted data: %s", b)
	}
	if !bytes.Contains(b, []byte(`"meta":{"owner":"hmac-sha256:`)) {
		t.Errorf("meta not hashed per value: %s", b)
	}
	if got := RedactValue(map[string]any{"root_token": secret, "keys": []string{}}, h).(map[string]any); got["root_token"] != h.Hash(secret) {
		t.Errorf("RedactValue root_token = %v", got["root_token"])
	}
	type bare struct {
		RootToken string `json:"root_token"`
		Version   string `json:"version"`
	}
	got := RedactValue(bare{RootToken: secret, Version: "1.0"}, h).(map[string]any)
	if got["root_token"] != h.Hash(secret) || got["version"] != "1.0" {
		t.Errorf("RedactValue(struct) = %v", got)
	}
}

// failWriter fails every write after the first ok ones.
type failWriter struct {
	mu sync.Mutex
	ok int
}

func (w *failWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ok > 0 {
		w.ok--
		return len(p), nil
	}
	return 0, errors.New("no space left on device")
}

func TestLogWriteErrors(t *testing.T) {
	l := New(&failWriter{ok: 1})
	e := &Entry{Type: TypeRequest, Request: &Request{ID: "x"}}
	if err := l.Write(e); err != nil {
		t.Fatalf("first write: %v", err)
	}
	if err := l.Write(e); err == nil || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("second write err = %v, want the writer's error", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Write(e); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after close = %v, want ErrClosed", err)
	}
}

func TestLogFileConcurrentReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if fi, _ := os.Stat(path); fi.Mode().Perm() != FileMode {
		t.Fatalf("mode %v, want %v", fi.Mode().Perm(), os.FileMode(FileMode))
	}
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				e := &Entry{Time: time.Now().UTC().Format(time.RFC3339Nano), Type: TypeRequest,
					Request: &Request{ID: strings.Repeat("x", 200), Path: "auth/token/lookup-self"}}
				if err := l.Write(e); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	// Rotate while writers run: every line lands whole in one of the files.
	rotated := filepath.Join(dir, "audit.log.1")
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, p := range []string{rotated, path} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var e Entry
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("%s: bad line %q: %v", p, sc.Text(), err)
			}
			total++
		}
		f.Close()
	}
	if total != writers*each {
		t.Fatalf("%d lines, want %d", total, writers*each)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != FileMode {
		t.Fatalf("reopened mode %v", fi.Mode().Perm())
	}
}

func TestOpenFileErrors(t *testing.T) {
	if _, err := OpenFile(filepath.Join(t.TempDir(), "missing", "audit.log")); err == nil {
		t.Fatal("OpenFile in a missing directory succeeded")
	}
}
