package cluster

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
)

// secureDataDir makes the data dir private to the tokend user: directories
// 0700, files 0600 (the raft log and snapshots hold the cluster's keys and
// every token's metadata; CVE-2021-38553 was Vault leaving them readable).
// Anything looser — e.g. a snapshot dir raft created under a permissive
// umask — is tightened with a warning; a mode that cannot be fixed is an
// error, so the node does not start on a data dir others can read.
func secureDataDir(dir string, logger hclog.Logger) error {
	fixed := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm()&^want == 0 {
			return nil
		}
		if err := os.Chmod(path, want); err != nil {
			return fmt.Errorf("data dir %s is readable by others and cannot be fixed: %w", path, err)
		}
		fixed++
		return nil
	})
	if err != nil {
		return err
	}
	if fixed > 0 {
		logger.Warn("tightened data dir permissions", "path", dir, "fixed", fixed)
	}
	return nil
}
