package fsm

import (
	"encoding/binary"
	"errors"
	"testing"
)

// batchedCommands is a create, a create the state refuses (same hash), a
// child of the first, and a renewal of the first.
func batchedCommands() []Command {
	return []Command{
		CreateToken{Token: tok("b1", ""), Now: t0},
		CreateToken{Token: tok("b1", ""), Now: t0},
		CreateToken{Token: tok("b2", "b1"), Now: t0},
		RenewToken{Hash: h("b1"), Increment: 600, MaxTTL: DefaultMaxTTL, Now: t0 + sec},
	}
}

func TestBatchAppliesLikeOneEntryPerCommand(t *testing.T) {
	cmds := batchedCommands()
	one := New()
	var want []Result
	for i, c := range cmds {
		want = append(want, one.Apply(uint64(i+1), mustEncode(t, c)))
	}

	entries := make([][]byte, len(cmds))
	for i, c := range cmds {
		entries[i] = mustEncode(t, c)
	}
	entry, err := EncodeBatch(entries)
	if err != nil {
		t.Fatal(err)
	}
	batched := New()
	res := batched.Apply(7, entry)
	if res.Err != nil || len(res.Batch) != len(cmds) {
		t.Fatalf("batch result: err %v, %d results", res.Err, len(res.Batch))
	}
	for i := range cmds {
		if (res.Batch[i].Err == nil) != (want[i].Err == nil) || (res.Batch[i].Token == nil) != (want[i].Token == nil) {
			t.Errorf("command %d: %+v, alone %+v", i, res.Batch[i], want[i])
		}
	}
	if !errors.Is(res.Batch[1].Err, ErrTokenExists) {
		t.Errorf("the duplicate create: %v", res.Batch[1].Err)
	}
	if got := res.Batch[3].Token; got == nil || got.LastRenewalTime != t0+sec {
		t.Errorf("the renewal: %+v", got)
	}
	if batched.Hash() != one.Hash() {
		t.Error("the batch left another state than one entry per command")
	}
	if batched.LastApplied() != 7 {
		t.Errorf("applied index %d, want the batch's 7", batched.LastApplied())
	}
	if err := checkInvariants(batched); err != nil {
		t.Fatal(err)
	}

	// Encode(Batch) writes what EncodeBatch writes.
	if got := mustEncode(t, Batch{Commands: cmds}); string(got) != string(entry) {
		t.Error("Encode(Batch) and EncodeBatch differ")
	}
}

func TestBatchRefusesWhatItMayNotHold(t *testing.T) {
	create := mustEncode(t, CreateToken{Token: tok("x", ""), Now: t0})
	revoke := mustEncode(t, RevokeTree{Hash: h("x"), Now: t0})
	nested, err := EncodeBatch([][]byte{create})
	if err != nil {
		t.Fatal(err)
	}
	for name, entries := range map[string][][]byte{
		"empty":        nil,
		"a revocation": {create, revoke},
		"a batch":      {nested},
		"a cut entry":  {{byte(TypeCreateToken)}},
		"too many":     make([][]byte, MaxBatchCommands+1),
	} {
		if _, err := EncodeBatch(entries); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("EncodeBatch of %s: %v", name, err)
		}
	}
	for name, b := range map[string]Batch{
		"empty":        {},
		"a revocation": {Commands: []Command{RevokeTree{Hash: h("x")}}},
		"a nil":        {Commands: []Command{nil}},
	} {
		if _, err := Encode(b); !errors.Is(err, ErrInvalidCommand) {
			t.Errorf("Encode of a batch of %s: %v", name, err)
		}
	}

	// Committed entries that are not a valid batch do not decode, so
	// Apply halts on them before changing anything.
	body := func(count uint64, subs ...[]byte) []byte {
		b := binary.AppendUvarint([]byte{byte(TypeBatch), 1}, count)
		for _, s := range subs {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
		return b
	}
	for name, entry := range map[string][]byte{
		"no count":        {byte(TypeBatch), 1},
		"zero commands":   body(0),
		"a revocation":    body(2, create, revoke),
		"a nested batch":  body(1, nested),
		"fewer than said": body(2, create),
		"trailing bytes":  append(body(1, create), 0),
		"too many":        body(MaxBatchCommands + 1),
		"a torn command":  body(1, create[:len(create)/2]),
	} {
		if _, err := Decode(entry); !errors.Is(err, ErrMalformedEntry) {
			t.Errorf("Decode of %s: %v", name, err)
		}
	}
	good := body(1, create)
	if c, err := Decode(good); err != nil || len(c.(Batch).Commands) != 1 {
		t.Fatalf("a valid batch: %v", err)
	}
}
