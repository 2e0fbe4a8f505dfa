package config

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKeyFile is a valid token hash key file shared by the package's tests
// (TestMain creates and removes it).
var testKeyFile string

// testKey is the key in testKeyFile.
var testKey = bytes.Repeat([]byte{0x5a}, 32)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tokend-config-test-")
	if err != nil {
		panic(err)
	}
	testKeyFile = filepath.Join(dir, "token-hash.key")
	if err := os.WriteFile(testKeyFile, []byte(base64.StdEncoding.EncodeToString(testKey)+"\n"), 0o600); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestTokenHashKeyFile(t *testing.T) {
	dataDir := t.TempDir()
	base := []string{"-data-dir", dataDir, "-bootstrap-expect", "3"}
	c, err := Load(base, env())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.TokenHashKey, testKey) || c.TokenHashKeyFile != testKeyFile {
		t.Fatalf("key not loaded from %s", testKeyFile)
	}
	// Flag beats env; the key itself never shows in String or the log fields.
	other := writeKeyFile(t, bytes.Repeat([]byte{1}, 48), 0o600)
	c, err = Load(append(base, "-token-hash-key-file", other), env())
	if err != nil || !bytes.Equal(c.TokenHashKey, bytes.Repeat([]byte{1}, 48)) {
		t.Fatalf("flag: err=%v", err)
	}
	enc := base64.StdEncoding.EncodeToString(c.TokenHashKey)
	if s := c.String() + c.GoString(); strings.Contains(s, enc) {
		t.Fatal("String shows the token hash key")
	}
	// -dev needs no key.
	if c, err := Load([]string{"-dev"}, env("TOKEND_TOKEN_HASH_KEY_FILE", "")); err != nil || c.TokenHashKey != nil {
		t.Fatalf("-dev without a key: err=%v", err)
	}

	secretB64 := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))
	short := writeKeyFile(t, bytes.Repeat([]byte{1}, 16), 0o600)
	open := writeKeyFile(t, bytes.Repeat([]byte{1}, 32), 0o644)
	junk := filepath.Join(t.TempDir(), "junk")
	if err := os.WriteFile(junk, []byte("not base64 "+secretB64), 0o600); err != nil {
		t.Fatal(err)
	}
	inside := filepath.Join(dataDir, "key")
	if err := os.WriteFile(inside, []byte(secretB64), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name string
		args []string
		env  func(string) string
		want string
	}{
		{"missing", base, env("TOKEND_TOKEN_HASH_KEY_FILE", ""), "invalid config: -token-hash-key-file is required"},
		{"no such file", append(base, "-token-hash-key-file", junk+".none"), env(), "invalid config: -token-hash-key-file \"" + junk + ".none\" does not exist"},
		{"short", append(base, "-token-hash-key-file", short), env(), "invalid config: -token-hash-key-file \"" + short + "\" must hold 32 to 64 bytes (got 16)"},
		{"not base64", append(base, "-token-hash-key-file", junk), env(), "invalid config: -token-hash-key-file \"" + junk + "\" is not base64"},
		{"group readable", append(base, "-token-hash-key-file", open), env(), "invalid config: -token-hash-key-file \"" + open + "\" is readable by group or others (mode 0644)"},
		{"inside the data dir", append(base, "-token-hash-key-file", inside), env(), "invalid config: -token-hash-key-file \"" + inside + "\" must not be inside -data-dir"},
		{"a directory", append(base, "-token-hash-key-file", t.TempDir()), env(), "invalid config: -token-hash-key-file"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.args, tt.env)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want prefix %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), secretB64) {
				t.Fatalf("error spans lines or shows the key: %q", err)
			}
		})
	}
}

func writeKeyFile(t *testing.T, key []byte, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(key)), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}
