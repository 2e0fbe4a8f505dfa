package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/tokend/tokend/config"
)

// tlsCipherSuites are the TLS 1.2 suites the server accepts: ECDHE key
// exchange with an AEAD only. TLS 1.3 suites are not configurable in Go and
// are all modern.
var tlsCipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// tlsCurves are the key-exchange groups, preferred first: the hybrid
// post-quantum group (TLS 1.3 only), then X25519 and P-256.
var tlsCurves = []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256}

// certHolder holds the server certificate and swaps it on reload. New
// handshakes pick up the current pair through GetCertificate; established
// connections keep the one they negotiated.
type certHolder struct {
	certFile, keyFile string

	mu   sync.RWMutex
	cert *tls.Certificate
}

// newCertHolder loads the pair once; an error here stops start-up.
func newCertHolder(certFile, keyFile string) (*certHolder, error) {
	h := &certHolder{certFile: certFile, keyFile: keyFile}
	if err := h.reload(); err != nil {
		return nil, err
	}
	return h, nil
}

// reload reads the pair again. On any error the current pair stays in use.
func (h *certHolder) reload() error {
	c, err := tls.LoadX509KeyPair(h.certFile, h.keyFile)
	if err != nil {
		return fmt.Errorf("load -tls-cert-file/-tls-key-file: %w", err)
	}
	if c.Leaf == nil && len(c.Certificate) > 0 {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return fmt.Errorf("parse -tls-cert-file: %w", err)
		}
	}
	h.mu.Lock()
	h.cert = &c
	h.mu.Unlock()
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (h *certHolder) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cert, nil
}

// leaf returns the current leaf certificate.
func (h *certHolder) leaf() *x509.Certificate {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.cert.Leaf
}

// serverTLSConfig builds the HTTP API's TLS configuration from the -tls-*
// settings; nil, nil when TLS is off.
func serverTLSConfig(cfg config.Config) (*tls.Config, *certHolder, error) {
	if !cfg.TLSEnabled() {
		return nil, nil, nil
	}
	h, err := newCertHolder(cfg.TLSCertFile, cfg.TLSKeyFile)
	if err != nil {
		return nil, nil, err
	}
	minVersion, ok := config.TLSVersion(cfg.TLSMinVersion)
	if !ok {
		minVersion = tls.VersionTLS12
	}
	tc := &tls.Config{
		MinVersion:       minVersion,
		CipherSuites:     tlsCipherSuites,
		CurvePreferences: tlsCurves,
		GetCertificate:   h.getCertificate,
		NextProtos:       []string{"h2", "http/1.1"},
	}
	if cfg.TLSClientCAFile != "" {
		pool, err := config.LoadCertPool(cfg.TLSClientCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("-tls-client-ca-file: %w", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return tc, h, nil
}

// watchCertReload reloads the certificate on SIGHUP until stop is called.
// A pair that fails to load is logged and the old one kept.
func watchCertReload(h *certHolder, logger hclog.Logger) (stop func()) {
	if h == nil {
		return func() {}
	}
	log := logger.Named("tls")
	return onSIGHUP(func() { reloadCert(h, log) })
}

// reloadCert is one SIGHUP: reload and log the outcome.
func reloadCert(h *certHolder, log hclog.Logger) {
	if err := h.reload(); err != nil {
		log.Error("certificate reload failed; still serving the previous certificate", "cert_file", h.certFile, "error", err)
		return
	}
	l := h.leaf()
	log.Info("certificate reloaded", "cert_file", h.certFile, "serial", l.SerialNumber.Text(16), "not_after", l.NotAfter)
}
