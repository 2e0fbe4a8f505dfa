package httpapi

import (
	"bytes"
	"encoding/json"
	"runtime/pprof"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"
)

// gzipMagic starts every binary pprof profile (gzipped protobuf).
var gzipMagic = []byte{0x1f, 0x8b}

func TestPprofRootOnly(t *testing.T) {
	e := newEnv(t, true)
	for _, tc := range []struct {
		path, contentType, contains string
		binary                      bool
	}{
		{"/v1/sys/pprof/", "text/html; charset=utf-8", "goroutine?debug=2", false},
		{"/v1/sys/pprof", "text/html; charset=utf-8", "threadcreate", false},
		{"/v1/sys/pprof/heap", "application/octet-stream", "", true},
		{"/v1/sys/pprof/heap?gc=1", "application/octet-stream", "", true},
		{"/v1/sys/pprof/allocs", "application/octet-stream", "", true},
		{"/v1/sys/pprof/goroutine", "application/octet-stream", "", true},
		{"/v1/sys/pprof/goroutine?debug=2", "text/plain; charset=utf-8", "goroutine ", false},
		{"/v1/sys/pprof/goroutine?debug=1", "text/plain; charset=utf-8", "goroutine profile: total", false},
		{"/v1/sys/pprof/block", "application/octet-stream", "", true},
		{"/v1/sys/pprof/mutex", "application/octet-stream", "", true},
		{"/v1/sys/pprof/threadcreate", "application/octet-stream", "", true},
		{"/v1/sys/pprof/cmdline", "text/plain; charset=utf-8", "httpapi", false},
		{"/v1/sys/pprof/symbol", "text/plain; charset=utf-8", "num_symbols: 1", false},
		{"/v1/sys/pprof/profile?seconds=1", "application/octet-stream", "", true},
		{"/v1/sys/pprof/trace?seconds=1", "application/octet-stream", "go 1.", false},
	} {
		code, hdr, body := e.do("GET", tc.path, e.root, "")
		if code != 200 || hdr.Get("Content-Type") != tc.contentType || !strings.Contains(body, tc.contains) {
			t.Fatalf("%s: %d %q %.200q", tc.path, code, hdr.Get("Content-Type"), body)
		}
		if tc.binary && !bytes.HasPrefix([]byte(body), gzipMagic) {
			t.Fatalf("%s: not a binary pprof profile: %.40q", tc.path, body)
		}
		if hdr.Get("X-Content-Type-Options") != "nosniff" || hdr.Get("Cache-Control") != "no-store" {
			t.Fatalf("%s: headers %v", tc.path, hdr)
		}
		if tc.binary && !strings.HasPrefix(hdr.Get("Content-Disposition"), "attachment; filename=") {
			t.Fatalf("%s: Content-Disposition %q", tc.path, hdr.Get("Content-Disposition"))
		}
	}

	// Only root or sudo on sys/pprof/*: a default token, read without sudo
	// and no token at all are refused before anything runs.
	for name, policy := range map[string]string{
		"read": `path "sys/pprof/*" { capabilities = ["read"] }`,
		"sudo": `path "sys/pprof/*" { capabilities = ["read", "sudo"] }`,
	} {
		if code, _, body := e.do("PUT", "/v1/sys/policies/acl/pprof-"+name, e.root, `{"policy":`+jsonString(policy)+`}`); code != 204 {
			t.Fatalf("write policy: %d %s", code, body)
		}
	}
	def := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"default"}}).Auth.ClientToken
	readOnly := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"pprof-read"}}).Auth.ClientToken
	sudo := e.create(e.root, &vault.TokenCreateRequest{Policies: []string{"pprof-sudo"}}).Auth.ClientToken
	for _, tok := range []string{"", def, readOnly, "hvs.not-a-token"} {
		for _, p := range []string{"/v1/sys/pprof/", "/v1/sys/pprof/heap", "/v1/sys/pprof/profile?seconds=1", "/v1/sys/pprof/cmdline"} {
			if code, _, body := e.do("GET", p, tok, ""); code != 403 || !strings.HasPrefix(body, `{"errors":[`) {
				t.Fatalf("%s without root/sudo: %d %s", p, code, body)
			}
		}
	}
	if code, _, body := e.do("GET", "/v1/sys/pprof/heap", sudo, ""); code != 200 || !bytes.HasPrefix([]byte(body), gzipMagic) {
		t.Fatalf("sudo on sys/pprof/*: %d %.100q", code, body)
	}
	if code, _, body := e.do("GET", "/v1/sys/pprof/", sudo, ""); code != 200 || !strings.Contains(body, "heap") {
		t.Fatalf("sudo on sys/pprof/* reaches the index: %d %.100q", code, body)
	}
}

func TestPprofBadParameters(t *testing.T) {
	e := newEnv(t, true)
	for _, p := range []string{
		"/v1/sys/pprof/profile?seconds=0", "/v1/sys/pprof/profile?seconds=-1", "/v1/sys/pprof/profile?seconds=301",
		"/v1/sys/pprof/profile?seconds=abc", "/v1/sys/pprof/profile?seconds=1.5", "/v1/sys/pprof/profile?seconds=99999999999999999999",
		"/v1/sys/pprof/trace?seconds=0", "/v1/sys/pprof/trace?seconds=61", "/v1/sys/pprof/trace?seconds=x",
		"/v1/sys/pprof/heap?seconds=5", "/v1/sys/pprof/heap?debug=-1", "/v1/sys/pprof/heap?debug=3", "/v1/sys/pprof/goroutine?debug=x",
	} {
		code, hdr, body := e.do("GET", p, e.root, "")
		var m struct {
			Errors []string `json:"errors"`
		}
		if code != 400 || hdr.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &m) != nil || len(m.Errors) != 1 {
			t.Fatalf("%s: %d %q %s", p, code, hdr.Get("Content-Type"), body)
		}
	}
	// Only GET.
	if code, _, _ := e.do("POST", "/v1/sys/pprof/heap", e.root, `{}`); code != 405 {
		t.Fatalf("POST heap: %d", code)
	}
}

// TestPprofBusy: a second CPU profile while one runs is refused (the
// runtime allows one), without waiting.
func TestPprofBusy(t *testing.T) {
	e := newEnv(t, true)
	var sink bytes.Buffer
	if err := pprof.StartCPUProfile(&sink); err != nil {
		t.Fatalf("start a CPU profile of the test: %v", err)
	}
	code, _, body := e.do("GET", "/v1/sys/pprof/profile?seconds=1", e.root, "")
	pprof.StopCPUProfile()
	if code != 500 || !strings.Contains(body, "could not enable CPU profiling") {
		t.Fatalf("profile while profiling: %d %s", code, body)
	}
}

// TestPprofNodeLocal: a follower answers sys/pprof itself — never forwarded,
// not for X-Vault-Forward, ?consistent or X-Vault-Inconsistent — and a
// follower without a read lease refuses (it cannot know the token is still
// valid) instead of forwarding.
func TestPprofNodeLocal(t *testing.T) {
	c := newCluster2(t)
	forwards := func() int {
		c.follower.mu.Lock()
		defer c.follower.mu.Unlock()
		return c.follower.forwards
	}
	for _, tc := range []struct {
		path string
		hdr  []string
	}{
		{"/v1/sys/pprof/heap", nil},
		{"/v1/sys/pprof/heap", []string{"X-Vault-Forward", "active-node"}},
		{"/v1/sys/pprof/heap?consistent", nil},
		{"/v1/sys/pprof/cmdline", []string{"X-Vault-Inconsistent", "forward-active-node"}},
	} {
		code, _, body := doRaw(t, c.followerSrv.URL, "GET", tc.path, c.root, "", tc.hdr...)
		if code != 200 || forwards() != 0 {
			t.Fatalf("%s %v on the follower: %d forwards=%d %.100q", tc.path, tc.hdr, code, forwards(), body)
		}
	}
	c.follower.set(func(n *fakeNode) { n.stale = true })
	code, _, body := doRaw(t, c.followerSrv.URL, "GET", "/v1/sys/pprof/heap", c.root, "")
	if code != 503 || forwards() != 0 || !strings.Contains(body, "node is stale") {
		t.Fatalf("stale follower: %d forwards=%d %s", code, forwards(), body)
	}
	c.follower.set(func(n *fakeNode) { n.stale = false })

	// A limited-use token's use can only be consumed on the leader: refused.
	limited := c.create(c.root, &vault.TokenCreateRequest{Policies: []string{"root"}, NumUses: 3}).Auth.ClientToken
	c.follower.replicate(0)
	code, _, body = doRaw(t, c.followerSrv.URL, "GET", "/v1/sys/pprof/heap", limited, "")
	if code != 400 || forwards() != 0 || !strings.Contains(body, "limited-use") {
		t.Fatalf("limited-use token: %d forwards=%d %s", code, forwards(), body)
	}
}
