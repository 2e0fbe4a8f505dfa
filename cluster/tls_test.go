package cluster

import (
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCertNodeID(t *testing.T) {
	u := func(s string) *url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name string
		uris []*url.URL
		want string
		err  string
	}{
		{"one", []*url.URL{NodeURI("node1")}, "node1", ""},
		{"escaped", []*url.URL{NodeURI("a b/c")}, "a b/c", ""},
		{"other URIs ignored", []*url.URL{u("spiffe://x/y"), NodeURI("n")}, "n", ""},
		{"none", nil, "", "names no node"},
		{"other scheme only", []*url.URL{u("https://node/n")}, "", "names no node"},
		{"two", []*url.URL{NodeURI("a"), NodeURI("b")}, "", "more than one node"},
		{"empty", []*url.URL{u("tokend://node/")}, "", "empty node id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := certNodeID(&x509.Certificate{URIs: tt.uris})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestClusterTLSLoadAndReload(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	nc, err := ca.IssueNode("n1", nil, nil, 0)
	if err == nil {
		// Validity 0 gives a certificate that is already expired: it must
		// not load.
		if _, err := NewClusterTLS(nc.CertPEM, nc.KeyPEM, ca.CertPEM); err == nil {
			t.Fatal("an expired certificate loaded")
		}
	}
	first, err := ca.IssueNode("n1", nil, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	files := TLSFiles{CertFile: write("n1.pem", first.CertPEM), KeyFile: write("n1-key.pem", first.KeyPEM), CAFile: write("ca.pem", ca.CertPEM)}
	tl, err := LoadClusterTLS(files)
	if err != nil {
		t.Fatal(err)
	}
	serial := tl.Leaf().SerialNumber

	// A certificate from another CA does not load against this CA.
	other := newTestCA(t)
	foreign, _ := other.IssueNode("n1", nil, nil, time.Hour)
	if _, err := NewClusterTLS(foreign.CertPEM, foreign.KeyPEM, ca.CertPEM); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("foreign certificate: err = %v", err)
	}

	// A broken file on reload keeps the current certificate.
	write("n1.pem", []byte("garbage"))
	if err := tl.Reload(); err == nil {
		t.Fatal("reload of a broken certificate succeeded")
	}
	if tl.Leaf().SerialNumber.Cmp(serial) != 0 {
		t.Fatal("broken reload replaced the certificate")
	}
	// A new certificate is picked up.
	second, _ := ca.IssueNode("n1", nil, nil, time.Hour)
	write("n1.pem", second.CertPEM)
	write("n1-key.pem", second.KeyPEM)
	if err := tl.Reload(); err != nil {
		t.Fatal(err)
	}
	if tl.Leaf().SerialNumber.Cmp(serial) == 0 {
		t.Fatal("reload kept the old certificate")
	}
}
