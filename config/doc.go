// Package config loads and validates the configuration of `tokend server`.
//
// Every setting exists three times, with one name derived from the flag:
//
//	flag          env                      file key
//	-data-dir     TOKEND_DATA_DIR          data_dir
//	-join a,b     TOKEND_JOIN=a,b          join = ["a", "b"] (or "a,b")
//
// The file is named by -config (or TOKEND_CONFIG) and is HCL or JSON, parsed
// with github.com/hashicorp/hcl v1; an unknown key, a nested block or a key
// given twice is an error. Precedence is flag > env > file > default; an
// empty env variable counts as unset.
//
// Load returns a validated Config or a one-line error that starts with
// "invalid config: " and names the flag, e.g.
// "invalid config: -bootstrap-expect must be >= 1 (got 0)". Errors never
// contain the cluster key or the dev root token ID.
//
// -dev changes defaults: node ID "dev", bootstrap-expect 1, text logs, and
// (through PrepareDataDir) a temporary data directory removed at exit.
//
// Invariants: this package imports nothing of tokend's own; Load and
// Validate never create files (PrepareDataDir does, and main calls it once).
package config
