package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update-golden", false, "write missing golden files under testdata/commands (never overwrites)")

// goldenSamples holds one representative command per type, written once to
// testdata/commands/<name>_v1.bin. Editing a sample does not change an
// existing golden file; a new version gets a new file.
func goldenSamples() map[Type]Command {
	full := with(tok("golden", "golden-parent"), func(t *Token) {
		t.Meta = map[string]string{"app": "golden"}
		t.DisplayName = "token-golden"
		t.NumUses = 5
		t.ExplicitMaxTTL = 7200
		t.Period = 0
		t.EntityID = "entity-1"
		t.BoundCIDRs = []string{"127.0.0.1/32"}
		t.Ext = map[string][]byte{"keystone": []byte(`{"tenant":"t1"}`)}
	})
	root := with(tok("golden-root", ""), func(t *Token) {
		t.Policies, t.ExpireTime, t.TTL, t.CreationTTL, t.Renewable, t.DisplayName = []string{"root"}, 0, 0, 0, false, "root"
	})
	return map[Type]Command{
		TypeCreateToken:      CreateToken{Token: full, Now: t0},
		TypeRenewToken:       RenewToken{Hash: h("golden"), Increment: 3600, MaxTTL: DefaultMaxTTL, Now: t0 + sec},
		TypeRevokeTree:       RevokeTree{Hash: h("golden"), Now: t0 + 2*sec},
		TypeRevokeOrphan:     RevokeOrphan{Hash: h("golden"), Now: t0 + 3*sec},
		TypeRevokeAccessor:   RevokeAccessor{Accessor: acc("golden"), Now: t0 + 4*sec},
		TypeUseToken:         UseToken{Hash: h("golden"), Now: t0 + 5*sec},
		TypeReapExpired:      ReapExpired{Now: t0 + 6*sec, Limit: 256},
		TypeInitRoot:         InitRoot{Token: root, Now: t0},
		TypeSetClusterIdent:  SetClusterIdent{ClusterID: "cluster-golden", IndexKey: []byte("0123456789abcdef0123456789abcdef")},
		TypeSetPolicy:        SetPolicy{Name: "golden", Text: `path "secret/*" { capabilities = ["read", "list"] }`, Now: t0 + 7*sec},
		TypeDeletePolicy:     DeletePolicy{Name: "golden"},
		TypeSetRole:          SetRole{Role: goldenRole()},
		TypeDeleteRole:       DeleteRole{Name: "golden-role"},
		TypeRevokePrefix:     RevokePrefix{Prefix: "auth/token/create/golden-role", Now: t0 + 8*sec},
		TypeRotateBatchKey:   RotateBatchKey{KeyID: 7, Key: []byte("0123456789abcdef0123456789abcdef"), Now: t0 + 9*sec},
		TypePruneBatchKeys:   PruneBatchKeys{Before: t0 + 10*sec},
		TypeTidy:             Tidy{Now: t0 + 11*sec},
		TypeSetGossipKeyring: SetGossipKeyring{Keys: [][]byte{[]byte("0123456789abcdef0123456789abcdef"), []byte("fedcba9876543210")}, Prev: 2},
		TypeRemovePeer:       RemovePeer{ServerID: "n4", InstanceID: "0123456789abcdef", Time: t0 + 12*sec},
		TypeBatch: Batch{Commands: []Command{
			CreateToken{Token: tok("golden-batched", "golden"), Now: t0 + 13*sec},
			RenewToken{Hash: h("golden"), Increment: 600, MaxTTL: DefaultMaxTTL, Now: t0 + 14*sec},
		}},
	}
}

// goldenRole sets every role field, so the golden file pins their names.
func goldenRole() Role {
	return Role{
		Name:                   "golden-role",
		AllowedPolicies:        []string{"dev", "ops"},
		DisallowedPolicies:     []string{"admin"},
		AllowedPoliciesGlob:    []string{"team-*"},
		DisallowedPoliciesGlob: []string{"*-root"},
		AllowedEntityAliases:   []string{"alias-*"},
		Orphan:                 true,
		Renewable:              true,
		PathSuffix:             "v1",
		TokenPeriod:            3600,
		TokenExplicitMaxTTL:    7200,
		TokenType:              "default-service",
		TokenBoundCIDRs:        []string{"10.0.0.0/8"},
		TokenNoDefaultPolicy:   true,
		TokenNumUses:           3,
		Period:                 60,
		ExplicitMaxTTL:         120,
		BoundCIDRs:             []string{"192.168.0.0/16"},
	}
}

func goldenPath(t Type, version uint8) string {
	return filepath.Join("testdata", "commands", fmt.Sprintf("%s_v%d.bin", TypeName(t), version))
}

// declaredTypes parses api.go and returns every constant of type Type named
// Type*, so a new command type cannot be declared without being registered.
func declaredTypes(t *testing.T) map[string]Type {
	t.Helper()
	file, err := parser.ParseFile(token.NewFileSet(), "api.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Type{}
	for _, d := range file.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, name := range vs.Names {
				if !strings.HasPrefix(name.Name, "Type") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s: not a literal", name.Name)
				}
				var v uint8
				fmt.Sscan(lit.Value, &v)
				out[name.Name] = Type(v)
			}
		}
	}
	return out
}

func TestEveryDeclaredTypeIsRegistered(t *testing.T) {
	declared := declaredTypes(t)
	if len(declared) == 0 {
		t.Fatal("no Type constants found in api.go")
	}
	samples := goldenSamples()
	for name, typ := range declared {
		if _, ok := registry[typ]; !ok {
			t.Errorf("%s (%d) is declared but not registered", name, typ)
		}
		if _, ok := samples[typ]; !ok {
			t.Errorf("%s has no golden sample", name)
		}
		if typ&Skippable != 0 {
			t.Errorf("%s has the Skippable bit but is registered as a normal command", name)
		}
	}
	if len(registry) != len(declared) {
		t.Errorf("%d registered types, %d declared", len(registry), len(declared))
	}
	for typ, c := range samples {
		if c.CommandType() != typ {
			t.Errorf("sample for %s has type %s", typ, c.CommandType())
		}
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("second registration did not panic")
		}
	}()
	register(TypeCreateToken, "again", applyCreateToken)
}

func TestGoldenFiles(t *testing.T) {
	if *updateGolden {
		for typ, c := range goldenSamples() {
			path := goldenPath(typ, registry[typ].version)
			if _, err := os.Stat(path); err == nil {
				t.Logf("%s exists, not overwriting", path)
				continue
			}
			b, err := Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", path)
		}
	}
	for _, typ := range RegisteredTypes() {
		for v := range registry[typ].decoders {
			path := goldenPath(typ, v)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("%s: %v (run go test ./fsm -run TestGoldenFiles -update-golden)", path, err)
				continue
			}
			c, err := Decode(b)
			if err != nil {
				t.Errorf("%s: %v", path, err)
				continue
			}
			if c.CommandType() != typ || b[1] != v {
				t.Errorf("%s decodes as %s version %d", path, c.CommandType(), b[1])
			}
			// Applying a decoded golden entry never panics.
			New().Apply(1, b)
		}
	}
	// The current encoder still produces what the golden file of its
	// version holds, so an accidental change of the encoding is caught here.
	for typ, c := range goldenSamples() {
		want, err := os.ReadFile(goldenPath(typ, registry[typ].version))
		if err != nil {
			continue
		}
		got, _ := Encode(c)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: encoding changed:\n got %s\nwant %s", typ, got[2:], want[2:])
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for typ, c := range goldenSamples() {
		b, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if Type(b[0]) != typ || b[1] != registry[typ].version {
			t.Fatalf("%s: header %x", typ, b[:2])
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", typ, got, c)
		}
	}
	// A pointer command encodes like its value.
	b1, _ := Encode(RevokeTree{Hash: h("a")})
	b2, _ := Encode(&RevokeTree{Hash: h("a")})
	if !bytes.Equal(b1, b2) {
		t.Error("pointer and value encode differently")
	}
	if _, err := Encode((*RevokeTree)(nil)); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("nil pointer: %v", err)
	}
	if _, err := Encode(nil); !errors.Is(err, ErrInvalidCommand) {
		t.Errorf("nil: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry []byte
		want  error
	}{
		{"empty", nil, ErrMalformedEntry},
		{"type_only", []byte{byte(TypeRevokeTree)}, ErrMalformedEntry},
		{"bad_json", append([]byte{byte(TypeRevokeTree), 1}, `{"hash":`...), ErrMalformedEntry},
		{"wrong_field_type", append([]byte{byte(TypeRevokeTree), 1}, `{"hash":5}`...), ErrMalformedEntry},
		{"unknown_type", []byte{0x7f, 1, '{', '}'}, ErrUnknownType},
		{"unknown_skippable_type", []byte{0xff, 1, '{', '}'}, ErrUnknownType},
		{"unknown_version", []byte{byte(TypeRevokeTree), 9, '{', '}'}, ErrUnknownType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.entry); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("unknown_fields_are_ignored", func(t *testing.T) {
		c, err := Decode(append([]byte{byte(TypeRevokeTree), 1}, `{"hash":"x","future":true}`...))
		if err != nil || c.(RevokeTree).Hash != "x" {
			t.Fatalf("%v %v", c, err)
		}
	})
}

func TestApplySkipsUnknownSkippable(t *testing.T) {
	f := New()
	before := f.Hash()
	r := f.Apply(7, []byte{byte(Skippable | 0x11), 1, 'x'})
	if r.Err != nil || f.Hash() != before || f.LastApplied() != 7 {
		t.Fatalf("result %+v, applied %d", r, f.LastApplied())
	}
}

func TestApplyPanicsOnUndecodable(t *testing.T) {
	secret := "hvs.SECRETSECRETSECRET"
	for _, tc := range []struct {
		name  string
		entry []byte
	}{
		{"unknown_type", append([]byte{0x42, 1}, secret...)},
		{"bad_body", append([]byte{byte(TypeCreateToken), 1}, `{"token":{"hash":"`+secret+`",`...)},
		{"bad_version", append([]byte{byte(TypeCreateToken), 99}, secret...)},
		{"short", []byte{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				p := recover()
				if p == nil {
					t.Fatal("no panic")
				}
				msg := fmt.Sprint(p)
				if strings.Contains(msg, "SECRET") {
					t.Fatalf("panic message leaks the body: %s", msg)
				}
				want := fmt.Sprintf("index=42 len=%d", len(tc.entry))
				if !strings.Contains(msg, want) || !strings.Contains(msg, "type=") {
					t.Fatalf("panic message %q lacks %q", msg, want)
				}
			}()
			New().Apply(42, tc.entry)
		})
	}
}

// TestCreateTokenV2MatchesV1: a create decodes to the same command from its
// binary (version 2) and its JSON (version 1) entry, so a log holding both
// applies the same either way.
func TestCreateTokenV2MatchesV1(t *testing.T) {
	full := goldenSamples()[TypeCreateToken].(CreateToken)
	cases := []CreateToken{
		full,
		{Token: tok("plain", ""), Now: t0},
		{Token: with(tok("child", "plain"), func(tk *Token) {
			tk.Policies = []string{"", "default"}
			tk.NumUses = -1
			tk.Meta = map[string]string{"a": "", "é": "ü"}
			tk.BoundCIDRs = []string{"10.0.0.0/8", "::1/128"}
			tk.Renewable, tk.Period, tk.ExplicitMaxTTL = true, 60, 120
			tk.Ext = map[string][]byte{"x": {0, 1, 2}}
			tk.Dialect, tk.Role, tk.EntityID, tk.Type = "vault", "r", "e", "service"
		}), Now: -5},
	}
	for i, c := range cases {
		v2, err := Encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if v2[1] != 2 {
			t.Fatalf("case %d: Encode wrote version %d", i, v2[1])
		}
		body, _ := json.Marshal(c)
		v1 := append([]byte{byte(TypeCreateToken), 1}, body...)
		a, err1 := Decode(v1)
		b, err2 := Decode(v2)
		if err1 != nil || err2 != nil {
			t.Fatalf("case %d: %v %v", i, err1, err2)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("case %d:\nv1 %+v\nv2 %+v", i, a, b)
		}
		if len(v2) >= len(v1) {
			t.Errorf("case %d: binary entry %d bytes, JSON %d", i, len(v2), len(v1))
		}
		// Truncated entries are malformed, never a panic or a partial token.
		for n := 2; n < len(v2); n++ {
			if _, err := Decode(v2[:n]); !errors.Is(err, ErrMalformedEntry) {
				t.Errorf("case %d: truncated to %d bytes: %v", i, n, err)
			}
		}
	}
}

func BenchmarkDecodeCreateToken(b *testing.B) {
	c := goldenSamples()[TypeCreateToken].(CreateToken)
	body, _ := json.Marshal(c)
	v1 := append([]byte{byte(TypeCreateToken), 1}, body...)
	v2, _ := Encode(c)
	for _, bc := range []struct {
		name  string
		entry []byte
	}{{"v1-json", v1}, {"v2-binary", v2}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.entry)))
			for b.Loop() {
				if _, err := Decode(bc.entry); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
