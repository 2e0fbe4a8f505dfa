package fsm

import (
	"bytes"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// digestCommands builds the same final state in two different command
// orders: the replicated records (ident, policies, roles, gossip keyring)
// in opposite orders, the token tree created in a different order (parents
// still before their children), and in the second order extra tokens —
// one of them a big tree revoked in chunks — that are created and revoked
// again and so leave nothing behind.
func digestCommands(reordered bool) []Command {
	var out []Command
	records := []Command{
		SetPolicy{Name: "dev", Text: `path "secret/*" { capabilities = ["read"] }`, Now: t0},
		SetPolicy{Name: "ops", Text: `path "sys/*" { capabilities = ["sudo"] }`, Now: t0},
		SetRole{Role: goldenRole()},
		SetRole{Role: Role{Name: "plain", Renewable: true, AllowedPolicies: []string{}}},
		SetGossipKeyring{Keys: [][]byte{bytes.Repeat([]byte{7}, 32)}},
	}
	if reordered {
		slices.Reverse(records)
	}
	out = append(out,
		InitRoot{Token: with(tok("root", ""), func(t *Token) { t.Policies, t.ExpireTime = []string{"root"}, 0 }), Now: t0},
		SetClusterIdent{ClusterID: "c1", IndexKey: []byte{1, 2, 3}})
	out = append(out, records...)
	// Batch keys in the same order: which key is primary depends on it.
	out = append(out, rotate(1, 'a', t0), rotate(2, 'b', t0+sec))
	var parents, children []Command
	for i := range 12 {
		p := fmt.Sprintf("p%d", i)
		parents = append(parents, CreateToken{Token: with(tok(p, "root"), func(t *Token) {
			t.Meta = map[string]string{"i": fmt.Sprint(i), "z": "", "a": "x"}
			t.Policies = []string{"default", "dev"}
		}), Now: t0})
		for j := range 3 {
			children = append(children, create(fmt.Sprintf("%s-c%d", p, j), p))
		}
	}
	if reordered {
		slices.Reverse(parents)
		slices.Reverse(children)
		out = append(out, create("gone", "root"))
		for i := range 40 {
			out = append(out, create(fmt.Sprintf("gone-%d", i), "gone"))
		}
	}
	out = append(out, parents...)
	out = append(out, children...)
	if reordered {
		out = append(out, RevokeTree{Hash: h("gone"), Now: t0})
	}
	// A renewal changes records in place: the same in both orders.
	out = append(out, RenewToken{Hash: h("p3"), Increment: 7200, Now: t0 + sec})
	return out
}

func TestDigestIndependentOfOrderAndRestore(t *testing.T) {
	a := New()
	mustApply(t, a, digestCommands(false)...)
	b := New()
	b.chunk = 4 // the revoke of "gone" runs as a large command in chunks
	mustApply(t, b, digestCommands(true)...)
	da, db := a.Digest(), b.Digest()
	if !strings.HasPrefix(da.Hash, DigestPrefix) || len(da.Hash) != len(DigestPrefix)+64 {
		t.Fatalf("hash %q", da.Hash)
	}
	if da.Hash != db.Hash {
		t.Fatalf("same state, different order: %s vs %s", da.Hash, db.Hash)
	}
	if da.Tokens != a.Len() || db.Tokens != b.Len() || da.Tokens != 1+12*4 {
		t.Fatalf("tokens %d %d", da.Tokens, db.Tokens)
	}
	if da.AppliedIndex != a.LastApplied() || db.AppliedIndex != b.LastApplied() || da.AppliedIndex == db.AppliedIndex {
		t.Fatalf("applied %d %d (fsm %d %d)", da.AppliedIndex, db.AppliedIndex, a.LastApplied(), b.LastApplied())
	}
	// Map iteration order differs between calls; the digest does not.
	for range 20 {
		if a.Digest() != da {
			t.Fatal("digest not stable")
		}
	}
	// A restored state has other interning and other map layouts.
	c := New()
	if err := c.Restore(bytes.NewReader(snapshotBytes(t, a))); err != nil {
		t.Fatal(err)
	}
	if dc := c.Digest(); dc != da {
		t.Fatalf("restored digest %+v, want %+v", dc, da)
	}
}

// mutate changes v (a settable field) to a different value of its type and
// reports whether it knew how.
func mutate(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Slice:
		switch v.Type().Elem().Kind() {
		case reflect.String:
			v.Set(reflect.Append(v, reflect.ValueOf("x")))
		case reflect.Uint8:
			v.Set(reflect.Append(v, reflect.ValueOf(byte(1))))
		default:
			return false
		}
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for _, k := range v.MapKeys() {
			m.SetMapIndex(k, v.MapIndex(k))
		}
		var elem reflect.Value
		switch v.Type().Elem().Kind() {
		case reflect.String:
			elem = reflect.ValueOf("v")
		case reflect.Slice:
			elem = reflect.ValueOf([]byte{1})
		default:
			return false
		}
		m.SetMapIndex(reflect.ValueOf("new-key"), elem)
		v.Set(m)
	default:
		return false
	}
	return true
}

// digestBase is a state built directly (not through Apply), with one
// record of every kind; edit changes it before it is indexed.
type digestBase struct {
	token  Token
	policy policyRecord
	role   Role
	key    BatchKey
	edit   func(s *state)
}

func (d digestBase) build() *FSM {
	f := New()
	s := f.st
	s.initialized, s.clusterID, s.indexKey = true, "c1", []byte{1, 2, 3}
	s.batchPrimary = 1
	s.gossipKeys = gossipKeyring{Keys: [][]byte{bytes.Repeat([]byte{7}, 32)}, Version: 1}
	p := d.policy
	s.policies[p.Name] = &p
	r := d.role
	s.roles[r.Name] = &r
	k := d.key
	s.batchKeys[k.ID] = &k
	parent := tok("p", "")
	s.insert(&parent)
	t := d.token
	s.insert(&t)
	if d.edit != nil {
		d.edit(s)
	}
	f.applied = 9
	return f
}

func newDigestBase() digestBase {
	return digestBase{
		token:  fullToken(),
		policy: policyRecord{Name: "dev", Text: "path \"a\" {}", UpdatedAt: t0},
		role:   goldenRole(),
		key:    BatchKey{ID: 1, Key: keyBytes('a'), CreatedAt: t0},
	}
}

// TestDigestSeesEveryField changes one field of one record at a time —
// every field of Token, Role, BatchKey and the policy record, found by
// reflection, so a field added later is covered or fails here — and every
// meta value and the accessor index alone: each change gives another hash.
func TestDigestSeesEveryField(t *testing.T) {
	base := newDigestBase()
	want := base.build().Digest()
	if base.build().Digest() != want {
		t.Fatal("digest of the same direct build differs")
	}
	seen := map[string]bool{want.Hash: true}
	check := func(name string, d digestBase) {
		t.Helper()
		got := d.build().Digest()
		if got.Hash == want.Hash {
			t.Errorf("%s: changing it left the digest unchanged", name)
		}
		if seen[got.Hash] {
			t.Errorf("%s: digest collides with another change", name)
		}
		seen[got.Hash] = true
	}
	records := []struct {
		name string
		ptr  func(d *digestBase) any
	}{
		{"Token", func(d *digestBase) any { return &d.token }},
		{"Role", func(d *digestBase) any { return &d.role }},
		{"BatchKey", func(d *digestBase) any { return &d.key }},
		{"policy", func(d *digestBase) any { return &d.policy }},
	}
	for _, rec := range records {
		typ := reflect.TypeOf(rec.ptr(&base)).Elem()
		for i := range typ.NumField() {
			d := newDigestBase()
			d.token.Policies = slices.Clone(d.token.Policies)
			field := reflect.ValueOf(rec.ptr(&d)).Elem().Field(i)
			if !mutate(field) {
				t.Fatalf("%s.%s: no mutation for kind %s; extend mutate", rec.name, typ.Field(i).Name, field.Kind())
			}
			if rec.name == "Token" && (typ.Field(i).Name == "Hash" || typ.Field(i).Name == "Parent") {
				// The store holds token hashes only: another valid one.
				field.SetString(h(field.String()))
			}
			check(rec.name+"."+typ.Field(i).Name, d)
		}
	}
	for name, edit := range map[string]func(s *state){
		"initialized":    func(s *state) { s.initialized = false },
		"clusterID":      func(s *state) { s.clusterID = "c2" },
		"indexKey":       func(s *state) { s.indexKey = []byte{1, 2, 4} },
		"batchPrimary":   func(s *state) { s.batchPrimary = 2 },
		"gossip version": func(s *state) { s.gossipKeys.Version = 2 },
		"gossip keys":    func(s *state) { s.gossipKeys.Keys = [][]byte{bytes.Repeat([]byte{8}, 32)} },
		"one more token": func(s *state) { extra := tok("extra", ""); s.insert(&extra) },
		"no policy":      func(s *state) { clear(s.policies) },
	} {
		d := newDigestBase()
		d.edit = edit
		check(name, d)
	}
	// The accessor index alone: the records (and Hash) stay the same.
	for _, kind := range []string{CorruptAccessorMissing, CorruptAccessorDangling, CorruptAccessorMismatched} {
		f := base.build()
		before := f.Hash()
		if err := CorruptIndexForTest(f, kind, fullToken().Hash); err != nil {
			t.Fatal(err)
		}
		if f.Hash() != before {
			t.Fatalf("%s changed the records", kind)
		}
		if got := f.Digest(); got.Hash == want.Hash {
			t.Errorf("%s: the digest misses the accessor index", kind)
		}
	}
	// The applied index is reported, not hashed.
	f := base.build()
	f.applied = 10
	if got := f.Digest(); got.Hash != want.Hash || got.AppliedIndex != 10 || want.AppliedIndex != 9 {
		t.Fatalf("applied index: %+v vs %+v", got, want)
	}
}
