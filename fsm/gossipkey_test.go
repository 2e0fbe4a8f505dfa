package fsm

import (
	"bytes"
	"errors"
	"testing"
)

func gk(b byte, n int) []byte { return bytes.Repeat([]byte{b}, n) }

func TestSetGossipKeyring(t *testing.T) {
	f := New()
	if keys, v := f.GossipKeyring(); keys != nil || v != 0 {
		t.Fatalf("fresh keyring = %d keys, version %d", len(keys), v)
	}
	mustApply(t, f, SetGossipKeyring{Keys: [][]byte{gk('a', 32), gk('b', 16)}, Prev: 0})
	keys, v := f.GossipKeyring()
	if v != 1 || len(keys) != 2 || !bytes.Equal(keys[0], gk('a', 32)) {
		t.Fatalf("keyring = %q, version %d", keys, v)
	}
	keys[0][0] = 'z' // a copy
	if k, _ := f.GossipKeyring(); k[0][0] != 'a' {
		t.Fatal("GossipKeyring returned the stored slice")
	}

	bad := []struct {
		name string
		cmd  SetGossipKeyring
		want error
	}{
		{"stale prev", SetGossipKeyring{Keys: [][]byte{gk('c', 32)}, Prev: 0}, ErrGossipKeyringChanged},
		{"no keys", SetGossipKeyring{Prev: 1}, ErrInvalidCommand},
		{"bad length", SetGossipKeyring{Keys: [][]byte{gk('c', 20)}, Prev: 1}, ErrInvalidCommand},
		{"duplicate", SetGossipKeyring{Keys: [][]byte{gk('c', 32), gk('c', 32)}, Prev: 1}, ErrInvalidCommand},
		{"too many", SetGossipKeyring{Keys: [][]byte{gk(1, 16), gk(2, 16), gk(3, 16), gk(4, 16), gk(5, 16), gk(6, 16), gk(7, 16), gk(8, 16), gk(9, 16)}, Prev: 1}, ErrInvalidCommand},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := applyCmd(t, f, tc.cmd)
			if !errors.Is(r.Err, tc.want) {
				t.Fatalf("err = %v, want %v", r.Err, tc.want)
			}
			// The applied index moves; the state must not.
			if k, v := f.GossipKeyring(); v != 1 || len(k) != 2 {
				t.Fatalf("rejected command changed the keyring: %d keys, version %d", len(k), v)
			}
		})
	}
	mustApply(t, f, SetGossipKeyring{Keys: [][]byte{gk('b', 16)}, Prev: 1})
	if k, v := f.GossipKeyring(); v != 2 || len(k) != 1 {
		t.Fatalf("after the second set: %d keys, version %d", len(k), v)
	}
}

func TestGossipKeyringSurvivesSnapshot(t *testing.T) {
	f := New()
	mustApply(t, f, SetGossipKeyring{Keys: [][]byte{gk('a', 24), gk('b', 32)}})
	g := New()
	if err := g.Restore(bytes.NewReader(snapshotBytes(t, f))); err != nil {
		t.Fatal(err)
	}
	keys, v := g.GossipKeyring()
	if v != 1 || len(keys) != 2 || !bytes.Equal(keys[1], gk('b', 32)) {
		t.Fatalf("restored keyring = %q, version %d", keys, v)
	}
	// A restored replica accepts the next step like the original.
	mustApply(t, g, SetGossipKeyring{Keys: [][]byte{gk('b', 32)}, Prev: 1})
	// A snapshot without a keyring restores to none.
	h := New()
	if err := h.Restore(bytes.NewReader(snapshotBytes(t, New()))); err != nil {
		t.Fatal(err)
	}
	if k, v := h.GossipKeyring(); k != nil || v != 0 {
		t.Fatalf("empty snapshot restored %d keys, version %d", len(k), v)
	}
}
