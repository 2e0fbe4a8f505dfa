package cluster

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestSecureDataDirTightensLooseModes(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "raft", "snapshots", "1-2-3")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(sub, "state.bin")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "raft"), sub, file} {
		if err := os.Chmod(p, map[bool]os.FileMode{true: 0o755, false: 0o644}[p != file]); err != nil {
			t.Fatal(err)
		}
	}
	if err := secureDataDir(dir, hclog.NewNullLogger()); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "raft"): 0o700, sub: 0o700, file: 0o600} {
		info, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
}

func TestNewStartsWithPrivateDataDir(t *testing.T) {
	c := newCluster(t, 1)
	c.waitLeader()
	err := filepath.Walk(c.nodes[0].dir, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: mode %o is readable by others", path, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
