package fsm

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Batch is several token writes committed as one log entry: the leader's
// group commit (cluster/groupcommit.go) gathers the creates and renewals
// proposed while earlier entries are in flight. One entry instead of one
// per command saves raft's per-entry work on every node (log store
// records, replication encoding, futures), which was most of a create's
// cost under load.
//
// Apply applies the commands in order, each exactly as if it had its own
// entry, and returns each one's Result in Result.Batch; a rejected command
// changes nothing and does not affect the others. Only Batchable commands
// may be in a Batch, and there is at least one.
type Batch struct {
	Commands []Command
}

// CommandType implements Command.
func (Batch) CommandType() Type { return TypeBatch }

// MaxBatchCommands bounds the commands of one Batch (decoding refuses
// more): it keeps one entry's apply, during which other writes wait, short.
const MaxBatchCommands = 256

// errBadBatch marks a batch body that cannot be decoded or holds a
// command that may not be batched.
var errBadBatch = errors.New("bad batch")

// Batchable reports whether commands of type t may go in a Batch: the
// token writes of the login path, which are small and touch one token
// each. Everything else keeps an entry of its own: revocations (large
// applies, and the revocation fence), and the control commands some
// callers watch entries for (the gossip keyring, peers).
func Batchable(t Type) bool {
	switch t {
	case TypeCreateToken, TypeRenewToken:
		return true
	}
	return false
}

// EncodeBatch joins entries written by Encode, each of a Batchable type,
// into one Batch entry without decoding them again.
func EncodeBatch(entries [][]byte) ([]byte, error) {
	if len(entries) == 0 || len(entries) > MaxBatchCommands {
		return nil, fmt.Errorf("batch of %d commands: %w", len(entries), ErrInvalidCommand)
	}
	size := 2 + binary.MaxVarintLen64
	for _, e := range entries {
		if len(e) < 2 || !Batchable(Type(e[0])) {
			return nil, fmt.Errorf("entry of type %v in a batch: %w", typeOf(e), ErrInvalidCommand)
		}
		size += binary.MaxVarintLen64 + len(e)
	}
	b := make([]byte, 0, size)
	b = append(b, byte(TypeBatch), 1)
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b, nil
}

// typeOf is the type byte of an entry, 0 for an empty one.
func typeOf(entry []byte) Type {
	if len(entry) == 0 {
		return 0
	}
	return Type(entry[0])
}

// validBatch checks what EncodeBatch checks, for a Batch given to Encode.
func validBatch(b Batch) error {
	if len(b.Commands) == 0 || len(b.Commands) > MaxBatchCommands {
		return fmt.Errorf("batch of %d commands: %w", len(b.Commands), ErrInvalidCommand)
	}
	for _, c := range b.Commands {
		if c == nil || !Batchable(c.CommandType()) {
			return fmt.Errorf("command %T in a batch: %w", c, ErrInvalidCommand)
		}
	}
	return nil
}

// encodeBatch is Batch's registry encoder; Encode has run validBatch.
func encodeBatch(c Command) []byte {
	b := c.(Batch)
	entries := make([][]byte, len(b.Commands))
	for i, sub := range b.Commands {
		e, err := Encode(sub)
		if err != nil {
			// validBatch let only registered, batchable types through.
			panic(fmt.Sprintf("fsm: encode a batched %v: %v", sub.CommandType(), err))
		}
		entries[i] = e
	}
	out, err := EncodeBatch(entries)
	if err != nil {
		panic(fmt.Sprintf("fsm: encode a batch: %v", err))
	}
	return out
}

// decodeBatch decodes a version-1 Batch body: the uvarint count, then
// each entry as its uvarint length and the entry. Every entry must decode
// and be Batchable, so a batch is applied whole or (as a corrupt entry)
// not at all.
func decodeBatch(body []byte) (Command, error) {
	count, n := binary.Uvarint(body)
	if n <= 0 || count == 0 || count > MaxBatchCommands {
		return nil, errBadBatch
	}
	body = body[n:]
	cmds := make([]Command, 0, count)
	for i := uint64(0); i < count; i++ {
		size, n := binary.Uvarint(body)
		if n <= 0 || size > uint64(len(body)-n) {
			return nil, errBadBatch
		}
		entry := body[n : n+int(size)]
		body = body[n+int(size):]
		if len(entry) < 2 || !Batchable(Type(entry[0])) {
			return nil, errBadBatch
		}
		c, err := Decode(entry)
		if err != nil {
			return nil, errBadBatch
		}
		cmds = append(cmds, c)
	}
	if len(body) != 0 {
		return nil, errBadBatch
	}
	return Batch{Commands: cmds}, nil
}

// applyBatch is Batch's largeFunc: each command runs in a critical section
// of its own, so a reader waits for one command, never the whole batch.
// No pending overlay is needed: the commands are independent, each one is
// whole within its section, and a reader may see the first ones a little
// before the applied index (moved by Apply after the last) says so, never
// the reverse.
func applyBatch(f *FSM, b Batch) Result {
	out := make([]Result, len(b.Commands))
	for i, c := range b.Commands {
		apply := registry[c.CommandType()].apply
		f.section(func(s *state) { out[i] = apply(s, c) })
	}
	return Result{Batch: out}
}
