package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	httppprof "net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// benchFake is a minimal Vault token API: create hands out numbered
// tokens, lookup-self accepts them, and, when pprof is set, the CPU profile
// endpoint serves Go's real profile to the root token.
type benchFake struct {
	next     atomic.Int64
	lookups  atomic.Int64
	profiles atomic.Int64
	pprof    bool
	seconds  atomic.Value // the seconds parameter of the last profile request
}

const benchFakeRoot = "s.fakeroot"

func (f *benchFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == pathCreate && r.Method == "POST":
		n := f.next.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"auth": map[string]any{"client_token": "s.tok" + string(rune('a'+n%26))}})
	case r.URL.Path == pathLookupSelf:
		f.lookups.Add(1)
		_, _ = io.WriteString(w, `{"data":{"ttl":3600}}`)
	case r.URL.Path == pathRevoke:
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == pprofProfilePath && f.pprof:
		if r.Header.Get("X-Vault-Token") != benchFakeRoot {
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"errors":["permission denied"]}`)
			return
		}
		f.profiles.Add(1)
		f.seconds.Store(r.URL.Query().Get("seconds"))
		w.Header().Del("Content-Type")
		httppprof.Profile(w, r)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"errors":[]}`)
	}
}

func benchAgainst(t *testing.T, srv *httptest.Server, args ...string) (int, string, string) {
	t.Helper()
	env := mapEnv("TOKEND_ADDR", srv.URL, "TOKEND_TOKEN", benchFakeRoot)
	var o, e bytes.Buffer
	code := run(context.Background(), append([]string{"bench"}, args...), env, strings.NewReader(""), &o, &e)
	return code, o.String(), e.String()
}

// TestBenchRate checks the -rate schedule: operation k starts no earlier
// than k/rate after the start, and no more operations start than the
// elapsed time allows.
func TestBenchRate(t *testing.T) {
	srv := httptest.NewServer(&benchFake{})
	defer srv.Close()

	// 20 operations at 100/s: the last may start only 190 ms in.
	code, out, errOut := benchAgainst(t, srv, "-profile", "lookup-self", "-n", "20", "-c", "4", "-prepare", "3", "-rate", "100", "-format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	var r benchReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Ops != 20 || r.Rate != 100 || r.DurationS < 0.19 {
		t.Fatalf("20 ops at -rate 100: ops %d rate %v in %.3fs, want >= 0.19s", r.Ops, r.Rate, r.DurationS)
	}

	// A duration run: at most rate × elapsed + 1 operations start.
	code, out, errOut = benchAgainst(t, srv, "-profile", "lookup-self", "-d", "1s", "-c", "8", "-prepare", "3", "-rate", "50", "-format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	r = benchReport{}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Ops == 0 || float64(r.Ops+r.Errors) > 50*r.DurationS+1 {
		t.Fatalf("-rate 50 for %.3fs: %d ops, %d errors", r.DurationS, r.Ops, r.Errors)
	}

	code, out, _ = benchAgainst(t, srv, "-profile", "lookup-self", "-n", "5", "-c", "1", "-prepare", "1", "-rate", "1000")
	if code != 0 || !strings.Contains(out, "rate cap       1000 ops/s") {
		t.Fatalf("exit %d table:\n%s", code, out)
	}
}

// TestBenchCPUProfile fetches the profile of the run from the first node
// with the bench token and writes it only when it is a real profile.
func TestBenchCPUProfile(t *testing.T) {
	fv := &benchFake{pprof: true}
	srv := httptest.NewServer(fv)
	defer srv.Close()
	dir := t.TempDir()
	file := filepath.Join(dir, "cpu.pprof")

	code, out, errOut := benchAgainst(t, srv, "-profile", "lookup-self", "-d", "1s", "-c", "2", "-prepare", "2", "-cpuprofile", file, "-format", "json")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d stdout %s stderr %s", code, out, errOut)
	}
	if fv.profiles.Load() != 1 || fv.seconds.Load() != "1" {
		t.Fatalf("profile requests %d, seconds %v", fv.profiles.Load(), fv.seconds.Load())
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("profile is not gzip: %v", err)
	}
	if pb, err := io.ReadAll(zr); err != nil || len(pb) == 0 {
		t.Fatalf("profile body: %d bytes, %v", len(pb), err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("profile file mode %v, %v", fi.Mode(), err)
	}

	// A token the endpoint refuses: the report is printed, exit 2, no file.
	bad := filepath.Join(dir, "refused.pprof")
	env := mapEnv("TOKEND_ADDR", srv.URL, "TOKEND_TOKEN", "s.other")
	var o, e bytes.Buffer
	code = run(context.Background(), []string{"bench", "-profile", "lookup-self", "-d", "1s", "-c", "1", "-prepare", "1", "-cpuprofile", bad}, env, strings.NewReader(""), &o, &e)
	if code != exitAPIError || !strings.Contains(o.String(), "latency p99") || !strings.Contains(e.String(), "HTTP 403: permission denied") {
		t.Fatalf("exit %d stdout %s stderr %s", code, o.String(), e.String())
	}
	if strings.Contains(e.String(), "s.other") {
		t.Fatalf("token in the error: %s", e.String())
	}
	if _, err := os.Stat(bad); !os.IsNotExist(err) {
		t.Fatalf("file of a refused profile left behind: %v", err)
	}

	// A server without the endpoint (a plain Vault): exit 2, no file.
	srv2 := httptest.NewServer(&benchFake{})
	defer srv2.Close()
	missing := filepath.Join(dir, "missing.pprof")
	code, out, errOut = benchAgainst(t, srv2, "-profile", "lookup-self", "-d", "1s", "-c", "1", "-prepare", "1", "-cpuprofile", missing)
	if code != exitAPIError || !strings.Contains(errOut, "HTTP 404") {
		t.Fatalf("exit %d stdout %s stderr %s", code, out, errOut)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("file left behind: %v", err)
	}
}
