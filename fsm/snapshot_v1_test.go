package fsm

import (
	"bufio"
	"bytes"
	"encoding/json"
)

// snapshotBytesV1 writes f's snapshot in format version 1 (JSON lines), as
// the code before version 2 did: the tests of the version-1 reader build
// their inputs from it, and TestRestoreCoreSnapshot checks it against the
// fixture byte for byte, so it stays the old writer.
func snapshotBytesV1(tb fataler, f *FSM) []byte {
	tb.Helper()
	s, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	s.sortRecords()
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	write := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		w.Write(b)
		w.WriteByte('\n')
	}
	write(snapHeader{Format: SnapshotFormat, Version: 1, AppliedIndex: s.applied})
	write(snapRecord{Kind: recordMeta, Initialized: s.initialized, ClusterID: s.clusterID, IndexKey: s.indexKey, BatchPrimary: s.batchPrimary})
	for _, p := range s.policies {
		write(snapRecord{Kind: recordPolicy, Policy: p})
	}
	for _, r := range s.roles {
		write(snapRecord{Kind: recordRole, Role: r})
	}
	for _, k := range s.batchKeys {
		write(snapRecord{Kind: recordBatchKey, BatchKey: k})
	}
	for _, r := range s.tokens {
		t := s.recs.token(r)
		write(snapRecord{Kind: recordToken, Token: &t})
	}
	n := len(s.tokens)
	write(snapRecord{Kind: recordEnd, Count: &n,
		Policies: nonZero(len(s.policies)), Roles: nonZero(len(s.roles)), BatchKeys: nonZero(len(s.batchKeys))})
	w.Flush()
	return buf.Bytes()
}
