package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestClusterTLSFlags(t *testing.T) {
	fixedHostname(t, "h")
	dir := t.TempDir()
	cert, key := selfSigned(t, dir, "a")
	ca, _ := selfSigned(t, dir, "ca")
	_, key2 := selfSigned(t, dir, "b")
	junk := writeFile(t, "junk.pem", "no pem here")
	missing := filepath.Join(dir, "missing.pem")
	base := []string{"-data-dir", dir, "-bootstrap-expect", "3"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }

	good := []struct {
		name string
		args []string
		env  func(string) string
		file string
		want [3]string
	}{
		{"flags", with("-cluster-tls-cert-file", cert, "-cluster-tls-key-file", key, "-cluster-tls-ca-file", ca), env(), "", [3]string{cert, key, ca}},
		{"env", base, env("TOKEND_CLUSTER_TLS_CERT_FILE", cert, "TOKEND_CLUSTER_TLS_KEY_FILE", key, "TOKEND_CLUSTER_TLS_CA_FILE", ca), "", [3]string{cert, key, ca}},
		{"file", base, env(), "cluster_tls_cert_file = \"" + cert + "\"\ncluster_tls_key_file = \"" + key + "\"\ncluster_tls_ca_file = \"" + ca + "\"\n", [3]string{cert, key, ca}},
		{"off", base, env(), "", [3]string{}},
		// Client TLS on a multi-node cluster is fine once nodes forward
		// over cluster TLS.
		{"with client tls", with("-cluster-tls-cert-file", cert, "-cluster-tls-key-file", key, "-cluster-tls-ca-file", ca, "-tls-cert-file", cert, "-tls-key-file", key), env(), "", [3]string{cert, key, ca}},
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
			if got := [3]string{c.ClusterTLSCertFile, c.ClusterTLSKeyFile, c.ClusterTLSCAFile}; got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if c.ClusterTLSEnabled() != (tt.want[0] != "") {
				t.Fatalf("ClusterTLSEnabled = %v", c.ClusterTLSEnabled())
			}
		})
	}

	bad := []struct {
		name string
		args []string
		want string
	}{
		{"cert only", with("-cluster-tls-cert-file", cert), "invalid config: -cluster-tls-cert-file, -cluster-tls-key-file and -cluster-tls-ca-file must be set together"},
		{"no ca", with("-cluster-tls-cert-file", cert, "-cluster-tls-key-file", key), "invalid config: -cluster-tls-cert-file, -cluster-tls-key-file and -cluster-tls-ca-file must be set together"},
		{"ca only", with("-cluster-tls-ca-file", ca), "invalid config: -cluster-tls-cert-file, -cluster-tls-key-file and -cluster-tls-ca-file must be set together"},
		{"missing cert", with("-cluster-tls-cert-file", missing, "-cluster-tls-key-file", key, "-cluster-tls-ca-file", ca), `invalid config: -cluster-tls-cert-file "` + missing + `" does not exist`},
		{"missing ca", with("-cluster-tls-cert-file", cert, "-cluster-tls-key-file", key, "-cluster-tls-ca-file", missing), `invalid config: -cluster-tls-ca-file "` + missing + `" does not exist`},
		{"ca is a directory", with("-cluster-tls-cert-file", cert, "-cluster-tls-key-file", key, "-cluster-tls-ca-file", dir), `invalid config: -cluster-tls-ca-file "` + dir + `" is a directory`},
		{"mismatched pair", with("-cluster-tls-cert-file", cert, "-cluster-tls-key-file", key2, "-cluster-tls-ca-file", ca), "invalid config: -cluster-tls-cert-file/-cluster-tls-key-file do not load as a pair: "},
		{"junk ca", with("-cluster-tls-cert-file", cert, "-cluster-tls-key-file", key, "-cluster-tls-ca-file", junk), `invalid config: -cluster-tls-ca-file "` + junk + `": no PEM certificate found`},
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
