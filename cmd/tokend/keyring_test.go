package main

import (
	"encoding/base64"
	"strings"
	"testing"
)

// The keyring CLI against a real dev server with encrypted gossip: list,
// install, use, remove, and the errors a wrong step gets.
func TestOperatorKeyringCLI(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("1", 32)))
	k2 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("2", 16)))
	stdout, _, _ := devServer(t, "-cluster-key", k1, "-dev-root-token-id", "keyringroot")
	m := addrRE.FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("banner:\n%s", stdout.String())
	}
	env := mapEnv("TOKEND_ADDR", m[1], "TOKEND_TOKEN", "keyringroot")
	cli := func(args ...string) (int, string, string) {
		var o, e syncBuffer
		code := run(t.Context(), args, env, strings.NewReader(k2+"\n"), &o, &e)
		return code, o.String(), e.String()
	}
	code, out, errOut := cli("operator", "keyring", "list")
	if code != 0 || !strings.Contains(out, k1) || !strings.Contains(out, "1/1") {
		t.Fatalf("list: %d\n%s%s", code, out, errOut)
	}
	// "-" reads the key from stdin (keeps it out of the process list).
	if code, out, errOut = cli("operator", "keyring", "install", "-"); code != 0 || !strings.Contains(out, k2) {
		t.Fatalf("install: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = cli("operator", "keyring", "remove", k1); code != exitAPIError || !strings.Contains(errOut, "cannot remove the primary gossip key") {
		t.Fatalf("remove primary: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = cli("operator", "keyring", "use", k2); code != 0 {
		t.Fatalf("use: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = cli("operator", "keyring", "remove", k1, "-format=json"); code != 0 || strings.Contains(out, k1) || !strings.Contains(out, `"version": 3`) {
		t.Fatalf("remove: %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut = cli("operator", "keyring", "install", "bm90IGEga2V5"); code != exitAPIError || !strings.Contains(errOut, "key must be 16, 24 or 32 bytes") {
		t.Fatalf("install of a short key: %d %s", code, errOut)
	}
	if code, _, errOut = cli("operator", "keyring", "use"); code != exitFailure || !strings.Contains(errOut, "expected one KEY argument") {
		t.Fatalf("use without a key: %d %s", code, errOut)
	}
}
