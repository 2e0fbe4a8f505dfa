package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tokend/tokend/cluster"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestOperatorGenCerts(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	code, out, errOut := runArgs("operator", "gen-certs", "-dir", dir, "-hosts", "localhost,127.0.0.1,tokend.example", "node-a", "node-b")
	if code != exitOK {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode: %v %v", fi.Mode(), err)
	}
	for _, key := range []string{"ca-key.pem", "node-a-key.pem", "node-b-key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, key))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v, err %v; want 0600", key, fi.Mode(), err)
		}
	}
	caCert := readCert(t, filepath.Join(dir, "ca.pem"))
	if !caCert.IsCA {
		t.Fatal("ca.pem is not a CA")
	}
	for _, id := range []string{"node-a", "node-b"} {
		c := readCert(t, filepath.Join(dir, id+".pem"))
		pub, ok := c.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Errorf("%s: key is not ECDSA P-256", id)
		}
		if len(c.URIs) != 1 || c.URIs[0].String() != "tokend://node/"+id {
			t.Errorf("%s: URI SANs %v, want tokend://node/%s", id, c.URIs, id)
		}
		if strings.Join(c.DNSNames, ",") != "localhost,tokend.example" || len(c.IPAddresses) != 1 || c.IPAddresses[0].String() != "127.0.0.1" {
			t.Errorf("%s: DNS %v IP %v", id, c.DNSNames, c.IPAddresses)
		}
		tl, err := cluster.LoadClusterTLS(cluster.TLSFiles{
			CertFile: filepath.Join(dir, id+".pem"), KeyFile: filepath.Join(dir, id+"-key.pem"), CAFile: filepath.Join(dir, "ca.pem"),
		})
		if err != nil {
			t.Fatalf("%s: load as cluster TLS: %v", id, err)
		}
		if tl.NodeID() != id {
			t.Errorf("%s: NodeID %q", id, tl.NodeID())
		}
	}

	caBefore, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	// A later run reuses the CA, so nodes can be added.
	if code, out, errOut := runArgs("operator", "gen-certs", "-dir", dir, "node-c"); code != exitOK || !strings.Contains(out, "using the CA") {
		t.Fatalf("second run: exit %d: %s %s", code, out, errOut)
	}
	caAfter, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if !bytes.Equal(caBefore, caAfter) {
		t.Fatal("second run replaced the CA")
	}
	if _, err := cluster.LoadClusterTLS(cluster.TLSFiles{
		CertFile: filepath.Join(dir, "node-c.pem"), KeyFile: filepath.Join(dir, "node-c-key.pem"), CAFile: filepath.Join(dir, "ca.pem"),
	}); err != nil {
		t.Fatalf("node-c does not verify against the reused CA: %v", err)
	}
	// Existing node files are kept unless -force.
	before, _ := os.ReadFile(filepath.Join(dir, "node-a.pem"))
	if code, _, errOut := runArgs("operator", "gen-certs", "-dir", dir, "node-a"); code != exitFailure || !strings.Contains(errOut, "exists") {
		t.Fatalf("overwrite without -force: exit %d %s", code, errOut)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "node-a.pem")); !bytes.Equal(before, after) {
		t.Fatal("node-a.pem changed without -force")
	}
	if code, _, errOut := runArgs("operator", "gen-certs", "-dir", dir, "-force", "node-a"); code != exitOK {
		t.Fatalf("-force: exit %d %s", code, errOut)
	}

	for _, bad := range [][]string{{}, {"../x"}, {"ca"}} {
		args := append([]string{"operator", "gen-certs", "-dir", dir}, bad...)
		if code, _, _ := runArgs(args...); code != exitFailure {
			t.Errorf("gen-certs %v: exit %d, want %d", bad, code, exitFailure)
		}
	}
}

// TestServerClusterCertMustNameNode: a node refuses to start with a
// cluster certificate issued for another node id.
func TestServerClusterCertMustNameNode(t *testing.T) {
	dir := t.TempDir()
	if code, out, errOut := runArgs("operator", "gen-certs", "-dir", dir, "node-a"); code != exitOK {
		t.Fatalf("gen-certs: %d %s %s", code, out, errOut)
	}
	keyFile := filepath.Join(dir, "token-hash.key")
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runArgs("server", "-node-id", "node-b", "-data-dir", filepath.Join(dir, "data"), "-token-hash-key-file", keyFile,
		"-http-addr", "127.0.0.1:0", "-raft-addr", "127.0.0.1:0", "-gossip-addr", "127.0.0.1:0", "-bootstrap-expect", "3",
		"-cluster-tls-cert-file", filepath.Join(dir, "node-a.pem"), "-cluster-tls-key-file", filepath.Join(dir, "node-a-key.pem"),
		"-cluster-tls-ca-file", filepath.Join(dir, "ca.pem"))
	if code != exitFailure || !strings.Contains(errOut, `names node \"node-a\", but -node-id is \"node-b\"`) {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
}
