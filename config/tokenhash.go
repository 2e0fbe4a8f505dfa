package config

import (
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Token hash key sizes (fsm.MinHashKeyLen/MaxHashKeyLen; config imports
// nothing of ours).
const (
	minTokenHashKey = 32
	maxTokenHashKey = 64
)

// ReadTokenHashKey reads a -token-hash-key-file: the base64 (standard
// encoding) of 32 to 64 random bytes, surrounding whitespace ignored, in a
// file only its owner may read. Errors are one-line "invalid config: …" and
// never contain the key.
func ReadTokenHashKey(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, invalid("-token-hash-key-file %q does not exist", path)
	case err != nil:
		return nil, invalid("-token-hash-key-file %q: %s", path, oneLine(err.Error()))
	case !fi.Mode().IsRegular():
		return nil, invalid("-token-hash-key-file %q is not a regular file", path)
	case fi.Mode().Perm()&0o077 != 0:
		// Like ssh with private keys: a key others can read is no secret.
		return nil, invalid("-token-hash-key-file %q is readable by group or others (mode %04o): chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, invalid("-token-hash-key-file %q: %s", path, oneLine(err.Error()))
	}
	defer clear(b)
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, invalid("-token-hash-key-file %q is not base64 (create one with: tokend operator keygen -bytes 32 > FILE)", path)
	}
	if len(k) < minTokenHashKey || len(k) > maxTokenHashKey {
		return nil, invalid("-token-hash-key-file %q must hold %d to %d bytes (got %d)", path, minTokenHashKey, maxTokenHashKey, len(k))
	}
	return k, nil
}

// validTokenHashKey checks -token-hash-key-file: required unless -dev (a
// -dev node generates a key in memory), readable as a key, and outside the
// data dir, so that whoever copies the data dir does not get the key too.
func (c Config) validTokenHashKey() error {
	if c.TokenHashKeyFile == "" {
		if c.Dev {
			return nil
		}
		return invalid("-token-hash-key-file is required: a file with the base64 of 32 random bytes, the same on every node (create one with: tokend operator keygen -bytes 32 > FILE)")
	}
	if c.DataDir != "" {
		key, err1 := filepath.Abs(c.TokenHashKeyFile)
		dir, err2 := filepath.Abs(c.DataDir)
		if err1 == nil && err2 == nil {
			if rel, err := filepath.Rel(dir, key); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
				return invalid("-token-hash-key-file %q must not be inside -data-dir %q: the key must not travel with the data", c.TokenHashKeyFile, c.DataDir)
			}
		}
	}
	k, err := ReadTokenHashKey(c.TokenHashKeyFile)
	clear(k)
	return err
}
