package fsm

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
)

// Snapshot format version 1 (read only since version 2 is written).
//
// The stream is JSON lines: the header, one "meta" record, then one
// "policy" record per ACL policy (name order), one "role" record per token
// role (name order), one "batch_key" record per batch-token key (ID order),
// one "token" record per token (hash order), and an "end" record with the
// counts (so a truncated stream is detected). Each record is a snapRecord.
//
// Compatibility within version 1: the policy, role and batch_key kinds, the
// meta field batch_primary and the end fields policies/roles/batch_keys
// were added without changing anything that was there before. A snapshot
// written before they existed has none of them and restores as an empty
// policy set, no roles and an empty keyring; an absent end count means
// zero. A binary older than these kinds rejects a snapshot that has them
// ("unknown kind") instead of silently dropping replicated state.

// readV1 reads the records of a version-1 stream after its header line.
func (rs *restorer) readV1(br *bufio.Reader) error {
	dec := json.NewDecoder(br)
	for ; ; rs.n++ {
		var rec snapRecord
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				return badSnapshot("truncated after %d records", rs.n)
			}
			// Secrecy: no body bytes in the error.
			return badSnapshot("record %d does not decode", rs.n)
		}
		var err error
		switch rec.Kind {
		case recordMeta:
			err = rs.meta(&rec)
		case recordPolicy:
			err = rs.policy(rec.Policy)
		case recordRole:
			err = rs.role(rec.Role)
		case recordBatchKey:
			err = rs.batchKey(rec.BatchKey)
		case recordToken:
			err = rs.token(rec.Token)
		case recordEnd:
			if err := rs.end(&rec); err != nil {
				return err
			}
			var extra json.RawMessage
			if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
				return badSnapshot("data after end record")
			}
			return nil
		default:
			return badSnapshot("record %d: unknown kind %q", rs.n, rec.Kind)
		}
		if err != nil {
			return err
		}
	}
}
