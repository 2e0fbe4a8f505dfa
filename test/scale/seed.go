package scale

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/tokend/tokend/fsm"
)

// adapterMagic starts every snapshot cluster's raft FSM adapter writes,
// followed by the applied index (8 bytes, big endian) and the fsm stream.
// It mirrors cluster/fsmadapter.go (unexported there): if that format
// changes, seeding fails loudly at restore instead of measuring garbage.
var adapterMagic = []byte("tkdsnap1")

// TokenID is the plaintext ID of seeded token i (Vault's service token
// shape: "hvs." and 24 characters).
func TokenID(i int) string { return fmt.Sprintf("hvs.scale%015d", i) }

// Token is seeded token i as httpapi would have created it through
// auth/token/create, i microseconds after now (so creation and expiry
// times differ, as they do for real tokens): every fourth token is an
// orphan, the others are children of the orphan before them (parent is its
// hash); every third has an extra policy, every fifth carries meta.
func Token(h *fsm.Hasher, i int, parent string, now time.Time) fsm.Token {
	ns := now.UnixNano() + int64(i)*int64(time.Microsecond)
	const ttl = 768 * 3600
	t := fsm.Token{
		Hash:         h.Hash(TokenID(i)),
		Accessor:     fmt.Sprintf("scaleacc%016d", i),
		Policies:     []string{"default"},
		DisplayName:  "token",
		Path:         "auth/token/create",
		CreationTime: ns,
		CreationTTL:  ttl,
		TTL:          ttl,
		ExpireTime:   ns + ttl*int64(time.Second),
		IssueTime:    ns,
		Renewable:    true,
		Type:         fsm.TokenTypeService,
	}
	if i%3 == 0 {
		t.Policies = []string{"default", "dev"}
	}
	if i%5 == 0 {
		t.Meta = map[string]string{"user": "svc-" + strconv.Itoa(i%100)}
		t.DisplayName = "token-svc"
	}
	if i%4 != 0 {
		t.Parent = parent
	}
	return t
}

// Result describes one Seed.
type Result struct {
	// Tokens is the number of tokens stored after seeding.
	Tokens int
	// Index and Term are the raft position of the written snapshot.
	Index, Term uint64
	// SnapshotBytes is the size of the fsm stream written.
	SnapshotBytes int64
}

// Seed grows the state of a stopped node whose raft directory is raftDir
// (<data dir>/raft), hashing token IDs with the node's token hasher h, by the seeded tokens first..first+n-1, created at now,
// and writes it as the node's newest snapshot (see the package doc). The
// node must be stopped (its bolt store is opened here) and must have taken
// a snapshot of its current state before stopping (cluster.Node.Snapshot),
// since log entries after the newest snapshot are not read.
func Seed(raftDir string, h *fsm.Hasher, first, n int, now time.Time) (Result, error) {
	logger := hclog.NewNullLogger()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, logger)
	if err != nil {
		return Result{}, fmt.Errorf("open snapshot store: %w", err)
	}
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(raftDir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		return Result{}, fmt.Errorf("open raft store (is the node stopped?): %w", err)
	}
	defer store.Close()

	metas, err := snaps.List()
	if err != nil || len(metas) == 0 {
		return Result{}, fmt.Errorf("no snapshot to seed from (take one before stopping): %v", err)
	}
	last, err := store.LastIndex()
	if err != nil {
		return Result{}, fmt.Errorf("last index: %w", err)
	}
	if metas[0].Index < last {
		return Result{}, fmt.Errorf("newest snapshot at %d is older than the log (%d): take one before stopping", metas[0].Index, last)
	}
	index, term := metas[0].Index, metas[0].Term

	f, err := openSnapshot(snaps, metas[0].ID)
	if err != nil {
		return Result{}, err
	}
	// Parents: an orphan seeded before first may be needed by first's
	// children; keep the chain consistent by starting each batch at an
	// orphan.
	parent := ""
	for i := first; i < first+n; i++ {
		t := Token(h, i, parent, now)
		if t.Parent == "" {
			parent = t.Hash
		} else if parent == "" {
			t.Parent = ""
			parent = t.Hash
		}
		entry, err := fsm.Encode(fsm.CreateToken{Token: t, Now: t.CreationTime})
		if err != nil {
			return Result{}, err
		}
		if r := f.Apply(index, entry); r.Err != nil {
			return Result{}, fmt.Errorf("seed token %d: %w", i, r.Err)
		}
	}

	snap, err := f.Snapshot()
	if err != nil {
		return Result{}, err
	}
	// Create encodes the (legacy) peer list through a transport; the
	// network transport and the in-memory one both encode a peer as its
	// address.
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, term, metas[0].Configuration, metas[0].ConfigurationIndex, trans)
	if err != nil {
		return Result{}, fmt.Errorf("create snapshot: %w", err)
	}
	hdr := binary.BigEndian.AppendUint64(bytes.Clone(adapterMagic), index)
	if _, err := sink.Write(hdr); err != nil {
		return Result{}, errors.Join(err, sink.Cancel())
	}
	size, err := snap.WriteTo(sink)
	if err != nil {
		return Result{}, errors.Join(err, sink.Cancel())
	}
	if err := sink.Close(); err != nil {
		return Result{}, fmt.Errorf("write snapshot: %w", err)
	}
	return Result{Tokens: f.Len(), Index: index, Term: term, SnapshotBytes: size}, nil
}

// openSnapshot restores the raft snapshot id into a new fsm.FSM.
func openSnapshot(snaps *raft.FileSnapshotStore, id string) (*fsm.FSM, error) {
	_, rc, err := snaps.Open(id)
	if err != nil {
		return nil, fmt.Errorf("open snapshot %s: %w", id, err)
	}
	defer rc.Close()
	hdr := make([]byte, len(adapterMagic)+8)
	if _, err := io.ReadFull(rc, hdr); err != nil || !bytes.Equal(hdr[:len(adapterMagic)], adapterMagic) {
		return nil, fmt.Errorf("snapshot %s: not a tokend snapshot", id)
	}
	f := fsm.New()
	if err := f.Restore(rc); err != nil {
		return nil, fmt.Errorf("restore snapshot %s: %w", id, err)
	}
	return f, nil
}
