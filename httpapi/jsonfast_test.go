package httpapi

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// fastJSONCases are bodies fastJSON must agree with decodeJSONTokens on:
// the shapes clients send, every escape, number forms, and the inputs on
// which it must give up.
var fastJSONCases = []string{
	`{}`, `[]`, `{"a":1,"b":[true,null,"x"]}`, `{"a":{"a":{"a":1}}}`,
	`{"policies":["default","web"],"ttl":"1h","display_name":"bench","meta":{"k":"v"},"num_uses":0,"renewable":true}`,
	` { "a" : [ 1 , 2 ] , "b" : { } } `, "{\n\t\"a\":\r\n1}",
	`"x"`, `1`, `-0`, `0.5`, `-12.5e+3`, `1E-2`, `1e400`, `123456789012345678901234567890`,
	`01`, `1.`, `.5`, `-`, `1e`, `+1`, `0x10`, `NaN`, `Infinity`,
	`{"a":"\"\\\/\b\f\n\r\t"}`, `{"a":"\u00e9\u4e2d\u20AC"}`, `{"\u0061":1}`, `{"a":1,"\u0061":2}`,
	`"\u0000"`, `"\ud83d\ude00"`, `"\ud800"`, `"\udc00x"`, `"\u12"`, `"\uZZZZ"`, `"\x"`, `"a` + "\x01" + `"`,
	`{"a":1,"a":2}`, `[1,2`, `[1,]`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{a:1}`, `{'a':1}`, `{"a":1} x`, `{"a":1}{}`,
	`tru`, `true`, `false`, `null`, `nul`, `truex`, `[true false]`, `{"a" 1}`, "\xff", `"` + "\xff" + `"`,
	`"é"`, `{"é":"ü"}`, `{"` + strings.Repeat("k", maxJSONKeyBytes) + `":1}`, `{"` + strings.Repeat("k", maxJSONKeyBytes+1) + `":1}`,
	strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth),
	strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1),
	"[" + strings.Repeat("1,", maxJSONValues-2) + "1]", "[" + strings.Repeat("1,", maxJSONValues-1) + "1]",
}

// checkFastJSON fails when fastJSON accepts b and the reference decoder
// does not, or decodes a different value.
func checkFastJSON(t *testing.T, b []byte) {
	t.Helper()
	v, ok := fastJSON(b)
	if !ok {
		return
	}
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		t.Fatalf("fastJSON accepted %q (invalid UTF-8 or NUL)", b)
	}
	ref, err := decodeJSONTokens(b)
	if err != nil {
		t.Fatalf("fastJSON accepted %q, the reference decoder: %v", b, err)
	}
	if !reflect.DeepEqual(v, ref) {
		t.Fatalf("fastJSON %#v, reference %#v for %q", v, ref, b)
	}
}

func TestFastJSONAgrees(t *testing.T) {
	accepted := 0
	for _, s := range fastJSONCases {
		checkFastJSON(t, []byte(s))
		if _, ok := fastJSON([]byte(s)); ok {
			accepted++
		}
	}
	// The fast path must actually take the common bodies.
	for _, s := range []string{`{"policies":["default","web"],"ttl":"1h","display_name":"bench","meta":{"k":"v"},"num_uses":0,"renewable":true}`,
		`{"a":"\u00e9"}`, `-12.5e+3`, `[]`} {
		if _, ok := fastJSON([]byte(s)); !ok {
			t.Errorf("fastJSON refused %q", s)
		}
	}
	if accepted < 20 {
		t.Errorf("fastJSON accepted only %d cases", accepted)
	}
}

// TestDecodeJSONStrictErrorsUnchanged: bodies the fast path refuses get the
// reference decoder's error, word for word.
func TestDecodeJSONStrictErrorsUnchanged(t *testing.T) {
	for _, s := range fastJSONCases {
		if !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			continue
		}
		_, err := decodeJSONStrict([]byte(s))
		_, ref := decodeJSONTokens([]byte(s))
		if (err == nil) != (ref == nil) || (err != nil && err.Error() != ref.Error()) {
			t.Errorf("%q: strict %v, reference %v", s, err, ref)
		}
	}
}

func BenchmarkDecodeBody(b *testing.B) {
	body := []byte(`{"policies":["default","web"],"ttl":"1h","display_name":"bench","meta":{"team":"a"},"renewable":true}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeJSONStrict(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("tokens", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeJSONTokens(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
