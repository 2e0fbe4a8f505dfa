package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// FuzzLookupRequest: any body to lookup and lookup-accessor, any path
// value to lookup/{token}, as root: never a 5xx, always an envelope.
func FuzzLookupRequest(f *testing.F) {
	node := newFakeLeader()
	root, err := InitRoot(context.Background(), node, "")
	if err != nil {
		f.Fatal(err)
	}
	h := New(node, Options{})
	for _, seed := range []string{
		`{}`, `{"token":"` + root + `"}`, `{"token":""}`, `{"token":null}`, `{"token":123}`, `{"token":["a","b"]}`,
		`{"accessor":"x"}`, `{"token":"hvb.AAAA"}`, `{"token":"hvs.` + strings.Repeat("A", 24) + `"}`, `token=abc`,
	} {
		f.Add(seed, "hvs.x")
	}
	f.Add(`{"token":"a\u0000"}`, "%00")
	f.Add(`{"token":{"a":{}}}`, "..%2f..%2fsys")
	f.Fuzz(func(t *testing.T, body, pathTok string) {
		for _, rq := range []struct{ method, path, body string }{
			{"POST", "/v1/auth/token/lookup", body},
			{"POST", "/v1/auth/token/lookup-accessor", body},
			{"GET", "/v1/auth/token/lookup?token=" + strings.ReplaceAll(pathTok, "&", ""), ""},
			{"GET", "/v1/auth/token/lookup/" + pathTok, ""},
		} {
			req, err := http.NewRequest(rq.method, "http://x"+rq.path, strings.NewReader(rq.body))
			if err != nil {
				continue // not a URL any client can send
			}
			req.Header.Set("X-Vault-Token", root)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code >= 500 {
				t.Fatalf("%s %s %q: %d %s", rq.method, rq.path, rq.body, w.Code, w.Body.String())
			}
			if w.Code != 200 && w.Code != 204 && !strings.HasPrefix(w.Body.String(), `{"errors":[`) {
				t.Fatalf("%s %s: %d without an error envelope: %s", rq.method, rq.path, w.Code, w.Body.String())
			}
		}
	})
}

// FuzzTokenParse: whatever is presented as a token (X-Vault-Token or
// Authorization: Bearer, service or batch shaped) is a 200 only for a
// real token and otherwise a 403, never a 5xx.
func FuzzTokenParse(f *testing.F) {
	node := newFakeLeader()
	root, err := InitRoot(context.Background(), node, "")
	if err != nil {
		f.Fatal(err)
	}
	h := New(node, Options{})
	w := record(h, "POST", "/v1/auth/token/create", root, `{"type":"batch","ttl":"1h","policies":["default"]}`)
	var out struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil || out.Auth.ClientToken == "" {
		f.Fatalf("batch create: %d %s", w.Code, w.Body.String())
	}
	batchTok := out.Auth.ClientToken
	valid := map[string]bool{root: true, batchTok: true}
	for _, s := range []string{root, batchTok, batchTok[:len(batchTok)-1], "hvb.", "hvs.", "", "Bearer", strings.ToUpper(root), "hvb." + strings.Repeat("A", 300)} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, tok string, bearer bool) {
		req := httptest.NewRequest("GET", "/v1/auth/token/lookup-self", nil)
		if bearer {
			req.Header["Authorization"] = []string{"Bearer " + tok}
		} else {
			req.Header["X-Vault-Token"] = []string{tok}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		want := http.StatusForbidden
		if valid[strings.TrimSpace(tok)] && (bearer || tok == strings.TrimSpace(tok)) {
			want = http.StatusOK
		}
		if w.Code != want {
			t.Fatalf("token %q (bearer %v): %d %s, want %d", tok, bearer, w.Code, w.Body.String(), want)
		}
	})
}

// FuzzRequiredIndex: X-Vault-Index parsing never panics; what it accepts
// for this cluster carries a valid HMAC, and encode → parse round-trips.
func FuzzRequiredIndex(f *testing.F) {
	key := []byte("0123456789abcdef0123456789abcdef")
	const id = "c1d2e3f4-0000-4000-8000-000000000001"
	f.Add(encodeIndexState(id, key, 42), uint64(42))
	f.Add(encodeIndexState("other", key, 7)+","+encodeIndexState(id, key, 3), uint64(3))
	f.Add("!!!not base64", uint64(0))
	f.Add("djE6OjE6MDphYg==", uint64(1))
	f.Add("", uint64(0))
	f.Fuzz(func(t *testing.T, header string, idx uint64) {
		need, err := requiredIndex([]string{header}, id, key)
		if err == nil && need > 0 && !strings.Contains(header, ",") {
			// A single accepted state for this cluster must re-encode
			// to an equal requirement.
			if again, err := requiredIndex([]string{encodeIndexState(id, key, need)}, id, key); err != nil || again != need {
				t.Fatalf("re-encoded %d: %d %v", need, again, err)
			}
		}
		enc := encodeIndexState(id, key, idx)
		got, err := requiredIndex([]string{enc}, id, key)
		if err != nil || got != idx {
			t.Fatalf("round trip %d: %d %v", idx, got, err)
		}
		if _, err := requiredIndex([]string{enc}, id, []byte("another key, another cluster..!")); err == nil {
			t.Fatal("a state under another key verified")
		}
	})
}

// FuzzDecodeJSONStrict: the strict decoder never panics, and whatever it
// accepts encoding/json accepts too, with the same value.
func FuzzDecodeJSONStrict(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"b":[true,null,"x"]}`, `{"a":{"a":{"a":1}}}`, `[1,2`, `{"a":1,"a":2}`, `"\u0000"`, `1e400`, `{"a":1} x`, "\xff"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeJSONStrict(b)
		if err != nil {
			return
		}
		var ref any
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.UseNumber()
		if err := dec.Decode(&ref); err != nil {
			t.Fatalf("strict accepted %q, encoding/json: %v", b, err)
		}
		if !reflect.DeepEqual(v, ref) {
			t.Fatalf("strict %#v, encoding/json %#v", v, ref)
		}
	})
}

// FuzzFastJSON: whatever fastJSON accepts, the token-API decoder accepts
// too with the same value, so the fast path never changes an answer (its
// refusals fall back to that decoder).
func FuzzFastJSON(f *testing.F) {
	for _, s := range fastJSONCases {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkFastJSON(t, b)
	})
}
