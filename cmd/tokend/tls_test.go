package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/api"

	"github.com/tokend/tokend/config"
)

// testCA is a throw-away certificate authority for TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	path string // PEM of cert
}

func newTestCA(t *testing.T, dir, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1000),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".pem")
	writePEM(t, p, "CERTIFICATE", der)
	return &testCA{cert: cert, key: key, path: p}
}

// issue writes a leaf certificate (server: 127.0.0.1 SAN; client: client
// auth) and its key under dir/name.{crt,key}, returning both paths.
func (ca *testCA) issue(t *testing.T, dir, name string, serial int64, client bool) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
		tmpl.IPAddresses = nil
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writePEM(t, certPath, "CERTIFICATE", der)
	writePEM(t, keyPath, "EC PRIVATE KEY", kder)
	return certPath, keyPath
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	srvCert, srvKey := ca.issue(t, dir, "server", 1, false)
	cliCert, cliKey := ca.issue(t, dir, "client", 2, true)
	other := newTestCA(t, dir, "other")
	badCert, badKey := other.issue(t, dir, "stranger", 3, true)

	stdout, stderr, stop := devServer(t, "-dev-root-token-id", "s.tlsroot",
		"-tls-cert-file", srvCert, "-tls-key-file", srvKey, "-tls-client-ca-file", ca.path)
	out := stdout.String()
	m := addrRE.FindStringSubmatch(out)
	if m == nil || !strings.HasPrefix(m[1], "https://127.0.0.1:") {
		t.Fatalf("banner lacks an https address:\n%s", out)
	}
	if !strings.Contains(out, "VAULT_CACERT") || !strings.Contains(out, srvCert) {
		t.Errorf("banner lacks the VAULT_CACERT hint:\n%s", out)
	}
	addr := m[1]
	hostport := strings.TrimPrefix(addr, "https://")

	vault := func(t *testing.T, tc *api.TLSConfig) *api.Client {
		t.Helper()
		cfg := api.DefaultConfig()
		cfg.Address = addr
		cfg.MaxRetries = 0
		if err := cfg.ConfigureTLS(tc); err != nil {
			t.Fatal(err)
		}
		c, err := api.NewClient(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken("s.tlsroot")
		return c
	}

	t.Run("vault api client", func(t *testing.T) {
		for name, tc := range map[string]*api.TLSConfig{
			"ca only":            {CACert: ca.path},
			"with a client cert": {CACert: ca.path, ClientCert: cliCert, ClientKey: cliKey},
		} {
			c := vault(t, tc)
			s, err := c.Auth().Token().Create(&api.TokenCreateRequest{Policies: []string{"default"}, TTL: "1h"})
			if err != nil {
				t.Fatalf("%s: create: %v", name, err)
			}
			c.SetToken(s.Auth.ClientToken)
			self, err := c.Auth().Token().LookupSelf()
			if err != nil {
				t.Fatalf("%s: lookup-self: %v", name, err)
			}
			if acc, _ := self.Data["accessor"].(string); acc != s.Auth.Accessor {
				t.Fatalf("%s: lookup-self accessor %q, want %q", name, acc, s.Auth.Accessor)
			}
		}
	})

	t.Run("untrusted server or client certificate fails", func(t *testing.T) {
		if _, err := vault(t, &api.TLSConfig{}).Auth().Token().LookupSelf(); err == nil {
			t.Fatal("a client that does not trust the CA got an answer")
		}
		if _, err := vault(t, &api.TLSConfig{CACert: ca.path, ClientCert: badCert, ClientKey: badKey}).Auth().Token().LookupSelf(); err == nil {
			t.Fatal("a client certificate from another CA was accepted")
		}
	})

	t.Run("cli", func(t *testing.T) {
		tests := []struct {
			name string
			env  []string
			ok   bool
		}{
			{"TOKEND_CACERT", []string{"TOKEND_CACERT", ca.path}, true},
			{"VAULT_CACERT", []string{"VAULT_CACERT", ca.path}, true},
			{"TOKEND_CACERT wins", []string{"TOKEND_CACERT", ca.path, "VAULT_CACERT", other.path}, true},
			{"client cert", []string{"TOKEND_CACERT", ca.path, "TOKEND_CLIENT_CERT", cliCert, "TOKEND_CLIENT_KEY", cliKey}, true},
			{"VAULT client cert", []string{"VAULT_CACERT", ca.path, "VAULT_CLIENT_CERT", cliCert, "VAULT_CLIENT_KEY", cliKey}, true},
			{"TOKEND_SKIP_VERIFY", []string{"TOKEND_SKIP_VERIFY", "true"}, true},
			{"VAULT_SKIP_VERIFY", []string{"VAULT_SKIP_VERIFY", "1"}, true},
			{"no CA", nil, false},
			{"wrong CA", []string{"TOKEND_CACERT", other.path}, false},
			{"foreign client cert", []string{"TOKEND_CACERT", ca.path, "TOKEND_CLIENT_CERT", badCert, "TOKEND_CLIENT_KEY", badKey}, false},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var o, e syncBuffer
				env := append([]string{"TOKEND_ADDR", addr, "TOKEND_TOKEN", "s.tlsroot"}, tt.env...)
				code := run(context.Background(), []string{"token", "lookup", "-format=json"}, mapEnv(env...), strings.NewReader(""), &o, &e)
				if (code == 0) != tt.ok {
					t.Fatalf("exit %d (want ok=%v); stderr: %s", code, tt.ok, e.String())
				}
			})
		}
		var o, e syncBuffer
		code := run(context.Background(), []string{"token", "lookup"}, mapEnv("TOKEND_ADDR", addr, "TOKEND_CACERT", filepath.Join(dir, "missing.pem")), strings.NewReader(""), &o, &e)
		if code != exitFailure || !strings.Contains(e.String(), "TLS client settings") {
			t.Fatalf("missing CA file: exit %d, stderr %q", code, e.String())
		}
	})

	t.Run("plain http to the TLS port fails", func(t *testing.T) {
		c := &http.Client{Timeout: 10 * time.Second}
		resp, err := c.Get("http://" + hostport + "/v1/sys/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("plain http answered %d, want a failure", resp.StatusCode)
			}
		}
	})

	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	t.Run("old protocol versions and weak suites are refused", func(t *testing.T) {
		for name, tc := range map[string]*tls.Config{
			"tls 1.1":          {RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
			"tls 1.2 cbc only": {RootCAs: pool, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}},
		} {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", hostport, tc)
			if err == nil {
				conn.Close()
				t.Errorf("%s: handshake succeeded", name)
			}
		}
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", hostport, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatalf("tls 1.2 with default suites: %v", err)
		}
		conn.Close()
	})

	if code := stop(); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "s.tlsroot") {
		t.Error("root token in the log")
	}
}

func TestServerTLSMinVersion13(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	srvCert, srvKey := ca.issue(t, dir, "server", 1, false)
	stdout, _, _ := devServer(t, "-tls-cert-file", srvCert, "-tls-key-file", srvKey, "-tls-min-version", "tls13")
	hostport := strings.TrimPrefix(addrRE.FindStringSubmatch(stdout.String())[1], "https://")
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	if conn, err := tls.Dial("tcp", hostport, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12}); err == nil {
		conn.Close()
		t.Fatal("TLS 1.2 accepted with -tls-min-version tls13")
	}
	conn, err := tls.Dial("tcp", hostport, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("version %x", v)
	}
	conn.Close()
}

// TestCertReload swaps the certificate files and reloads as SIGHUP would:
// new connections see the new serial, an open keep-alive connection keeps
// working, and a broken pair keeps the previous certificate.
func TestCertReload(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir, "ca")
	certPath, keyPath := ca.issue(t, dir, "server", 1, false)
	cfg := config.Config{TLSCertFile: certPath, TLSKeyFile: keyPath, TLSMinVersion: "tls12"}
	tc, holder, err := serverTLSConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }),
		TLSConfig: tc,
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	u := (&url.URL{Scheme: "https", Host: ln.Addr().String(), Path: "/"}).String()
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	newClient := func() *http.Client {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	// get returns the serial the server presented and whether the
	// connection was reused.
	get := func(c *http.Client) (serial int64, reused bool) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		}))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if _, err := resp.Body.Read(make([]byte, 8)); err != nil && err.Error() != "EOF" {
			t.Fatal(err)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), reused
	}

	old := newClient()
	if s, _ := get(old); s != 1 {
		t.Fatalf("serial %d, want 1", s)
	}

	ca.issue(t, dir, "server", 2, false) // overwrites the files
	log := hclog.NewNullLogger()
	reloadCert(holder, log)
	if s, _ := get(newClient()); s != 2 {
		t.Fatalf("after reload a new connection sees serial %d, want 2", s)
	}
	if s, reused := get(old); s != 1 || !reused {
		t.Fatalf("keep-alive connection after reload: serial %d reused %v, want 1 true", s, reused)
	}

	if err := os.WriteFile(certPath, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := holder.reload(); err == nil {
		t.Fatal("reload of a broken pair succeeded")
	}
	reloadCert(holder, log)
	if s, _ := get(newClient()); s != 2 {
		t.Fatalf("after a failed reload a new connection sees serial %d, want 2", s)
	}
}
