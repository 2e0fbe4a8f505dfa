package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a self-signed P-256 certificate and its key into dir.
func selfSigned(t *testing.T, dir, name string) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func TestTLSFlags(t *testing.T) {
	fixedHostname(t, "h")
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, "a")
	cert2, key2 := selfSigned(t, dir, "b")
	junk := writeFile(t, "junk.pem", "no pem here")
	missing := filepath.Join(dir, "missing.pem")
	base := []string{"-data-dir", dir, "-bootstrap-expect", "1"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }

	good := []struct {
		name string
		args []string
		env  func(string) string
		file string
		want Config
	}{
		{"flags", with("-tls-cert-file", cert, "-tls-key-file", key, "-tls-client-ca-file", cert2, "-tls-min-version", "TLS13"), env(), "",
			Config{TLSCertFile: cert, TLSKeyFile: key, TLSClientCAFile: cert2, TLSMinVersion: "tls13"}},
		{"env", base, env("TOKEND_TLS_CERT_FILE", cert, "TOKEND_TLS_KEY_FILE", key, "TOKEND_TLS_CLIENT_CA_FILE", cert2, "TOKEND_TLS_MIN_VERSION", "tls12"), "",
			Config{TLSCertFile: cert, TLSKeyFile: key, TLSClientCAFile: cert2, TLSMinVersion: "tls12"}},
		{"file", base, env(), "tls_cert_file = \"" + cert + "\"\ntls_key_file = \"" + key + "\"\ntls_min_version = \"tls13\"\n",
			Config{TLSCertFile: cert, TLSKeyFile: key, TLSMinVersion: "tls13"}},
		{"dev", []string{"-dev", "-tls-cert-file", cert, "-tls-key-file", key}, env(), "",
			Config{TLSCertFile: cert, TLSKeyFile: key, TLSMinVersion: "tls12"}},
		{"off", base, env(), "", Config{TLSMinVersion: "tls12"}},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if tt.file != "" {
				args = append(append([]string{}, args...), "-config", writeFile(t, "c.hcl", tt.file))
			}
			c, err := Load(args, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			got := [4]string{c.TLSCertFile, c.TLSKeyFile, c.TLSClientCAFile, c.TLSMinVersion}
			want := [4]string{tt.want.TLSCertFile, tt.want.TLSKeyFile, tt.want.TLSClientCAFile, tt.want.TLSMinVersion}
			if got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
			if c.TLSEnabled() != (tt.want.TLSCertFile != "") {
				t.Fatalf("TLSEnabled = %v", c.TLSEnabled())
			}
		})
	}

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", with("-tls-cert-file", cert), "invalid config: -tls-cert-file requires -tls-key-file"},
		{"key without cert", with("-tls-key-file", key), "invalid config: -tls-key-file requires -tls-cert-file"},
		{"client ca without cert", with("-tls-client-ca-file", cert), "invalid config: -tls-client-ca-file requires -tls-cert-file and -tls-key-file"},
		{"min version", with("-tls-min-version", "tls11"), `invalid config: -tls-min-version must be tls12 or tls13 (got "tls11")`},
		{"missing cert", with("-tls-cert-file", missing, "-tls-key-file", key), `invalid config: -tls-cert-file "` + missing + `" does not exist`},
		{"missing key", with("-tls-cert-file", cert, "-tls-key-file", missing), `invalid config: -tls-key-file "` + missing + `" does not exist`},
		{"cert is a directory", with("-tls-cert-file", dir, "-tls-key-file", key), `invalid config: -tls-cert-file "` + dir + `" is a directory`},
		{"missing client ca", with("-tls-cert-file", cert, "-tls-key-file", key, "-tls-client-ca-file", missing), `invalid config: -tls-client-ca-file "` + missing + `" does not exist`},
		{"mismatched pair", with("-tls-cert-file", cert, "-tls-key-file", key2), "invalid config: -tls-cert-file/-tls-key-file do not load as a pair: "},
		{"junk cert", with("-tls-cert-file", junk, "-tls-key-file", key), "invalid config: -tls-cert-file/-tls-key-file do not load as a pair: "},
		{"junk client ca", with("-tls-cert-file", cert, "-tls-key-file", key, "-tls-client-ca-file", junk), `invalid config: -tls-client-ca-file "` + junk + `": no PEM certificate found`},
		{"multi-node", []string{"-data-dir", dir, "-bootstrap-expect", "3", "-tls-cert-file", cert, "-tls-key-file", key}, "invalid config: -tls-cert-file on a multi-node cluster needs -cluster-tls-cert-file"},
		{"join", with("-join", "127.0.0.1:8301", "-tls-cert-file", cert, "-tls-key-file", key), "invalid config: -tls-cert-file on a multi-node cluster needs -cluster-tls-cert-file"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.args, env())
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want prefix %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error spans lines: %q", err)
			}
		})
	}
}
