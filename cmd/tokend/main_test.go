package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

func runArgs(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(context.Background(), args, mapEnv(), strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"no command", nil, 1, "", "Usage: tokend <command>"},
		{"help", []string{"-h"}, 0, "operator raft list-peers", ""},
		{"help word", []string{"help"}, 0, "token create", ""},
		{"version", []string{"version"}, 0, "tokend dev\n", ""},
		{"-version", []string{"-version"}, 0, "tokend dev\n", ""},
		{"unknown", []string{"frobnicate"}, 1, "", `unknown command "frobnicate"`},
		{"unknown sub", []string{"token", "mint"}, 1, "", `unknown command "token mint"`},
		{"operator alone", []string{"operator"}, 1, "", "unknown command"},
		{"client help", []string{"token", "create", "-h"}, 0, "-explicit-max-ttl", ""},
		{"client help lists common flags", []string{"operator", "members", "-h"}, 0, "-format", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runArgs(tt.args...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d (want %d)\nstdout %q (want %q)\nstderr %q (want %q)", code, tt.wantCode, out, tt.wantOut, errOut, tt.wantErr)
			}
		})
	}
}

func TestServerInvalidConfig(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-bootstrap-expect", "0", "-data-dir", t.TempDir()}, "invalid config: -bootstrap-expect must be >= 1 (got 0)\n"},
		{[]string{"-dev", "-http-addr", "nope"}, "invalid config: -http-addr must be host:port (got \"nope\")\n"},
		{[]string{"-bootstrap-expect", "1"}, "invalid config: -data-dir is required (or run with -dev)\n"},
		{[]string{"-bootstrap-expect", "3", "-data-dir", t.TempDir()}, "invalid config: -token-hash-key-file is required: a file with the base64 of 32 random bytes, the same on every node (create one with: tokend operator keygen -bytes 32 > FILE)\n"},
		{[]string{"-dev", "-cluster-key", "abc"}, "invalid config: -cluster-key: not valid base64 (from flag)\n"},
		{[]string{"-dev", "stray"}, "invalid config: unexpected argument \"stray\" (flags only; see tokend server -h)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			code, out, errOut := runArgs(append([]string{"server"}, tt.args...)...)
			if code != 1 || out != "" || errOut != tt.want {
				t.Fatalf("exit %d stdout %q stderr %q; want 1, %q", code, out, errOut, tt.want)
			}
		})
	}
}

func TestServerHelp(t *testing.T) {
	code, out, errOut := runArgs("server", "-h")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d stderr %q", code, errOut)
	}
	for _, f := range []string{"-node-id", "-data-dir", "-http-addr", "-raft-addr", "-gossip-addr", "-join", "-bootstrap-expect",
		"-cluster-key", "-max-stale", "-log-level", "-log-format", "-dev", "-dev-root-token-id", "-config", "TOKEND_DATA_DIR"} {
		if !strings.Contains(out, f) {
			t.Errorf("help lacks %s", f)
		}
	}
}

func TestFormatTable(t *testing.T) {
	var b bytes.Buffer
	if err := writeTable(&b, []string{"Key", "Value"}, [][]string{{"token", "x"}, {"identity_policies", "[]"}, {"multi", "a\tb\nc"}}); err != nil {
		t.Fatal(err)
	}
	want := "Key                  Value\n" +
		"---                  -----\n" +
		"token                x\n" +
		"identity_policies    []\n" +
		"multi                a b c\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestFormatValues(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, "n/a"},
		{"s", "s"},
		{json.Number("42"), "42"},
		{true, "true"},
		{1.5, "1.5"},
		{[]any{"a", json.Number("1")}, "[a 1]"},
		{map[string]any{"b": "2", "a": "1"}, "map[a:1 b:2]"},
		{[]any{}, "[]"},
	}
	for _, tt := range tests {
		if got := formatValue(tt.in); got != tt.want {
			t.Errorf("formatValue(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	durs := []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{768 * time.Hour, "768h"},
		{90 * time.Minute, "1h30m"},
		{59*time.Minute + 59*time.Second, "59m59s"},
		{time.Hour + time.Second, "1h0m1s"},
		{30 * time.Second, "30s"},
		{10 * time.Minute, "10m"},
	}
	for _, tt := range durs {
		if got := humanDuration(tt.in); got != tt.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := tokenDuration(0); got != "∞" {
		t.Errorf("tokenDuration(0) = %q", got)
	}
	if got := quotedList(nil); got != "[]" {
		t.Errorf("quotedList(nil) = %q", got)
	}
	if got := quotedList([]string{"default", "web"}); got != `["default" "web"]` {
		t.Errorf("quotedList = %q", got)
	}
}

func TestAuthRowsOrder(t *testing.T) {
	rows := authRows(&api.SecretAuth{ClientToken: "t", Accessor: "a", LeaseDuration: 60, Renewable: true, Policies: []string{"default"}})
	var keys []string
	for _, r := range rows {
		keys = append(keys, r[0])
	}
	want := "token token_accessor token_duration token_renewable token_policies identity_policies policies"
	if strings.Join(keys, " ") != want {
		t.Fatalf("keys %v", keys)
	}
	if rows[2][1] != "1m" {
		t.Fatalf("duration %q", rows[2][1])
	}
}

func TestDurationFlag(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"1h", "3600s", true},
		{"90", "90s", true},
		{"1500ms", "1s", true},
		{"-1h", "", false},
		{"soon", "", false},
	}
	for _, tt := range tests {
		var f durationFlag
		err := f.Set(tt.in)
		if (err == nil) != tt.ok || (tt.ok && f.seconds() != tt.want) {
			t.Errorf("Set(%q): err %v seconds %q; want ok=%v %q", tt.in, err, f.seconds(), tt.ok, tt.want)
		}
	}
}

func TestOperatorKeygen(t *testing.T) {
	for _, n := range []int{16, 32, 64} {
		code, out, errOut := runArgs("operator", "keygen", "-bytes", strconv.Itoa(n))
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(out))
		if code != 0 || errOut != "" || err != nil || len(k) != n {
			t.Fatalf("keygen -bytes %d: exit %d, %d bytes, stderr %q", n, code, len(k), errOut)
		}
	}
	a, _, _ := runArgs("operator", "keygen")
	_, outA, _ := runArgs("operator", "keygen")
	_, outB, _ := runArgs("operator", "keygen")
	if a != 0 || outA == outB {
		t.Fatal("two keygen runs gave the same key")
	}
	if code, _, errOut := runArgs("operator", "keygen", "-bytes", "8"); code != 1 || !strings.Contains(errOut, "-bytes must be 16 to 64") {
		t.Fatalf("keygen -bytes 8: exit %d stderr %q", code, errOut)
	}
}
