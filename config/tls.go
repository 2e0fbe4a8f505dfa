package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
)

// TLSVersion maps -tls-min-version to its crypto/tls constant; ok is false
// for an unknown name.
func TLSVersion(name string) (v uint16, ok bool) {
	switch name {
	case "tls12":
		return tls.VersionTLS12, true
	case "tls13":
		return tls.VersionTLS13, true
	}
	return 0, false
}

// validTLS checks the -tls-* settings: the cert and key come as a pair that
// loads, the client CA file holds at least one certificate, and on a
// multi-node cluster the nodes talk to each other over cluster TLS
// (without it a follower forwards over plain http to the leader's HTTP
// address, which would then speak https).
func (c Config) validTLS() error {
	if _, ok := TLSVersion(c.TLSMinVersion); !ok {
		return invalid("-tls-min-version must be tls12 or tls13 (got %q)", c.TLSMinVersion)
	}
	switch {
	case c.TLSCertFile == "" && c.TLSKeyFile == "":
		if c.TLSClientCAFile != "" {
			return invalid("-tls-client-ca-file requires -tls-cert-file and -tls-key-file")
		}
		return nil
	case c.TLSCertFile == "":
		return invalid("-tls-key-file requires -tls-cert-file")
	case c.TLSKeyFile == "":
		return invalid("-tls-cert-file requires -tls-key-file")
	}
	if !c.Dev && c.MultiNode() && !c.ClusterTLSEnabled() {
		return invalid("-tls-cert-file on a multi-node cluster needs -cluster-tls-cert-file: without cluster TLS nodes forward over plain http to each other's HTTP address")
	}
	for _, f := range []struct{ flag, path string }{
		{"-tls-cert-file", c.TLSCertFile},
		{"-tls-key-file", c.TLSKeyFile},
		{"-tls-client-ca-file", c.TLSClientCAFile},
	} {
		if err := readableFile(f.flag, f.path); err != nil {
			return err
		}
	}
	if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
		return invalid("-tls-cert-file/-tls-key-file do not load as a pair: %s", oneLine(err.Error()))
	}
	if c.TLSClientCAFile != "" {
		if _, err := LoadCertPool(c.TLSClientCAFile); err != nil {
			return invalid("-tls-client-ca-file %q: %s", c.TLSClientCAFile, oneLine(err.Error()))
		}
	}
	return nil
}

// MultiNode reports whether the node expects or joins other nodes.
func (c Config) MultiNode() bool { return c.BootstrapExpect != 1 || len(c.Join) > 0 }

// validClusterTLS checks the -cluster-tls-* settings: all three or none,
// files that exist, a certificate that loads with its key, and a CA file
// with at least one certificate. That the certificate names this node and
// chains to the CA is checked when the node starts (cluster.LoadClusterTLS).
func (c Config) validClusterTLS() error {
	set := 0
	for _, v := range []string{c.ClusterTLSCertFile, c.ClusterTLSKeyFile, c.ClusterTLSCAFile} {
		if v != "" {
			set++
		}
	}
	switch {
	case set == 0:
		return nil
	case set < 3:
		return invalid("-cluster-tls-cert-file, -cluster-tls-key-file and -cluster-tls-ca-file must be set together")
	}
	for _, f := range []struct{ flag, path string }{
		{"-cluster-tls-cert-file", c.ClusterTLSCertFile},
		{"-cluster-tls-key-file", c.ClusterTLSKeyFile},
		{"-cluster-tls-ca-file", c.ClusterTLSCAFile},
	} {
		if err := readableFile(f.flag, f.path); err != nil {
			return err
		}
	}
	if _, err := tls.LoadX509KeyPair(c.ClusterTLSCertFile, c.ClusterTLSKeyFile); err != nil {
		return invalid("-cluster-tls-cert-file/-cluster-tls-key-file do not load as a pair: %s", oneLine(err.Error()))
	}
	if _, err := LoadCertPool(c.ClusterTLSCAFile); err != nil {
		return invalid("-cluster-tls-ca-file %q: %s", c.ClusterTLSCAFile, oneLine(err.Error()))
	}
	return nil
}

// readableFile checks that path ("" = unset) is an existing regular file.
func readableFile(flag, path string) error {
	if path == "" {
		return nil
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return invalid("%s %q does not exist", flag, path)
	case err != nil:
		return invalid("%s %q: %s", flag, path, oneLine(err.Error()))
	case fi.IsDir():
		return invalid("%s %q is a directory", flag, path)
	}
	return nil
}

// LoadCertPool reads a PEM bundle into a certificate pool; a file without
// any certificate is an error.
func LoadCertPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}
