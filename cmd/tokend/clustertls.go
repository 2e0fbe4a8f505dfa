package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/tokend/tokend/cluster"
	"github.com/tokend/tokend/config"
)

// loadClusterTLS loads the node's cluster identity (nil without
// -cluster-tls-*) and reloads it on SIGHUP until stop is called.
// Without cluster TLS a node that expects peers says loudly that raft and
// forwarded requests travel in plaintext.
func loadClusterTLS(cfg config.Config, logger hclog.Logger) (t *cluster.ClusterTLS, stop func(), err error) {
	log := logger.Named("cluster-tls")
	if !cfg.ClusterTLSEnabled() {
		if cfg.MultiNode() && !cfg.Dev {
			log.Warn("cluster TLS is off: raft traffic and forwarded requests (tokens included) cross the network in plaintext and peers are not authenticated; set -cluster-tls-cert-file, -cluster-tls-key-file and -cluster-tls-ca-file (tokend operator gen-certs)")
		}
		return nil, func() {}, nil
	}
	t, err = cluster.LoadClusterTLS(cluster.TLSFiles{
		CertFile: cfg.ClusterTLSCertFile,
		KeyFile:  cfg.ClusterTLSKeyFile,
		CAFile:   cfg.ClusterTLSCAFile,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("-cluster-tls-cert-file: %w", err)
	}
	if cfg.NodeID != "" && t.NodeID() != cfg.NodeID {
		return nil, nil, fmt.Errorf("-cluster-tls-cert-file names node %q, but -node-id is %q", t.NodeID(), cfg.NodeID)
	}
	leaf := t.Leaf()
	log.Info("cluster TLS enabled", "cert_file", cfg.ClusterTLSCertFile, "node", t.NodeID(), "not_after", leaf.NotAfter)
	stop = onSIGHUP(func() {
		if err := t.Reload(); err != nil {
			log.Error("cluster certificate reload failed; keeping the previous one", "cert_file", cfg.ClusterTLSCertFile, "error", err)
			return
		}
		l := t.Leaf()
		log.Info("cluster certificate reloaded", "cert_file", cfg.ClusterTLSCertFile, "serial", l.SerialNumber.Text(16), "not_after", l.NotAfter)
	})
	return t, stop, nil
}

// Names of the files gen-certs writes in -dir.
const (
	caCertName = "ca.pem"
	caKeyName  = "ca-key.pem"
)

// operatorGenCerts is "tokend operator gen-certs": a cluster CA (made once
// per -dir, reused afterwards so nodes can be added) and one certificate
// per node id named on the command line.
func operatorGenCerts(e *env, args []string) int {
	fs := flag.NewFlagSet("operator gen-certs", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	dir := fs.String("dir", "certs", "directory to write to (created 0700)")
	hosts := fs.String("hosts", "localhost,127.0.0.1", "comma-separated DNS names and IPs added to every node certificate, so it can also serve the HTTP API (-tls-cert-file)")
	validity := fs.Duration("validity", 365*24*time.Hour, "validity of node certificates (capped at the CA's)")
	caValidity := fs.Duration("ca-validity", 10*365*24*time.Hour, "validity of a new CA")
	force := fs.Bool("force", false, "overwrite existing node certificates")
	fs.Usage = func() {
		fmt.Fprint(e.stderr, `Usage: tokend operator gen-certs [flags] NODE-ID...

Creates a cluster CA in -dir (ca.pem, ca-key.pem; reused when present) and,
for every NODE-ID, NODE-ID.pem and NODE-ID-key.pem: an ECDSA P-256
certificate naming the node in a tokend://node/NODE-ID URI SAN, usable for
both ends of the cluster port and, with -hosts, for the HTTP API. Keys are
written 0600. Start each node with
  -cluster-tls-cert-file DIR/NODE-ID.pem -cluster-tls-key-file DIR/NODE-ID-key.pem
  -cluster-tls-ca-file DIR/ca.pem
Keep ca-key.pem off the nodes: it is needed only to issue certificates.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitFailure
	}
	ids := fs.Args()
	if len(ids) == 0 {
		fmt.Fprintln(e.stderr, "tokend operator gen-certs: name at least one node id")
		fs.Usage()
		return exitFailure
	}
	var dnsNames []string
	var ips []net.IP
	for _, h := range strings.Split(*hosts, ",") {
		h = strings.TrimSpace(h)
		switch ip := net.ParseIP(h); {
		case h == "":
		case ip != nil:
			ips = append(ips, ip)
		default:
			dnsNames = append(dnsNames, h)
		}
	}
	if err := genCerts(e, *dir, ids, dnsNames, ips, *validity, *caValidity, *force); err != nil {
		fmt.Fprintf(e.stderr, "tokend operator gen-certs: %v\n", err)
		return exitFailure
	}
	return exitOK
}

func genCerts(e *env, dir string, ids, dnsNames []string, ips []net.IP, validity, caValidity time.Duration, force bool) error {
	for _, id := range ids {
		if id == "" || strings.ContainsAny(id, `/\`) || id == "." || id == ".." || id == "ca" {
			return fmt.Errorf("node id %q cannot name a file", id)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caCertPath, caKeyPath := filepath.Join(dir, caCertName), filepath.Join(dir, caKeyName)
	var ca *cluster.CA
	certPEM, errC := os.ReadFile(caCertPath)
	keyPEM, errK := os.ReadFile(caKeyPath)
	switch {
	case errC == nil && errK == nil:
		var err error
		if ca, err = cluster.ParseCA(certPEM, keyPEM); err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		fmt.Fprintf(e.stdout, "using the CA in %s\n", caCertPath)
	case errors.Is(errC, fs.ErrNotExist) && errors.Is(errK, fs.ErrNotExist):
		var err error
		if ca, err = cluster.NewCA("tokend cluster CA", caValidity); err != nil {
			return err
		}
		if err := writeNew(caKeyPath, ca.KeyPEM, 0o600, false); err != nil {
			return err
		}
		if err := writeNew(caCertPath, ca.CertPEM, 0o644, false); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "created CA %s (key %s)\n", caCertPath, caKeyPath)
	default:
		return fmt.Errorf("%s needs both %s and %s, or neither", dir, caCertName, caKeyName)
	}
	for _, id := range ids {
		nc, err := ca.IssueNode(id, dnsNames, ips, validity)
		if err != nil {
			return fmt.Errorf("node %s: %w", id, err)
		}
		certPath, keyPath := filepath.Join(dir, id+".pem"), filepath.Join(dir, id+"-key.pem")
		if err := writeNew(keyPath, nc.KeyPEM, 0o600, force); err != nil {
			return err
		}
		if err := writeNew(certPath, nc.CertPEM, 0o644, force); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "created %s (key %s) for node %s\n", certPath, keyPath, id)
	}
	return nil
}

// writeNew writes a file with mode, refusing to replace one unless force.
// The mode is set explicitly: the umask may not lower a key's to 0600.
func writeNew(path string, data []byte, mode os.FileMode, force bool) error {
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, mode)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists (use -force to replace node certificates)", path)
	}
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
