package fsm

import (
	"bytes"
	"maps"
	"slices"
	"testing"
)

func keyBytes(b byte) []byte { return bytes.Repeat([]byte{b}, BatchKeySize) }

func rotate(id uint32, b byte, now int64) RotateBatchKey {
	return RotateBatchKey{KeyID: id, Key: keyBytes(b), Now: now}
}

func wantKeyring(primary uint32, ids ...uint32) func(*testing.T, *FSM, Result) {
	return func(t *testing.T, f *FSM, _ Result) {
		t.Helper()
		p, keys := f.BatchKeys()
		got := slices.Sorted(maps.Keys(keys))
		if p != primary || !slices.Equal(got, ids) {
			t.Fatalf("BatchKeys = %d %v, want %d %v", p, got, primary, ids)
		}
	}
}

func TestRotateBatchKey(t *testing.T) {
	runApplyCases(t, []applyCase{
		{name: "first_key_becomes_primary", cmd: rotate(1, 'a', t0), check: func(t *testing.T, f *FSM, r Result) {
			wantKeyring(1, 1)(t, f, r)
			id, k, ok := f.PrimaryBatchKey()
			if !ok || id != 1 || !bytes.Equal(k, keyBytes('a')) {
				t.Fatalf("PrimaryBatchKey = %d %x %v", id, k, ok)
			}
		}},
		{name: "rotation_keeps_old_keys_and_retires_primary", setup: []Command{rotate(1, 'a', t0)}, cmd: rotate(2, 'b', t0+sec),
			check: func(t *testing.T, f *FSM, r Result) {
				wantKeyring(2, 1, 2)(t, f, r)
				if k, ok := f.BatchKey(1); !ok || !bytes.Equal(k, keyBytes('a')) {
					t.Fatal("old key lost")
				}
				ring := f.BatchKeyring()
				if len(ring) != 2 || ring[0].RetiredAt != t0+sec || ring[0].CreatedAt != t0 || ring[1].RetiredAt != 0 {
					t.Fatalf("keyring = %+v", ring)
				}
			}},
		{name: "retry_of_current_primary_is_a_no_op", setup: []Command{rotate(1, 'a', t0)}, cmd: rotate(1, 'a', t0+sec), check: wantKeyring(1, 1)},
		{name: "reused_id_with_other_key_is_rejected", setup: []Command{rotate(1, 'a', t0)}, cmd: rotate(1, 'b', t0+sec), wantErr: ErrBatchKeyExists},
		{name: "reused_id_of_retired_key_is_rejected", setup: []Command{rotate(1, 'a', t0), rotate(2, 'b', t0)}, cmd: rotate(1, 'a', t0+sec), wantErr: ErrBatchKeyExists},
		{name: "id_zero_is_invalid", cmd: rotate(0, 'a', t0), wantErr: ErrInvalidCommand},
		{name: "short_key_is_invalid", cmd: RotateBatchKey{KeyID: 1, Key: keyBytes('a')[:16], Now: t0}, wantErr: ErrInvalidCommand},
	})
}

func TestPruneBatchKeys(t *testing.T) {
	// Key 1 retired at t0+1s, key 2 at t0+5s, key 3 primary.
	ring := []Command{rotate(1, 'a', t0), rotate(2, 'b', t0+sec), rotate(3, 'c', t0+5*sec)}
	pruned := func(n int) func(*testing.T, *FSM, Result) {
		return func(t *testing.T, _ *FSM, r Result) {
			t.Helper()
			if r.Pruned != n {
				t.Errorf("Pruned = %d, want %d", r.Pruned, n)
			}
		}
	}
	both := func(fs ...func(*testing.T, *FSM, Result)) func(*testing.T, *FSM, Result) {
		return func(t *testing.T, f *FSM, r Result) {
			for _, fn := range fs {
				fn(t, f, r)
			}
		}
	}
	runApplyCases(t, []applyCase{
		{name: "removes_keys_retired_before", setup: ring, cmd: PruneBatchKeys{Before: t0 + 2*sec}, check: both(pruned(1), wantKeyring(3, 2, 3))},
		{name: "retired_exactly_at_before_is_kept", setup: ring, cmd: PruneBatchKeys{Before: t0 + sec}, check: both(pruned(0), wantKeyring(3, 1, 2, 3))},
		{name: "never_removes_primary", setup: ring, cmd: PruneBatchKeys{Before: t0 + 1000*hour}, check: both(pruned(2), wantKeyring(3, 3))},
		{name: "empty_keyring", cmd: PruneBatchKeys{Before: t0}, check: both(pruned(0), wantKeyring(0))},
	})
}

func TestBatchKeyReadersReturnCopies(t *testing.T) {
	f := New()
	mustApply(t, f, rotate(1, 'a', t0))
	_, keys := f.BatchKeys()
	keys[1][0] = 'x'
	k, _ := f.BatchKey(1)
	k[1] = 'x'
	_, pk, _ := f.PrimaryBatchKey()
	pk[2] = 'x'
	f.BatchKeyring()[0].Key[3] = 'x'
	if again, _ := f.BatchKey(1); !bytes.Equal(again, keyBytes('a')) {
		t.Fatal("reader mutation leaked into the keyring")
	}
	if _, _, ok := New().PrimaryBatchKey(); ok {
		t.Fatal("empty FSM has a primary key")
	}
}

func TestRotateBatchKeyErrorsCarryNoKeyMaterial(t *testing.T) {
	f := New()
	mustApply(t, f, rotate(1, 'a', t0))
	secret := []byte("SECRETSECRETSECRETSECRETSECRET!!")
	for _, c := range []RotateBatchKey{{KeyID: 1, Key: secret, Now: t0}, {KeyID: 2, Key: secret[:5], Now: t0}} {
		r := applyCmd(t, f, c)
		if r.Err == nil || bytes.Contains([]byte(r.Err.Error()), []byte("SECRET")) {
			t.Fatalf("error %v", r.Err)
		}
	}
}
