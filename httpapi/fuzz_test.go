package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzFieldData: decoding any body against any of the declared field sets
// never panics, and every failure is a 4xx API error.
func FuzzFieldData(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"ttl":"1h","num_uses":"3","policies":"a","meta":{"a":"b"}}`, `{"meta":["a=b","c"]}`,
		`{"increment":-1}`, `{"ttl":1e400}`, `{"renewable":"yes"}`, `null`, `[]`, `ttl=5m&policies=a&policies=b`,
		`{"period":"9223372036854775807"}`, `{"ttl":"3d"}`, `{"accessor":null}`,
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	schemas := []Fields{tokenCreateFields, renewFields, accessorFields, renewAccessorFields, tokenFields}
	f.Fuzz(func(t *testing.T, body string, form bool) {
		ct := "application/json"
		if form {
			ct = "application/x-www-form-urlencoded"
		}
		raw, err := decodeBody(ct, []byte(body))
		if err != nil {
			if ae := errorResponse(err); ae.Status != 400 {
				t.Fatalf("decode error status %d", ae.Status)
			}
			return
		}
		for _, schema := range schemas {
			d, err := newFieldData(raw, schema)
			if err != nil {
				if ae := errorResponse(err); ae.Status != 400 {
					t.Fatalf("field error status %d: %v", ae.Status, err)
				}
				continue
			}
			for name := range schema {
				_ = d.String(name)
				_ = d.Int(name)
				_ = d.Bool(name)
				_ = d.Duration(name)
				_ = d.Strings(name)
				_ = d.Map(name)
			}
		}
	})
}

// FuzzCreateRequest: any body posted to create (as root) is answered, never
// with a 500, and the server keeps working.
func FuzzCreateRequest(f *testing.F) {
	node := newFakeLeader()
	root, err := InitRoot(context.Background(), node, "")
	if err != nil {
		f.Fatal(err)
	}
	h := New(node, Options{})
	for _, seed := range []string{
		`{}`, `{"ttl":"1h"}`, `{"policies":["root"],"ttl":0}`, `{"num_uses":-1}`, `{"type":"batch"}`,
		`{"id":"x","no_parent":true,"period":"1h","explicit_max_ttl":"2h"}`, `{"lease":"bogus"}`,
		`{"display_name":"\u0000\uffff"}`, `{"ttl":"768h","explicit_max_ttl":1}`, `{"num_uses":2147483648}`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/v1/auth/token/create", "/v1/auth/token/create-orphan"} {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			req.Header.Set("X-Vault-Token", root)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("%s %q: %d %s", path, body, rec.Code, rec.Body.String())
			}
			if rec.Code != 200 && !strings.HasPrefix(rec.Body.String(), `{"errors":[`) {
				t.Fatalf("%s %q: %d without an error envelope: %s", path, body, rec.Code, rec.Body.String())
			}
		}
	})
}
