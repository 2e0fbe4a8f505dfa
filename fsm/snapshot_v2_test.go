package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

// fullToken sets every Token field, so the binary codec is checked for each.
func fullToken() Token {
	return Token{
		Hash: h("full"), Accessor: acc("full"), Parent: h("p"),
		Policies: []string{"default", "", "dev"}, Meta: map[string]string{"z": "1", "a": "", "é": "ü"},
		DisplayName: "token-x", Path: "auth/token/create/r", NumUses: -1,
		CreationTime: -5, CreationTTL: 1, TTL: 1 << 40, ExplicitMaxTTL: 7, Period: 9, ExpireTime: t0,
		IssueTime: t0 - 1, LastRenewalTime: t0 + 1, Renewable: true, Type: TokenTypeService, Role: "r",
		EntityID: "ent", BoundCIDRs: []string{"10.0.0.0/8", "::1/128"}, Dialect: "vault",
		Ext: map[string][]byte{"k": []byte(`{"a":1}`), "empty": {}},
	}
}

func TestTokenCodecRoundTrip(t *testing.T) {
	for _, tk := range []Token{fullToken(), {Hash: h("min"), Accessor: "a"}} {
		b := appendToken(nil, &tk)
		got, err := decodeToken(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(*got, tk) {
			t.Fatalf("round trip:\n%+v\n%+v", *got, tk)
		}
		if !bytes.Equal(appendToken(nil, got), b) {
			t.Fatal("encoding not stable")
		}
	}
}

// TestTokenCodecSkipsUnknownFields: a field added later (any number, either
// wire type) is skipped by this reader, as JSON ignores unknown keys.
func TestTokenCodecSkipsUnknownFields(t *testing.T) {
	tk := fullToken()
	b := appendToken(nil, &tk)
	b = appendInt(b, 99, 12345)
	b = appendStr(b, 100, "future")
	got, err := decodeToken(b)
	if err != nil || !reflect.DeepEqual(*got, tk) {
		t.Fatalf("err %v, %+v", err, got)
	}
}

// frames splits a version-2 snapshot into its header line and records.
func frames(t *testing.T, b []byte) (header []byte, recs [][]byte) {
	t.Helper()
	i := bytes.IndexByte(b, '\n')
	header, b = b[:i+1], b[i+1:]
	for len(b) > 0 {
		size, n := binary.Uvarint(b[1:])
		end := 1 + n + int(size)
		recs = append(recs, b[:end])
		b = b[end:]
	}
	return header, recs
}

func frame(kind byte, body []byte) []byte {
	return append(binary.AppendUvarint([]byte{kind}, uint64(len(body))), body...)
}

func TestRestoreRejectsV2(t *testing.T) {
	good := snapshotBytes(t, sampleFSMFull(t))
	hdr, recs := frames(t, good)
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	all := func(rs [][]byte) []byte { return bytes.Join(rs, nil) }
	last := len(recs) - 1
	tokenRec := recs[last-1]
	cases := map[string][]byte{
		"no_records":       hdr,
		"missing_end":      join(hdr, all(recs[:last])),
		"trailing_data":    join(good, []byte{0}),
		"duplicate_token":  join(hdr, all(recs[:last]), tokenRec, recs[last]),
		"unknown_kind":     join(hdr, all(recs[:last]), frame('X', []byte("{}")), recs[last]),
		"kind_mismatch":    join(hdr, frame(framePolicy, recs[0][2:]), all(recs[1:])),
		"huge_length":      join(hdr, []byte{frameToken, 0xff, 0xff, 0xff, 0xff, 0x7f}),
		"garbage_token":    join(hdr, all(recs[:last]), frame(frameToken, []byte{0x03, 0xff}), recs[last]),
		"token_bad_hash":   join(hdr, all(recs[:last]), frame(frameToken, appendToken(nil, &Token{Hash: "hvs.abc", Accessor: "x"})), recs[last]),
		"token_no_meta":    join(hdr, tokenRec, all(recs)),
		"count_mismatch":   join(hdr, all(recs[:last]), frame(frameEnd, []byte(`{"kind":"end","count":99,"policies":2,"roles":2,"batch_keys":2}`))),
		"end_not_json":     join(hdr, all(recs[:last]), frame(frameEnd, []byte("nope"))),
		"bad_header":       join([]byte("{\n"), all(recs)),
		"header_no_line":   []byte(`{"format":"tokend-fsm","version":2}`),
		"dangling_parent":  join(hdr, all(recs[:last]), frame(frameToken, appendToken(nil, &Token{Hash: h("orphaned"), Accessor: "o", Parent: h("gone")})), recs[last]),
		"plaintext_parent": join(hdr, all(recs[:last-1]), frame(frameToken, appendToken(nil, &Token{Hash: h("zz"), Accessor: "zz", Parent: "hvs.abc"})), recs[last]),
	}
	// A stream cut anywhere is truncated: inside the header, and at the
	// start, after the kind byte, and in the middle of every record.
	cuts := []int{0, len(hdr) / 2, len(hdr)}
	pos := len(hdr)
	for _, r := range recs {
		cuts = append(cuts, pos+1, pos+len(r)/2, pos+len(r)-1)
		pos += len(r)
	}
	for _, cut := range cuts {
		cases[fmt.Sprintf("truncated_at_%d", cut)] = good[:cut]
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			f := sampleFSM(t)
			before, applied := f.Hash(), f.LastApplied()
			err := f.Restore(bytes.NewReader(in))
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("err = %v", err)
			}
			if f.Hash() != before || f.LastApplied() != applied {
				t.Fatal("failed restore changed the state")
			}
			if bytes.Contains([]byte(err.Error()), []byte("hvs.abc")) {
				t.Fatal("error leaks token material")
			}
		})
	}
}

// TestRestoreV1AndV2Agree: the same state written in both versions restores
// to identical states (and so to identical version-2 snapshots).
func TestRestoreV1AndV2Agree(t *testing.T) {
	f := sampleFSMFull(t)
	mustApply(t, f, CreateToken{Token: with(fullToken(), func(t *Token) { t.Parent, t.NumUses, t.Role = h("a"), 2, "golden-role" }), Now: t0})
	a, b := New(), New()
	if err := a.Restore(bytes.NewReader(snapshotBytesV1(t, f))); err != nil {
		t.Fatal(err)
	}
	if err := b.Restore(bytes.NewReader(snapshotBytes(t, f))); err != nil {
		t.Fatal(err)
	}
	if a.Hash() != f.Hash() || b.Hash() != f.Hash() || !bytes.Equal(snapshotBytes(t, a), snapshotBytes(t, b)) {
		t.Fatal("versions restore to different states")
	}
	for _, g := range []*FSM{a, b} {
		want, _ := f.Token(h("full"))
		got, _ := g.Token(h("full"))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("token differs:\n%+v\n%+v", got, want)
		}
		if err := checkInvariants(g); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSnapshotSortsByHash: a snapshot lists its tokens in hash order,
// including hashes that tie on the 8-byte prefix the sort keys on.
func TestSnapshotSortsByHash(t *testing.T) {
	var hashes []string
	for i := 0; i < 300; i++ {
		hashes = append(hashes, h(fmt.Sprint(i)))
	}
	for _, tail := range []string{"0", "1", "f", "e", "7"} {
		hashes = append(hashes, h("x")[:16]+strings.Repeat(tail, 48))
	}
	f := New()
	for i := len(hashes) - 1; i >= 0; i-- {
		tk := tok(fmt.Sprint("s", i), "")
		tk.Hash = hashes[i]
		f.st.insert(&tk)
	}
	s, _ := f.Snapshot()
	s.sortRecords()
	want := slices.Clone(hashes)
	slices.Sort(want)
	if len(s.tokens) != len(want) {
		t.Fatalf("%d tokens in the snapshot, want %d", len(s.tokens), len(want))
	}
	for i, r := range s.tokens {
		if got := r.hash.String(); got != want[i] {
			t.Fatalf("position %d: %s, want %s", i, got, want[i])
		}
	}
}

// TestRestoreResumesGC: a version-2 restore pauses the collector and puts
// the setting back, whether it succeeds or fails (not parallel: the GC
// percent is process-wide).
func TestRestoreResumesGC(t *testing.T) {
	old := debug.SetGCPercent(137)
	defer debug.SetGCPercent(old)
	good := snapshotBytes(t, sampleFSMFull(t))
	for _, in := range [][]byte{good, good[:len(good)/2]} {
		err := New().Restore(bytes.NewReader(in))
		if got := debug.SetGCPercent(137); got != 137 {
			t.Fatalf("GC percent after restore (err %v) = %d, want 137", err, got)
		}
	}
}
