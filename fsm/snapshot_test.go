package fsm

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// fataler is the part of testing.TB that *rapid.T also has.
type fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

func snapshotBytes(tb fataler, f *FSM) []byte {
	tb.Helper()
	s, err := f.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		tb.Fatalf("WriteTo: n=%d len=%d err=%v", n, buf.Len(), err)
	}
	return buf.Bytes()
}

// sampleFSM has a bit of everything: root, tree, limited uses, metadata,
// cluster identity.
func sampleFSM(tb testing.TB) *FSM {
	f := New()
	mustApply(tb, f,
		InitRoot{Token: with(tok("root", ""), func(t *Token) { t.Policies, t.ExpireTime = []string{"root"}, 0 }), Now: t0},
		SetClusterIdent{ClusterID: "c1", IndexKey: []byte{1, 2, 3}},
		create("a", "root"), create("b", "a"),
		CreateToken{Token: with(tok("m", ""), func(t *Token) {
			t.Meta = map[string]string{"z": "1", "a": "2"}
			t.NumUses = 3
			t.Ext = map[string][]byte{"entuity": []byte(`{"id":7}`)}
		}), Now: t0},
	)
	return f
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f := sampleFSM(t)
	b := snapshotBytes(t, f)
	if !strings.HasPrefix(string(b), `{"format":"tokend-fsm","version":1,"applied_index":5}`+"\n") {
		t.Fatalf("header: %.80s", b)
	}
	g := New()
	if err := g.Restore(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if g.Hash() != f.Hash() || g.LastApplied() != f.LastApplied() {
		t.Fatal("restored state differs")
	}
	if !bytes.Equal(snapshotBytes(t, g), b) {
		t.Fatal("snapshot of restored state differs")
	}
	if err := checkInvariants(g); err != nil {
		t.Fatal(err)
	}
	if !g.Initialized() || g.Len() != 4 || len(g.Children(h("root"))) != 1 {
		t.Fatalf("restored: init=%v len=%d", g.Initialized(), g.Len())
	}
	if id, key := g.ClusterIdent(); id != "c1" || !bytes.Equal(key, []byte{1, 2, 3}) {
		t.Fatalf("ident %q %v", id, key)
	}
}

func TestSnapshotIsPointInTime(t *testing.T) {
	f := sampleFSM(t)
	want := snapshotBytes(t, f)
	s, _ := f.Snapshot()
	mustApply(t, f, RevokeTree{Hash: h("root"), Now: t0}, create("new", ""), UseToken{Hash: h("m"), Now: t0})
	var buf bytes.Buffer
	if _, err := s.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("snapshot changed after later applies")
	}
}

func TestRestoreRejects(t *testing.T) {
	good := string(snapshotBytes(t, sampleFSM(t)))
	lines := strings.SplitAfter(good, "\n")
	tokenLine := lines[2]
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"garbage", "not json"},
		{"unknown_format", strings.Replace(good, "tokend-fsm", "other", 1)},
		{"unknown_version", strings.Replace(good, `"version":1`, `"version":2`, 1)},
		{"truncated", strings.Join(lines[:len(lines)-2], "")},
		{"missing_meta", lines[0] + strings.Join(lines[2:], "")},
		{"duplicate_token", strings.Join(lines[:3], "") + tokenLine + strings.Join(lines[3:], "")},
		{"count_mismatch", strings.Replace(good, `"count":4`, `"count":5`, 1)},
		{"trailing_data", good + "{}\n"},
		{"unknown_kind", strings.Replace(good, `{"kind":"end"`, `{"kind":"role"}`+"\n"+`{"kind":"end"`, 1)},
		{"dangling_parent", lines[0] + lines[1] + `{"kind":"token","token":{"hash":"` + h("x") + `","accessor":"x","parent":"` + h("gone") + `"}}` + "\n" + `{"kind":"end","count":1}` + "\n"},
		{"parent_cycle", lines[0] + lines[1] +
			`{"kind":"token","token":{"hash":"` + h("x") + `","accessor":"x","parent":"` + h("y") + `"}}` + "\n" +
			`{"kind":"token","token":{"hash":"` + h("y") + `","accessor":"y","parent":"` + h("x") + `"}}` + "\n" +
			`{"kind":"end","count":2}` + "\n"},
		{"plaintext_key", lines[0] + lines[1] + `{"kind":"token","token":{"hash":"hvs.abc","accessor":"x"}}` + "\n" + `{"kind":"end","count":1}` + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := sampleFSM(t)
			before, applied := f.Hash(), f.LastApplied()
			err := f.Restore(strings.NewReader(tc.in))
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("err = %v", err)
			}
			if f.Hash() != before || f.LastApplied() != applied {
				t.Fatal("failed restore changed the state")
			}
			if strings.Contains(err.Error(), "hvs.abc") {
				t.Fatal("error leaks token material")
			}
		})
	}
}

func TestHashIgnoresAppliedIndexButNotState(t *testing.T) {
	a, b := New(), New()
	mustApply(t, a, create("x", ""))
	b.Apply(100, mustEncode(t, create("x", "")))
	if a.Hash() != b.Hash() {
		t.Fatal("same state, different hash")
	}
	mustApply(t, b, UseToken{Hash: h("x"), Now: t0}) // unlimited: no change
	if a.Hash() != b.Hash() {
		t.Fatal("a no-op command changed the hash")
	}
	mustApply(t, b, RevokeTree{Hash: h("x"), Now: t0})
	if a.Hash() == b.Hash() {
		t.Fatal("different states, same hash")
	}
}

func mustEncode(tb testing.TB, c Command) []byte {
	tb.Helper()
	b, err := Encode(c)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
