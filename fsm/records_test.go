package fsm

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestSnapshotsStayFrozenUnderCopyOnWrite: a snapshot's bytes never change
// while later commands rewrite its chunks in every way the store allows —
// renew in place, revoke (slots freed), creates that reuse the freed slots,
// a shape freed and its number reused by a new shape, long accessors added
// and removed, orphaning — with two snapshots alive at once and the writes
// running concurrently with WriteTo (go test -race sees any shared write).
func TestSnapshotsStayFrozenUnderCopyOnWrite(t *testing.T) {
	f := New()
	var cmds []Command
	for i := 0; i < 3*chunkRecs; i++ {
		tk := tok(fmt.Sprint("t", i), "")
		tk.TTL, tk.ExpireTime, tk.Renewable = 3600, t0+3600*sec, true
		if i%7 == 0 {
			tk.Meta = map[string]string{"user": fmt.Sprint("u", i)} // its own shape
		}
		if i%50 == 0 {
			tk.Accessor = strings.Repeat("L", accInline+1+i%3) + fmt.Sprint(i)
		}
		cmds = append(cmds, CreateToken{Token: tk, Now: t0})
	}
	mustApply(t, f, cmds...)
	mustApply(t, f, create("parent", ""), create("kid1", "parent"), create("kid2", "parent"))
	if err := checkInvariants(f); err != nil {
		t.Fatal(err)
	}
	first, _ := f.Snapshot()
	want1 := snapshotBytes(t, f)

	var edits []Command
	for i := 0; i < 3*chunkRecs; i += 3 {
		edits = append(edits, RenewToken{Hash: h(fmt.Sprint("t", i)), Increment: 60, MaxTTL: 7200, Now: t0 + sec})
	}
	for i := 1; i < 3*chunkRecs; i += 5 {
		edits = append(edits, RevokeTree{Hash: h(fmt.Sprint("t", i)), Now: t0 + sec})
	}
	edits = append(edits, RevokeTree{Hash: h("t7"), Now: t0 + sec}) // frees t7's own shape
	for i := 0; i < chunkRecs; i++ {
		tk := tok(fmt.Sprint("n", i), "")
		tk.Meta = map[string]string{"new": fmt.Sprint(i)} // takes freed shape numbers
		if i%40 == 0 {
			tk.Accessor = strings.Repeat("M", accInline+5) + fmt.Sprint(i)
		}
		edits = append(edits, CreateToken{Token: tk, Now: t0 + sec})
	}
	edits = append(edits, RevokeOrphan{Hash: h("parent"), Now: t0 + sec})

	var second *Snapshot
	var want2 []byte
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 5; i++ {
			var buf bytes.Buffer
			if _, err := first.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), want1) {
				t.Errorf("first snapshot changed while commands ran (err %v)", err)
				return
			}
		}
	}()
	for i, c := range edits {
		mustApply(t, f, c)
		if i == len(edits)/2 {
			second, _ = f.Snapshot()
			want2 = snapshotBytes(t, f)
		}
	}
	wg.Wait()
	for name, c := range map[string]struct {
		s    *Snapshot
		want []byte
	}{"first": {first, want1}, "second": {second, want2}} {
		var buf bytes.Buffer
		if _, err := c.s.WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), c.want) {
			t.Fatalf("%s snapshot changed after later commands (err %v)", name, err)
		}
	}
	if err := checkInvariants(f); err != nil {
		t.Fatal(err)
	}
	// The stores agree after a restore of each snapshot's stream.
	g := New()
	if err := g.Restore(bytes.NewReader(snapshotBytes(t, f))); err != nil {
		t.Fatal(err)
	}
	if g.Hash() != f.Hash() || g.Digest().Hash != f.Digest().Hash {
		t.Fatal("restored state differs")
	}
	if err := checkInvariants(g); err != nil {
		t.Fatal(err)
	}
}

// TestKeyOf: only 64 lowercase hex digits parse, to the bytes they spell.
func TestKeyOf(t *testing.T) {
	good := h("x")
	k, ok := keyOf(good)
	if !ok || k.String() != good {
		t.Fatalf("keyOf(%s) = %s, %v", good, k, ok)
	}
	for _, bad := range []string{"", good[:63], good + "0", strings.ToUpper(good), good[:63] + "g", good[:10] + "\x00" + good[11:], "hvs." + good[4:]} {
		if _, ok := keyOf(bad); ok {
			t.Errorf("keyOf(%q) parsed", bad)
		}
	}
}
