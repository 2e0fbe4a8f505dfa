package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
)

// ALPN protocol names on the cluster port (doc.go, "Cluster port"). A
// connection's protocol is fixed by its TLS handshake, so no byte of raft
// traffic can be mistaken for an HTTP request or the other way round.
const (
	// ALPNRaft carries the raft transport.
	ALPNRaft = "tokend-raft"
	// ALPNForward carries HTTP/1.1: requests a follower forwards to the
	// leader and the leader's read-lease grants to followers.
	ALPNForward = "tokend-forward"
	// alpnProbe is a handshake-only connection: the leader checks that a
	// new member holds a cluster certificate for its id before making it
	// a raft voter.
	alpnProbe = "tokend-probe"
)

// NodeURIScheme and nodeURIHost form the URI SAN that names a node in its
// cluster certificate: tokend://node/<path-escaped node id>. A URI, not a
// DNS name, because node ids need not be valid host names.
const (
	NodeURIScheme = "tokend"
	nodeURIHost   = "node"
)

// NodeURI returns the URI SAN naming node id in a cluster certificate.
func NodeURI(id string) *url.URL {
	return &url.URL{Scheme: NodeURIScheme, Host: nodeURIHost, Path: "/" + id}
}

// certNodeID returns the node id a certificate names: exactly one
// tokend://node/<id> URI SAN with a non-empty id.
func certNodeID(c *x509.Certificate) (string, error) {
	id := ""
	for _, u := range c.URIs {
		if u.Scheme != NodeURIScheme || u.Host != nodeURIHost {
			continue
		}
		if id != "" {
			return "", errors.New("certificate names more than one node")
		}
		id = strings.TrimPrefix(u.Path, "/")
		if id == "" {
			return "", errors.New("certificate names an empty node id")
		}
	}
	if id == "" {
		return "", errors.New("certificate names no node (no tokend://node/<id> URI SAN)")
	}
	return id, nil
}

// TLSFiles names the PEM files of a node's cluster identity.
type TLSFiles struct {
	// CertFile is this node's certificate (leaf first), issued by the
	// cluster CA with a tokend://node/<id> URI SAN.
	CertFile string
	// KeyFile is the certificate's private key.
	KeyFile string
	// CAFile is the cluster CA bundle: peers must present a certificate
	// that chains to it.
	CAFile string
}

// ClusterTLS is a node's cluster identity: its certificate and the CA that
// every peer's certificate must chain to. Reload swaps both; handshakes
// after a reload use the new material, established connections keep theirs.
type ClusterTLS struct {
	files TLSFiles

	// sessions caches TLS 1.3 session tickets for dials to peers: a
	// reconnect (raft re-dials after every leader change) resumes without
	// certificate signatures. VerifyConnection still runs on a resumed
	// session and checks the peer's chain against the current CA.
	sessions tls.ClientSessionCache

	mu   sync.RWMutex
	cert *tls.Certificate
	id   string
	pool *x509.CertPool
}

// LoadClusterTLS reads the files once. An error here stops start-up.
func LoadClusterTLS(files TLSFiles) (*ClusterTLS, error) {
	t := &ClusterTLS{files: files, sessions: tls.NewLRUClientSessionCache(256)}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// NewClusterTLS builds a cluster identity from PEM bytes (tests, and
// callers that do not keep the material in files); Reload keeps it.
func NewClusterTLS(certPEM, keyPEM, caPEM []byte) (*ClusterTLS, error) {
	t := &ClusterTLS{sessions: tls.NewLRUClientSessionCache(256)}
	if err := t.set(certPEM, keyPEM, caPEM); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload reads the files again. On any error the current material stays
// in use. Without files (NewClusterTLS) it does nothing.
func (t *ClusterTLS) Reload() error {
	if t.files.CertFile == "" {
		return nil
	}
	certPEM, err := os.ReadFile(t.files.CertFile)
	if err != nil {
		return fmt.Errorf("read cluster certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(t.files.KeyFile)
	if err != nil {
		return fmt.Errorf("read cluster key: %w", err)
	}
	caPEM, err := os.ReadFile(t.files.CAFile)
	if err != nil {
		return fmt.Errorf("read cluster CA: %w", err)
	}
	return t.set(certPEM, keyPEM, caPEM)
}

func (t *ClusterTLS) set(certPEM, keyPEM, caPEM []byte) error {
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("cluster certificate and key: %w", err)
	}
	if c.Leaf == nil {
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return fmt.Errorf("parse cluster certificate: %w", err)
		}
	}
	id, err := certNodeID(c.Leaf)
	if err != nil {
		return fmt.Errorf("cluster certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("cluster CA: no PEM certificate found")
	}
	// The node's own certificate must verify against the CA it demands of
	// its peers, or every handshake would fail later with a less clear error.
	if _, err := verifyChain(c.Leaf, c.Certificate[1:], pool); err != nil {
		return fmt.Errorf("cluster certificate does not verify against the cluster CA: %w", err)
	}
	t.mu.Lock()
	t.cert, t.id, t.pool = &c, id, pool
	t.mu.Unlock()
	return nil
}

// NodeID returns the node id the certificate names.
func (t *ClusterTLS) NodeID() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.id
}

func (t *ClusterTLS) current() (*tls.Certificate, *x509.CertPool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.cert, t.pool
}

// Leaf returns the current certificate.
func (t *ClusterTLS) Leaf() *x509.Certificate {
	c, _ := t.current()
	return c.Leaf
}

// verifyChain verifies leaf (with intermediates) against roots for both
// server and client use, since every node is both.
func verifyChain(leaf *x509.Certificate, intermediates [][]byte, roots *x509.CertPool) ([][]*x509.Certificate, error) {
	inter := x509.NewCertPool()
	for _, der := range intermediates {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		inter.AddCert(c)
	}
	return leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	})
}

// verifyPeer checks a completed handshake: the peer presented a chain to
// the current cluster CA naming a node id that allow accepts. It returns
// that id.
func (t *ClusterTLS) verifyPeer(cs tls.ConnectionState, allow func(id string) error) (string, error) {
	if len(cs.PeerCertificates) == 0 {
		return "", errors.New("peer presented no certificate")
	}
	_, pool := t.current()
	leaf := cs.PeerCertificates[0]
	var inter [][]byte
	for _, c := range cs.PeerCertificates[1:] {
		inter = append(inter, c.Raw)
	}
	if _, err := verifyChain(leaf, inter, pool); err != nil {
		return "", fmt.Errorf("peer certificate: %w", err)
	}
	id, err := certNodeID(leaf)
	if err != nil {
		return "", fmt.Errorf("peer %w", err)
	}
	if err := allow(id); err != nil {
		return "", err
	}
	return id, nil
}

// baseConfig is the TLS configuration both sides share: TLS 1.3 only (all
// its suites are AEAD; every node runs this code, so there is no old peer
// to stay compatible with), and the chain check done by verifyPeer against
// the current CA rather than by crypto/tls against a pool fixed at start.
func (t *ClusterTLS) baseConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// Verification happens in VerifyConnection (verifyPeer) so a
		// reloaded CA applies to the next handshake.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		CurvePreferences:   []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
	}
}

// serverConfig accepts the given ALPN protocols from peers allowed by
// allow; the peer id is checked again by the caller from the state.
func (t *ClusterTLS) serverConfig(protos []string, allow func(id string) error) *tls.Config {
	c := t.baseConfig()
	c.InsecureSkipVerify = false
	c.ClientAuth = tls.RequireAnyClientCert
	c.NextProtos = protos
	c.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		cert, _ := t.current()
		return cert, nil
	}
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.NegotiatedProtocol == "" {
			return errors.New("no cluster protocol negotiated (ALPN)")
		}
		_, err := t.verifyPeer(cs, allow)
		return err
	}
	return c
}

// clientConfig dials a peer for proto; allow decides whether the node id
// the peer's certificate names is the one the caller expects at that
// address.
func (t *ClusterTLS) clientConfig(proto string, allow func(id string) error) *tls.Config {
	c := t.baseConfig()
	c.NextProtos = []string{proto}
	c.ClientSessionCache = t.sessions
	c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		cert, _ := t.current()
		return cert, nil
	}
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.NegotiatedProtocol != proto {
			return fmt.Errorf("peer did not agree to protocol %s", proto)
		}
		_, err := t.verifyPeer(cs, allow)
		return err
	}
	return c
}

// expectID is an allow function for clientConfig that accepts only want.
func expectID(want string) func(string) error {
	return func(id string) error {
		if id != want {
			return fmt.Errorf("peer certificate names node %q, expected %q", id, want)
		}
		return nil
	}
}

// peerIDOf returns the node id of a verified connection's peer.
func peerIDOf(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	id, _ := certNodeID(cs.PeerCertificates[0])
	return id
}
