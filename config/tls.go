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
// loads, the client CA file holds at least one certificate, and TLS is only
// used where no node forwards to another (forwarding between nodes is
// plain http in this version).
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
	if !c.Dev && (c.BootstrapExpect != 1 || len(c.Join) > 0) {
		return invalid("-tls-cert-file needs -dev or a single node (-bootstrap-expect 1, no -join): forwarding between nodes does not use TLS yet")
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
