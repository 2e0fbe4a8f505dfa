package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env is a getenv with kv set. Unless kv says otherwise, it names a valid
// -token-hash-key-file (testKeyFile), which every non-dev config needs.
func env(kv ...string) func(string) string {
	m := map[string]string{"TOKEND_TOKEN_HASH_KEY_FILE": testKeyFile}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func fixedHostname(t *testing.T, h string) {
	t.Helper()
	old := hostnameFunc
	hostnameFunc = func() (string, error) { return h, nil }
	t.Cleanup(func() { hostnameFunc = old })
}

var key16 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
var key32 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{2}, 32))

func TestLoadDefaults(t *testing.T) {
	fixedHostname(t, "host-a")
	dir := t.TempDir()
	got, err := Load([]string{"-data-dir", dir, "-bootstrap-expect", "1"}, env())
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		NodeID:          "host-a",
		DataDir:         dir,
		HTTPAddr:        "127.0.0.1:8200",
		RaftAddr:        "127.0.0.1:8201",
		GossipAddr:      "127.0.0.1:8301",
		BootstrapExpect: 1,
		MaxStale:        time.Second,
		LogLevel:        "info",
		LogFormat:       "json",
		TLSMinVersion:   "tls12",

		RateLimitBurst:        DefaultRateLimitBurst,
		RateLimitBadAuth:      DefaultRateLimitBadAuth,
		RateLimitBadAuthBurst: DefaultRateLimitBadAuthBurst,

		TokenHashKeyFile: testKeyFile,
		TokenHashKey:     testKey,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
}

func TestLoadDevDefaults(t *testing.T) {
	got, err := Load([]string{"-dev"}, env())
	if err != nil {
		t.Fatal(err)
	}
	if got.NodeID != "dev" || got.BootstrapExpect != 1 || got.DataDir != "" || !got.Dev || got.LogFormat != "text" {
		t.Fatalf("dev defaults: %v", got)
	}
	// TOKEND_DEV works too, and a node id still wins over the dev default.
	got, err = Load(nil, env("TOKEND_DEV", "true", "TOKEND_NODE_ID", "n1"))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Dev || got.NodeID != "n1" {
		t.Fatalf("env dev: %v", got)
	}
}

func TestPrecedence(t *testing.T) {
	fixedHostname(t, "h")
	dir := t.TempDir()
	file := writeFile(t, "c.hcl", `
data_dir   = "`+dir+`"
bootstrap_expect = 1
node_id    = "from-file"
max_stale  = "3s"
log_level  = "debug"
http_addr  = "127.0.0.1:9000"
join       = ["127.0.0.1:1", "127.0.0.1:2"]
`)
	tests := []struct {
		name  string
		args  []string
		env   func(string) string
		check func(t *testing.T, c Config)
	}{
		{"file beats default", []string{"-config", file}, env(), func(t *testing.T, c Config) {
			if c.NodeID != "from-file" || c.MaxStale != 3*time.Second || c.LogLevel != "debug" || c.RaftAddr != DefaultRaftAddr {
				t.Errorf("got %v", c)
			}
			if !reflect.DeepEqual(c.Join, []string{"127.0.0.1:1", "127.0.0.1:2"}) {
				t.Errorf("join %q", c.Join)
			}
			if c.ConfigFile != file {
				t.Errorf("config file %q", c.ConfigFile)
			}
		}},
		{"env beats file", []string{"-config", file}, env("TOKEND_NODE_ID", "from-env", "TOKEND_MAX_STALE", "2s", "TOKEND_JOIN", "127.0.0.1:3"), func(t *testing.T, c Config) {
			if c.NodeID != "from-env" || c.MaxStale != 2*time.Second || c.LogLevel != "debug" {
				t.Errorf("got %v", c)
			}
			if !reflect.DeepEqual(c.Join, []string{"127.0.0.1:3"}) {
				t.Errorf("join %q", c.Join)
			}
		}},
		{"flag beats env", []string{"-config", file, "-node-id", "from-flag", "-join", "127.0.0.1:4", "-join", "127.0.0.1:5,127.0.0.1:6"}, env("TOKEND_NODE_ID", "from-env"), func(t *testing.T, c Config) {
			if c.NodeID != "from-flag" {
				t.Errorf("got %v", c)
			}
			if !reflect.DeepEqual(c.Join, []string{"127.0.0.1:4", "127.0.0.1:5", "127.0.0.1:6"}) {
				t.Errorf("join %q", c.Join)
			}
		}},
		{"empty env is unset", []string{"-config", file}, env("TOKEND_NODE_ID", ""), func(t *testing.T, c Config) {
			if c.NodeID != "from-file" {
				t.Errorf("got %v", c)
			}
		}},
		{"TOKEND_CONFIG names the file", nil, env("TOKEND_CONFIG", file), func(t *testing.T, c Config) {
			if c.NodeID != "from-file" {
				t.Errorf("got %v", c)
			}
		}},
		{"every env variable", nil, env(
			"TOKEND_NODE_ID", "e1", "TOKEND_DATA_DIR", dir, "TOKEND_HTTP_ADDR", "127.0.0.1:1200",
			"TOKEND_RAFT_ADDR", "127.0.0.1:1201", "TOKEND_GOSSIP_ADDR", "127.0.0.1:1301",
			"TOKEND_JOIN", "127.0.0.1:1,127.0.0.1:2", "TOKEND_BOOTSTRAP_EXPECT", "3",
			"TOKEND_CLUSTER_KEY", key16, "TOKEND_MAX_STALE", "250ms", "TOKEND_LOG_LEVEL", "WARN",
			"TOKEND_LOG_FORMAT", "text"), func(t *testing.T, c Config) {
			want := Config{NodeID: "e1", DataDir: dir, HTTPAddr: "127.0.0.1:1200", RaftAddr: "127.0.0.1:1201",
				GossipAddr: "127.0.0.1:1301", Join: []string{"127.0.0.1:1", "127.0.0.1:2"}, BootstrapExpect: 3,
				ClusterKey: bytes.Repeat([]byte{1}, 16), MaxStale: 250 * time.Millisecond, LogLevel: "warn", LogFormat: "text", TLSMinVersion: "tls12", RateLimitBurst: DefaultRateLimitBurst, RateLimitBadAuth: DefaultRateLimitBadAuth, RateLimitBadAuthBurst: DefaultRateLimitBadAuthBurst, TokenHashKeyFile: testKeyFile, TokenHashKey: testKey}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %#v\nwant %#v", c, want)
			}
		}},
		{"every flag", []string{"-node-id", "f1", "-data-dir", dir, "-http-addr", "localhost:1", "-raft-addr", "localhost:2",
			"-gossip-addr", "localhost:3", "-join", "localhost:4", "-bootstrap-expect", "5", "-cluster-key", key32,
			"-max-stale", "7", "-log-level", "trace", "-log-format", "json"}, env(), func(t *testing.T, c Config) {
			want := Config{NodeID: "f1", DataDir: dir, HTTPAddr: "localhost:1", RaftAddr: "localhost:2",
				GossipAddr: "localhost:3", Join: []string{"localhost:4"}, BootstrapExpect: 5,
				ClusterKey: bytes.Repeat([]byte{2}, 32), MaxStale: 7 * time.Second, LogLevel: "trace", LogFormat: "json", TLSMinVersion: "tls12", RateLimitBurst: DefaultRateLimitBurst, RateLimitBadAuth: DefaultRateLimitBadAuth, RateLimitBadAuthBurst: DefaultRateLimitBadAuthBurst, TokenHashKeyFile: testKeyFile, TokenHashKey: testKey}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got  %#v\nwant %#v", c, want)
			}
		}},
		{"dev flags", []string{"-dev", "-dev-root-token-id=root"}, env(), func(t *testing.T, c Config) {
			if !c.Dev || c.DevRootTokenID != "root" {
				t.Errorf("got %v", c)
			}
		}},
		{"-dev=false from flag beats env", []string{"-dev=false", "-data-dir", dir, "-bootstrap-expect", "2"}, env("TOKEND_DEV", "1"), func(t *testing.T, c Config) {
			if c.Dev || c.NodeID != "h" {
				t.Errorf("got %v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestConfigFiles(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, file, body string
		want             Config
	}{
		{"hcl", "c.hcl", `
# comments are fine
node_id          = "n1"
data_dir         = "` + dir + `"
bootstrap_expect = 3
join             = ["127.0.0.1:8301", "127.0.0.1:8311"]
cluster_key      = "` + key16 + `"
max_stale        = "1500ms"
log_level        = "warn"
dev              = false
`, Config{NodeID: "n1", DataDir: dir, HTTPAddr: DefaultHTTPAddr, RaftAddr: DefaultRaftAddr, GossipAddr: DefaultGossipAddr,
			Join: []string{"127.0.0.1:8301", "127.0.0.1:8311"}, BootstrapExpect: 3, ClusterKey: bytes.Repeat([]byte{1}, 16),
			MaxStale: 1500 * time.Millisecond, LogLevel: "warn", LogFormat: "json", TLSMinVersion: "tls12", RateLimitBurst: DefaultRateLimitBurst, RateLimitBadAuth: DefaultRateLimitBadAuth, RateLimitBadAuthBurst: DefaultRateLimitBadAuthBurst, TokenHashKeyFile: testKeyFile, TokenHashKey: testKey}},
		{"json", "c.json", `{
  "node_id": "n2",
  "data_dir": "` + dir + `",
  "http_addr": "127.0.0.1:8210",
  "raft_addr": "127.0.0.1:8211",
  "gossip_addr": "127.0.0.1:8311",
  "bootstrap_expect": 3,
  "join": "127.0.0.1:8301",
  "max_stale": 2,
  "log_format": "text"
}`, Config{NodeID: "n2", DataDir: dir, HTTPAddr: "127.0.0.1:8210", RaftAddr: "127.0.0.1:8211", GossipAddr: "127.0.0.1:8311",
			Join: []string{"127.0.0.1:8301"}, BootstrapExpect: 3, MaxStale: 2 * time.Second, LogLevel: "info", LogFormat: "text", TLSMinVersion: "tls12", RateLimitBurst: DefaultRateLimitBurst, RateLimitBadAuth: DefaultRateLimitBadAuth, RateLimitBadAuthBurst: DefaultRateLimitBadAuthBurst, TokenHashKeyFile: testKeyFile, TokenHashKey: testKey}},
		{"hcl dev", "dev.hcl", `dev = true
dev_root_token_id = "root"`, Config{NodeID: "dev", HTTPAddr: DefaultHTTPAddr, RaftAddr: DefaultRaftAddr, GossipAddr: DefaultGossipAddr,
			BootstrapExpect: 1, MaxStale: time.Second, LogLevel: "info", LogFormat: "text", Dev: true, DevRootTokenID: "root", TLSMinVersion: "tls12", RateLimitBurst: DefaultRateLimitBurst, RateLimitBadAuth: DefaultRateLimitBadAuth, RateLimitBadAuthBurst: DefaultRateLimitBadAuthBurst, TokenHashKeyFile: testKeyFile, TokenHashKey: testKey}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, tt.file, tt.body)
			got, err := Load([]string{"-config", p}, env())
			if err != nil {
				t.Fatal(err)
			}
			tt.want.ConfigFile = p
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	fixedHostname(t, "h")
	dir := t.TempDir()
	notDir := writeFile(t, "file", "x")
	dd := []string{"-data-dir", dir, "-bootstrap-expect", "1"}
	with := func(extra ...string) []string { return append(append([]string{}, dd...), extra...) }
	tests := []struct {
		name string
		args []string
		env  func(string) string
		file string // config file body (HCL/JSON), if any
		want string // the whole error, or a prefix ending in "…"
	}{
		{"bootstrap-expect 0", with("-bootstrap-expect", "0"), nil, "", "invalid config: -bootstrap-expect must be >= 1 (got 0)"},
		{"bootstrap-expect missing", []string{"-data-dir", dir}, nil, "", "invalid config: -bootstrap-expect must be >= 1 (got 0)"},
		{"bootstrap-expect negative env", []string{"-data-dir", dir}, env("TOKEND_BOOTSTRAP_EXPECT", "-2"), "", "invalid config: -bootstrap-expect must be >= 1 (got -2)"},
		{"bootstrap-expect not a number", with("-bootstrap-expect", "three"), nil, "", `invalid config: -bootstrap-expect: not an integer: "three" (from flag)`},
		{"bootstrap-expect from env not a number", []string{"-data-dir", dir}, env("TOKEND_BOOTSTRAP_EXPECT", "x"), "", `invalid config: -bootstrap-expect: not an integer: "x" (from env TOKEND_BOOTSTRAP_EXPECT)`},
		{"dev with bootstrap-expect 3", []string{"-dev", "-bootstrap-expect", "3"}, nil, "", "invalid config: -bootstrap-expect must be 1 with -dev (got 3)"},
		{"missing data dir", []string{"-bootstrap-expect", "1"}, nil, "", "invalid config: -data-dir is required (or run with -dev)"},
		{"data dir is a file", []string{"-data-dir", notDir}, nil, "", `invalid config: -data-dir "` + notDir + `" is not a directory`},
		{"data dir below a file", []string{"-data-dir", filepath.Join(notDir, "sub")}, nil, "", `invalid config: -data-dir "` + filepath.Join(notDir, "sub") + `" cannot be created: "` + notDir + `" is not a directory`},
		{"http addr without port", with("-http-addr", "127.0.0.1"), nil, "", `invalid config: -http-addr must be host:port (got "127.0.0.1")`},
		{"raft addr bad port", with("-raft-addr", "127.0.0.1:99999"), nil, "", `invalid config: -raft-addr has an invalid port (got "127.0.0.1:99999")`},
		{"gossip addr named port", with("-gossip-addr", "127.0.0.1:http"), nil, "", `invalid config: -gossip-addr has an invalid port (got "127.0.0.1:http")`},
		{"http addr empty host", with("-http-addr", ":8200"), nil, "", `invalid config: -http-addr needs a host other nodes can reach (got ":8200")`},
		{"raft addr unspecified host", with("-raft-addr", "0.0.0.0:8201"), nil, "", `invalid config: -raft-addr needs a host other nodes can reach, not 0.0.0.0 (got "0.0.0.0:8201")`},
		{"same address twice", with("-gossip-addr", DefaultRaftAddr), nil, "", "invalid config: -raft-addr and -gossip-addr are both 127.0.0.1:8201"},
		{"bad join address", with("-join", "127.0.0.1:1,nope"), nil, "", `invalid config: -join must be host:port (got "nope")`},
		{"cluster key not base64", with("-cluster-key", "not*base64"), nil, "", "invalid config: -cluster-key: not valid base64 (from flag)"},
		{"cluster key wrong length", with("-cluster-key", base64.StdEncoding.EncodeToString([]byte("short"))), nil, "", "invalid config: -cluster-key must decode to 16, 24 or 32 bytes (got 5)"},
		{"max-stale zero", with("-max-stale", "0s"), nil, "", "invalid config: -max-stale must be > 0 (got 0s)"},
		{"max-stale negative", with("-max-stale", "-1s"), nil, "", "invalid config: -max-stale must be > 0 (got -1s)"},
		{"max-stale garbage", dd, env("TOKEND_MAX_STALE", "soon"), "", `invalid config: -max-stale: invalid duration "soon" (from env TOKEND_MAX_STALE)`},
		{"log level unknown", with("-log-level", "loud"), nil, "", `invalid config: -log-level must be one of trace, debug, info, warn, error (got "loud")`},
		{"log format unknown", with("-log-format", "xml"), nil, "", `invalid config: -log-format must be text or json (got "xml")`},
		{"node id bad chars", with("-node-id", "a b"), nil, "", `invalid config: -node-id may only contain letters, digits, '-', '_' and '.' (got "a b")`},
		{"node id too long", with("-node-id", strings.Repeat("a", 129)), nil, "", "invalid config: -node-id must be at most 128 characters (got 129)"},
		{"dev root token without dev", with("-dev-root-token-id", "root"), nil, "", "invalid config: -dev-root-token-id requires -dev"},
		{"dev root token with space", []string{"-dev", "-dev-root-token-id", "a secret"}, nil, "", "invalid config: -dev-root-token-id must be 1-256 printable characters without spaces"},
		{"dev not a bool (env)", nil, env("TOKEND_DEV", "maybe"), "", `invalid config: -dev: not a boolean: "maybe" (from env TOKEND_DEV)`},
		{"dev not a bool (flag)", []string{"-dev=maybe"}, nil, "", `invalid config: invalid boolean value "maybe" for -dev: not a boolean`},
		{"unknown flag", []string{"-nope"}, nil, "", "invalid config: flag provided but not defined: -nope"},
		{"positional argument", with("extra"), nil, "", `invalid config: unexpected argument "extra" (flags only; see tokend server -h)`},
		{"missing config file", []string{"-config", filepath.Join(dir, "missing.hcl")}, nil, "", "invalid config: -config: open …"},
		{"unknown file key", nil, nil, `node_id = "a"` + "\n" + `colour = "blue"`, `invalid config: FILE: unknown key "colour" (known keys: audit_fail_open, audit_file, bootstrap_expect, cluster_key, cluster_tls_ca_file, cluster_tls_cert_file, cluster_tls_key_file, data_dir, dev, dev_root_token_id, gossip_addr, http_addr, join, log_format, log_level, max_request_size, max_stale, node_id, raft_addr, rate_limit, rate_limit_bad_auth, rate_limit_bad_auth_burst, rate_limit_burst, rate_limit_token, rate_limit_token_burst, tls_cert_file, tls_client_ca_file, tls_key_file, tls_min_version, token_hash_key_file)`},
		{"unknown json key", nil, nil, `{"data_dir": "x", "dataDir": "y"}`, `invalid config: FILE: unknown key "dataDir" …`},
		{"config key in file", nil, nil, `config = "other.hcl"`, `invalid config: FILE: unknown key "config" …`},
		{"nested block", nil, nil, "listener \"tcp\" {\n address = \"x\"\n}", `invalid config: FILE: listener: nested blocks are not supported`},
		{"object value", nil, nil, `{"node_id": {"a": 1}}`, `invalid config: FILE: node_id: expected a string, number, boolean or list`},
		{"list for scalar", nil, nil, `node_id = ["a", "b"]`, `invalid config: FILE: node_id: expected a single value, got a list`},
		{"list of numbers", nil, nil, `join = [1, 2]`, `invalid config: FILE: join: expected a list of strings`},
		{"key twice", nil, nil, "data_dir = \"a\"\ndata_dir = \"b\"", `invalid config: FILE: …`},
		{"bad syntax", nil, nil, `node_id = "unterminated`, `invalid config: FILE: …`},
		{"bad value in file", nil, nil, `max_stale = "forever"`, `invalid config: -max-stale: invalid duration "forever" (from file FILE)`},
		{"huge number in file", nil, nil, `bootstrap_expect = 99999999999999999999999`, `invalid config: -bootstrap-expect: not an integer: "99999999999999999999999" (from file FILE)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, want := tt.args, tt.want
			if tt.file != "" {
				p := writeFile(t, "c.hcl", tt.file)
				args = append([]string{"-config", p}, args...)
				want = strings.ReplaceAll(want, "FILE", p)
			}
			_, err := Load(args, tt.env)
			if err == nil {
				t.Fatalf("no error; want %q", want)
			}
			msg := err.Error()
			if strings.ContainsAny(msg, "\n\r") {
				t.Errorf("error spans lines: %q", msg)
			}
			if p, ok := strings.CutSuffix(want, "…"); ok {
				if !strings.HasPrefix(msg, p) {
					t.Errorf("got  %q\nwant prefix %q", msg, p)
				}
			} else if msg != want {
				t.Errorf("got  %q\nwant %q", msg, want)
			}
		})
	}
}

func TestSecretsNeverInErrorsOrStrings(t *testing.T) {
	// A key of the wrong length: the error must not contain it.
	bad := base64.StdEncoding.EncodeToString([]byte("0123456789"))
	_, err := Load([]string{"-dev", "-cluster-key", bad}, env())
	if err == nil || strings.Contains(err.Error(), bad) {
		t.Fatalf("error %v", err)
	}
	_, err = Load([]string{"-dev", "-dev-root-token-id", "sec ret"}, env())
	if err == nil || strings.Contains(err.Error(), "sec ret") {
		t.Fatalf("error %v", err)
	}
	c, err := Load([]string{"-dev", "-cluster-key", key16, "-dev-root-token-id", "s3cr3t"}, env())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{c.String(), fmtV(c)} {
		if strings.Contains(s, "s3cr3t") || strings.Contains(s, key16) || strings.Contains(s, "[1 1 1") {
			t.Errorf("secret in %q", s)
		}
		if !strings.Contains(s, "gossip_encryption=true") {
			t.Errorf("missing gossip_encryption in %q", s)
		}
	}
}

func TestHelp(t *testing.T) {
	_, err := Load([]string{"-h"}, env())
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	var b bytes.Buffer
	Usage(&b)
	for _, o := range options {
		for _, s := range []string{"-" + o.name, o.envKey()} {
			if !strings.Contains(b.String(), s) {
				t.Errorf("usage lacks %s", s)
			}
		}
	}
	for _, s := range []string{"-dev-root-token-id", "-bootstrap-expect N", "TOKEND_DATA_DIR", "data_dir", "127.0.0.1:8200"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("usage lacks %q", s)
		}
	}
}

func TestPrepareDataDir(t *testing.T) {
	t.Run("dev without dir makes and removes a temp dir", func(t *testing.T) {
		c := Config{Dev: true}
		remove, err := c.PrepareDataDir()
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(c.DataDir); err != nil || !fi.IsDir() {
			t.Fatalf("temp dir %q: %v", c.DataDir, err)
		}
		if err := remove(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(c.DataDir); !os.IsNotExist(err) {
			t.Fatalf("temp dir not removed: %v", err)
		}
	})
	t.Run("creates a missing dir 0700 and keeps it", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		c := Config{DataDir: dir}
		remove, err := c.PrepareDataDir()
		if err != nil {
			t.Fatal(err)
		}
		if err := remove(); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Fatalf("dir %v %v", fi, err)
		}
	})
	t.Run("dir below a file fails", func(t *testing.T) {
		f := writeFile(t, "f", "x")
		c := Config{DataDir: filepath.Join(f, "sub")}
		if _, err := c.PrepareDataDir(); err == nil || !strings.HasPrefix(err.Error(), "invalid config: -data-dir") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("validate does not create the dir", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "new")
		if _, err := Load([]string{"-data-dir", dir, "-node-id", "n", "-bootstrap-expect", "3"}, env()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("Load created %s", dir)
		}
	})
}

func fmtV(c Config) string { return fmt.Sprintf("%v %+v %#v", c, c, c) }
