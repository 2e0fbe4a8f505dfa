package fsm

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Digest is a deterministic fingerprint of the whole replicated state at
// one applied index: two nodes that applied the same log prefix report the
// same Hash at the same AppliedIndex, whatever order their maps iterate in,
// whether their records came from Apply or from a Restore, and however
// their strings are interned.
type Digest struct {
	// Hash is "sha256:" and 64 lowercase hex digits.
	Hash string
	// AppliedIndex is the raft index the state was taken at (not part of
	// Hash: nodes compare hashes at equal indexes).
	AppliedIndex uint64
	// Tokens is the number of stored tokens.
	Tokens int
}

// DigestPrefix starts every Digest.Hash.
const DigestPrefix = "sha256:"

// digestDomain separates the digest from other SHA-256 uses of the same
// bytes (and versions it: a change of what is digested changes it).
const digestDomain = "tokend fsm digest v1\n"

// frameAccessor is the digest's record of one accessor index entry (never
// written to snapshots).
const frameAccessor = 'A'

// accessorPair is one entry of the accessor index.
type accessorPair struct{ accessor, hash string }

// Digest returns the state's Digest. What it covers: everything a snapshot
// holds — the meta record (initialized, cluster ID, index key, batch
// primary, gossip keyring), every policy, role and batch key, every field
// of every token in canonical form (the snapshot stream's version-2 body,
// records in key order, maps with sorted keys) — plus the accessor index
// itself (accessor → hash, sorted), so an index that diverged from the
// records is seen too. The children, expiry and path indexes are not
// covered: they are functions of token fields that are (Parent,
// ExpireTime, Path), and Check verifies them against the records.
//
// Consistency: like Snapshot, it holds the writer lock while it takes a
// frozen view of the records and copies the accessor index, so the view
// is exactly the state after AppliedIndex (never a large command half
// applied); readers are not blocked at all and the writer only for that
// copy. Encoding and hashing happen outside every lock.
func (f *FSM) Digest() Digest {
	f.wmu.Lock()
	s := f.snapshotLocked()
	idx := f.st.accessors.clone()
	f.wmu.Unlock()

	acc := make([]accessorPair, 0, idx.len())
	idx.each(func(a string, k key) { acc = append(acc, accessorPair{a, k.String()}) })
	slices.SortFunc(acc, func(a, b accessorPair) int {
		if c := strings.Compare(a.accessor, b.accessor); c != 0 {
			return c
		}
		return strings.Compare(a.hash, b.hash)
	})
	h := sha256.New()
	bw := bufio.NewWriterSize(h, 64<<10)
	bw.WriteString(digestDomain)
	if err := s.writeBody(bw); err != nil {
		// Marshalling the records cannot fail; reaching here is a
		// programmer error.
		panic(fmt.Sprintf("fsm: digest state: %v", err))
	}
	var body []byte
	for _, e := range acc {
		body = binary.AppendUvarint(body[:0], uint64(len(e.accessor)))
		body = append(body, e.accessor...)
		body = append(body, e.hash...)
		bw.WriteByte(frameAccessor)
		bw.Write(binary.AppendUvarint(nil, uint64(len(body))))
		bw.Write(body)
	}
	bw.Flush()
	return Digest{Hash: DigestPrefix + hex.EncodeToString(h.Sum(nil)), AppliedIndex: s.applied, Tokens: s.Len()}
}
