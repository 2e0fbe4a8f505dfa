package fsm

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
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

// sampleFSMFull is sampleFSM plus every kind of state issue 3 added:
// policies, roles, a rotated batch keyring and tokens with role paths.
func sampleFSMFull(tb testing.TB) *FSM {
	f := sampleFSM(tb)
	mustApply(tb, f,
		SetPolicy{Name: "default", Text: "stock default", Now: t0},
		SetPolicy{Name: "dev", Text: `path "secret/*" { capabilities = ["read"] }`, Now: t0},
		SetRole{Role: goldenRole()},
		SetRole{Role: Role{Name: "plain", Renewable: true, AllowedPolicies: []string{}}},
		rotate(1, 'a', t0), rotate(2, 'b', t0+sec),
		atPath("role-tok", "", "auth/token/create/golden-role/v1"),
		CreateToken{Token: with(tok("role-child", "role-tok"), func(t *Token) { t.Role = "golden-role" }), Now: t0},
	)
	return f
}

// TestRestoreCoreSnapshot restores a snapshot written before policies,
// roles and batch keys existed (testdata/snapshots/core_v1.snap, written by
// the issue-2 code and never regenerated): it loads with empty new state, the
// version-1 writer kept by the tests reproduces it byte for byte, and its
// version-2 snapshot restores to the same state.
func TestRestoreCoreSnapshot(t *testing.T) {
	old, err := os.ReadFile(filepath.Join("testdata", "snapshots", "core_v1.snap"))
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	if err := f.Restore(bytes.NewReader(old)); err != nil {
		t.Fatal(err)
	}
	if err := checkInvariants(f); err != nil {
		t.Fatal(err)
	}
	if f.Len() != 4 || !f.Initialized() || len(f.PolicyNames()) != 0 || len(f.RoleNames()) != 0 {
		t.Fatalf("restored len %d policies %v roles %v", f.Len(), f.PolicyNames(), f.RoleNames())
	}
	if p, keys := f.BatchKeys(); p != 0 || len(keys) != 0 {
		t.Fatalf("batch keys %d %v", p, keys)
	}
	if !bytes.Equal(snapshotBytesV1(t, f), old) {
		t.Fatal("a state without issue-3 records no longer snapshots in the old format")
	}
	if f.Hash() != sampleFSM(t).Hash() {
		t.Fatal("restored old snapshot differs from the state that wrote it")
	}
	g := New()
	if err := g.Restore(bytes.NewReader(snapshotBytes(t, f))); err != nil {
		t.Fatal(err)
	}
	if g.Hash() != f.Hash() || g.LastApplied() != 5 || !bytes.Equal(snapshotBytesV1(t, g), old) {
		t.Fatal("version-2 snapshot of the restored fixture restores to another state")
	}
}

func TestSnapshotRestoreFullRoundTrip(t *testing.T) {
	f := sampleFSMFull(t)
	v1 := snapshotBytesV1(t, f)
	for _, want := range []string{`"kind":"policy"`, `"kind":"role"`, `"kind":"batch_key"`, `"batch_primary":2`, `"policies":2,"roles":2,"batch_keys":2`} {
		if !strings.Contains(string(v1), want) {
			t.Errorf("version-1 snapshot lacks %s", want)
		}
	}
	b := snapshotBytes(t, f)
	for _, in := range [][]byte{v1, b} {
		g := New()
		if err := g.Restore(bytes.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		if g.Hash() != f.Hash() || !bytes.Equal(snapshotBytes(t, g), b) || !bytes.Equal(snapshotBytesV1(t, g), v1) {
			t.Fatal("restored state differs")
		}
	}
	g := New()
	if err := g.Restore(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if err := checkInvariants(g); err != nil {
		t.Fatal(err)
	}
	if text, _ := g.Policy("dev"); text != `path "secret/*" { capabilities = ["read"] }` {
		t.Fatalf("policy %q", text)
	}
	if r, ok := g.Role("golden-role"); !ok || !reflect.DeepEqual(r, goldenRole()) {
		t.Fatalf("role %+v", r)
	}
	if r, _ := g.Role("plain"); r.AllowedPolicies == nil {
		t.Fatal("empty list restored as nil")
	}
	if p, keys := g.BatchKeys(); p != 2 || !bytes.Equal(keys[1], keyBytes('a')) || !bytes.Equal(keys[2], keyBytes('b')) {
		t.Fatalf("keyring %d %v", p, keys)
	}
	if ring := g.BatchKeyring(); ring[0].RetiredAt != t0+sec {
		t.Fatalf("keyring metadata %+v", ring)
	}
	// The path index is rebuilt: prefix revocation works on the restored node.
	if r := applyCmd(t, g, RevokePrefix{Prefix: "auth/token/create/golden-role", Now: t0}); r.Revoked != 2 {
		t.Fatalf("Revoked = %d", r.Revoked)
	}
}

// TestRestoreRejectsBadIssue3Records edits version-1 streams (text); both
// versions share the record checks (restorer).
func TestRestoreRejectsBadIssue3Records(t *testing.T) {
	good := string(snapshotBytesV1(t, sampleFSMFull(t)))
	lines := strings.SplitAfter(good, "\n")
	find := func(kind string) string {
		for _, l := range lines {
			if strings.HasPrefix(l, `{"kind":"`+kind+`"`) {
				return l
			}
		}
		t.Fatalf("no %s record", kind)
		return ""
	}
	insertAfterMeta := func(extra string) string {
		return lines[0] + lines[1] + extra + strings.Join(lines[2:], "")
	}
	for _, tc := range []struct{ name, in string }{
		{"duplicate_policy", insertAfterMeta(find("policy"))},
		{"duplicate_role", insertAfterMeta(find("role"))},
		{"duplicate_batch_key", insertAfterMeta(find("batch_key"))},
		{"root_policy", insertAfterMeta(`{"kind":"policy","policy":{"name":"root","text":""}}` + "\n")},
		{"empty_policy", insertAfterMeta(`{"kind":"policy"}` + "\n")},
		{"empty_role_name", insertAfterMeta(`{"kind":"role","role":{"name":""}}` + "\n")},
		{"short_batch_key", insertAfterMeta(`{"kind":"batch_key","batch_key":{"id":9,"key":"AAAA"}}` + "\n")},
		{"policy_before_meta", lines[0] + find("policy") + strings.Join(lines[1:], "")},
		{"policy_count_mismatch", strings.Replace(good, `"policies":2`, `"policies":3`, 1)},
		{"role_count_missing", strings.Replace(good, `"roles":2,`, ``, 1)},
		{"batch_count_mismatch", strings.Replace(good, `"batch_keys":2`, `"batch_keys":1`, 1)},
		{"primary_not_in_keyring", strings.Replace(good, `"batch_primary":2`, `"batch_primary":5`, 1)},
		{"keys_without_primary", strings.Replace(good, `,"batch_primary":2`, ``, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.in == good {
				t.Fatal("test case did not change the snapshot")
			}
			f := sampleFSM(t)
			before := f.Hash()
			if err := f.Restore(strings.NewReader(tc.in)); !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("err = %v", err)
			} else if strings.Contains(err.Error(), "YWFh") { // base64 of key material
				t.Fatal("error leaks key material")
			}
			if f.Hash() != before {
				t.Fatal("failed restore changed the state")
			}
		})
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f := sampleFSM(t)
	b := snapshotBytes(t, f)
	if !strings.HasPrefix(string(b), `{"format":"tokend-fsm","version":2,"applied_index":5,"tokens":4}`+"\n") {
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

// TestRestoreRejects edits version-1 streams (text); TestRestoreRejectsV2
// covers the framing of version 2.
func TestRestoreRejects(t *testing.T) {
	good := string(snapshotBytesV1(t, sampleFSM(t)))
	lines := strings.SplitAfter(good, "\n")
	tokenLine := lines[2]
	for _, tc := range []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"garbage", "not json"},
		{"unknown_format", strings.Replace(good, "tokend-fsm", "other", 1)},
		{"unknown_version", strings.Replace(good, `"version":1`, `"version":3`, 1)},
		{"truncated", strings.Join(lines[:len(lines)-2], "")},
		{"missing_meta", lines[0] + strings.Join(lines[2:], "")},
		{"duplicate_token", strings.Join(lines[:3], "") + tokenLine + strings.Join(lines[3:], "")},
		{"count_mismatch", strings.Replace(good, `"count":4`, `"count":5`, 1)},
		{"trailing_data", good + "{}\n"},
		{"unknown_kind", strings.Replace(good, `{"kind":"end"`, `{"kind":"future"}`+"\n"+`{"kind":"end"`, 1)},
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

func TestClusterIdentFollowsApplyAndRestore(t *testing.T) {
	f := New()
	if id, key := f.ClusterIdent(); id != "" || key != nil {
		t.Fatalf("fresh FSM has identity %q %x", id, key)
	}
	mustApply(t, f, SetClusterIdent{ClusterID: "c1", IndexKey: []byte("0123456789abcdef0123456789abcdef")})
	mustApply(t, f, SetClusterIdent{ClusterID: "c2", IndexKey: []byte("ignored-because-first-one-wins!!")})
	id, key := f.ClusterIdent()
	if id != "c1" || string(key) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("identity = %q %q, want the first one", id, key)
	}
	key[0] = 'X' // callers get a copy
	if _, again := f.ClusterIdent(); again[0] != '0' {
		t.Fatal("ClusterIdent returned the stored key, not a copy")
	}

	restored := New()
	if err := restored.Restore(bytes.NewReader(snapshotBytes(t, f))); err != nil {
		t.Fatal(err)
	}
	if id, _ := restored.ClusterIdent(); id != "c1" {
		t.Fatalf("restored identity = %q, want c1", id)
	}
	if err := restored.Restore(bytes.NewReader(snapshotBytes(t, New()))); err != nil {
		t.Fatal(err)
	}
	if id, key := restored.ClusterIdent(); id != "" || key != nil {
		t.Fatalf("identity after restoring an empty snapshot = %q %x", id, key)
	}
}
