package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/tokend/tokend/fsm"
)

// drawJSONString draws strings that exercise every escaping rule of
// encoding/json: quotes, backslashes, control bytes, HTML characters,
// U+2028/U+2029, multi-byte runes and invalid UTF-8.
func drawJSONString(t *rapid.T, label string) string {
	pieces := rapid.SliceOfN(rapid.SampledFrom([]string{
		"a", "Z", "0", " ", "-", "_", ".", "/", ":", "~", "\"", "\\", "\n", "\t", "\r", "\b", "\f", "\x00", "\x1f", "\x7f",
		"<", ">", "&", "\u2028", "\u2029", "é", "日本", "\xff", "\xc3", "\xed\xa0\x80", "hvs.x", "auth/token/create",
	}), 0, 8).Draw(t, label)
	var b bytes.Buffer
	for _, p := range pieces {
		b.WriteString(p)
	}
	return b.String()
}

func drawToken(t *rapid.T) *fsm.Token {
	tok := &fsm.Token{
		Hash:            "h",
		Accessor:        drawJSONString(t, "accessor"),
		DisplayName:     drawJSONString(t, "display_name"),
		Path:            drawJSONString(t, "path"),
		NumUses:         rapid.IntRange(-1, 1000).Draw(t, "num_uses"),
		CreationTime:    rapid.Int64Range(0, 4e18).Draw(t, "creation_time"),
		CreationTTL:     rapid.Int64Range(0, 1e9).Draw(t, "creation_ttl"),
		TTL:             rapid.Int64Range(0, 1e9).Draw(t, "ttl"),
		ExplicitMaxTTL:  rapid.Int64Range(0, 1e9).Draw(t, "explicit_max_ttl"),
		Period:          rapid.Int64Range(-1, 1e9).Draw(t, "period"),
		IssueTime:       rapid.SampledFrom([]int64{0, 1, 1_700_000_000_123_456_789}).Draw(t, "issue_time"),
		LastRenewalTime: rapid.SampledFrom([]int64{0, 1_700_000_000_000_000_000, 1_700_000_000_000_000_001}).Draw(t, "last_renewal_time"),
		ExpireTime:      rapid.SampledFrom([]int64{0, 1, 1_700_000_000_500_000_000, 4e18}).Draw(t, "expire_time"),
		Renewable:       rapid.Bool().Draw(t, "renewable"),
		Type:            rapid.SampledFrom([]string{"", "service", "batch"}).Draw(t, "type"),
		Role:            rapid.SampledFrom([]string{"", "r1", "we<b>"}).Draw(t, "role"),
		EntityID:        drawJSONString(t, "entity_id"),
		Parent:          rapid.SampledFrom([]string{"", "p"}).Draw(t, "parent"),
	}
	if rapid.Bool().Draw(t, "has_policies") {
		tok.Policies = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) string { return drawJSONString(t, "policy") }), 0, 4).Draw(t, "policies")
	}
	if rapid.Bool().Draw(t, "has_cidrs") {
		tok.BoundCIDRs = rapid.SliceOfN(rapid.SampledFrom([]string{"10.0.0.0/8", "::1/128", "a\"b"}), 0, 3).Draw(t, "cidrs")
	}
	if rapid.Bool().Draw(t, "has_meta") {
		tok.Meta = rapid.MapOfN(rapid.Custom(func(t *rapid.T) string { return drawJSONString(t, "k") }),
			rapid.Custom(func(t *rapid.T) string { return drawJSONString(t, "v") }), 0, 20).Draw(t, "meta")
	}
	return tok
}

// TestEnvelopeEncoderMatchesJSON: the hand-written envelope and lookup
// writers produce exactly json.Marshal's bytes for any token, ID, clock,
// warnings and auth.
func TestEnvelopeEncoderMatchesJSON(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tok := drawToken(t)
		view := &lookupView{
			t:   tok,
			id:  drawJSONString(t, "id"),
			now: time.Unix(0, rapid.Int64Range(0, 4e18).Draw(t, "now")),
		}
		env := &envelope{
			RequestID: newUUID(),
			MountType: rapid.SampledFrom([]string{"", "token", "system", "a&b"}).Draw(t, "mount_type"),
		}
		if rapid.Bool().Draw(t, "has_warnings") {
			env.Warnings = rapid.SliceOfN(rapid.Custom(func(t *rapid.T) string { return drawJSONString(t, "w") }), 0, 3).Draw(t, "warnings")
		}
		if rapid.Bool().Draw(t, "has_auth") {
			env.Auth = &Auth{ClientToken: drawJSONString(t, "ct"), Policies: tok.Policies, Metadata: tok.Meta}
		}
		got, err := appendEnvelope(nil, env, view)
		if err != nil {
			t.Fatal(err)
		}
		ref := *env
		ref.Data = view.data()
		want, err := json.Marshal(&ref)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("hand-written envelope differs from encoding/json:\n got %s\nwant %s", got, want)
		}
		// The same envelope with map data (the other routes).
		got, err = appendEnvelope(nil, &ref, nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("map envelope differs (%v):\n got %s\nwant %s", err, got, want)
		}
	})
}

// TestWriteEnvelope: the written answer is the envelope plus a newline with
// the status, as writeJSON writes it.
func TestWriteEnvelope(t *testing.T) {
	env := &envelope{RequestID: "r", Data: map[string]any{"b": 1, "a": []string{"x"}}, MountType: "token"}
	want := httptest.NewRecorder()
	writeJSON(want, 201, env)
	got := httptest.NewRecorder()
	writeEnvelope(got, 201, env, nil)
	if got.Code != want.Code || got.Body.String() != want.Body.String() {
		t.Fatalf("writeEnvelope = %d %q, writeJSON = %d %q", got.Code, got.Body, want.Code, want.Body)
	}
	// A value encoding/json refuses is a 500, as with writeJSON.
	env.Data = map[string]any{"f": func() {}}
	got = httptest.NewRecorder()
	writeEnvelope(got, 200, env, nil)
	if got.Code != 500 || got.Body.String() != `{"errors":["internal error"]}`+"\n" {
		t.Fatalf("unencodable data: %d %q", got.Code, got.Body)
	}
}

// TestIndexHeaderCache: the cached X-Vault-Index value is the one
// encodeIndexState computes for the current identity and index, and a new
// index or identity is never answered with an old value.
func TestIndexHeaderCache(t *testing.T) {
	s := &server{}
	key1, key2 := []byte("k1-0123456789abcdef0123456789abc"), []byte("k2-0123456789abcdef0123456789abc")
	for _, tc := range []struct {
		id    string
		key   []byte
		index uint64
	}{
		{"c1", key1, 5}, {"c1", key1, 5}, {"c1", key1, 6}, {"c2", key1, 6}, {"c2", key2, 6}, {"c2", key2, 5},
	} {
		got := s.indexHeader(tc.id, tc.key, tc.index)
		if want := encodeIndexState(tc.id, tc.key, tc.index); len(got) != 1 || got[0] != want {
			t.Fatalf("indexHeader(%s, %s, %d) = %v, want [%s]", tc.id, tc.key, tc.index, got, want)
		}
	}
	// The cache keeps its own copy of the key.
	key := []byte("k3-0123456789abcdef0123456789abc")
	first := s.indexHeader("c3", key, 9)[0]
	key[0] = 'X'
	if got := s.indexHeader("c3", key, 9)[0]; got == first || got != encodeIndexState("c3", key, 9) {
		t.Fatal("a changed key was answered from the cache")
	}
}

// TestEnvelopeFreshRequestID: an envelope without a request ID gets a new
// random version 4 UUID per answer, the rest as encoding/json writes it.
func TestEnvelopeFreshRequestID(t *testing.T) {
	env := &envelope{Data: map[string]any{"a": 1}, MountType: "token"}
	uuidRE := regexp.MustCompile(`^\{"request_id":"([0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})",`)
	seen := map[string]bool{}
	for range 1000 { // several blocks of buffered randomness
		got, err := appendEnvelope(nil, env, nil)
		if err != nil {
			t.Fatal(err)
		}
		m := uuidRE.FindSubmatch(got)
		if m == nil {
			t.Fatalf("no fresh UUID request_id: %s", got)
		}
		ref := *env
		ref.RequestID = string(m[1])
		want, _ := json.Marshal(&ref)
		if !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
		if seen[ref.RequestID] {
			t.Fatalf("request_id %s repeated", ref.RequestID)
		}
		seen[ref.RequestID] = true
	}
}

// TestRouterExactMatchesOrderedSearch: the exact-path shortcut finds the
// same route (and path values) as the ordered search, for every declared
// route and variations of it.
func TestRouterExactMatchesOrderedSearch(t *testing.T) {
	s := newServer(newFakeLeader(), Options{})
	ordered := func(path string) (*Route, map[string]string) {
		segs := strings.Split(strings.Trim(path, "/"), "/")
		for _, rt := range s.router.routes {
			if vals, ok := rt.match(segs); ok {
				return rt, vals
			}
		}
		return nil, nil
	}
	var paths []string
	fill := strings.NewReplacer("{", "", "}", "", "...", "")
	for _, rt := range s.router.routes {
		p := rt.Path
		paths = append(paths, p, p+"/", "/"+p, p+"//", p+"/x", strings.TrimSuffix(p, "/"+lastSegment(p)), fill.Replace(p))
	}
	paths = append(paths, "/", "", "/v1", "/v1/", "/v1/auth/token/lookup-self", "/v1//auth/token/lookup-self", "/v1/nope")
	for _, p := range paths {
		got, gotVals := s.router.find(p)
		want, wantVals := ordered(p)
		if got != want || !maps.Equal(gotVals, wantVals) {
			t.Fatalf("find(%q) = %v %v, ordered search = %v %v", p, routePath(got), gotVals, routePath(want), wantVals)
		}
	}
}

func lastSegment(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

func routePath(rt *Route) string {
	if rt == nil {
		return "<nil>"
	}
	return rt.Path
}

// TestUUIDsUniqueConcurrently: request IDs drawn from the pooled random
// blocks by many goroutines at once never repeat.
func TestUUIDsUniqueConcurrently(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				id := newUUID()
				mu.Lock()
				dup := seen[id]
				seen[id] = true
				mu.Unlock()
				if dup {
					t.Errorf("request ID %s repeated", id)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != 4000 {
		t.Fatalf("%d distinct IDs, want 4000", len(seen))
	}
}

// TestHeaderKeysCanonical: the keys headerValue reads directly are in the
// canonical form net/http stores header keys in.
func TestHeaderKeysCanonical(t *testing.T) {
	for _, k := range []string{headerConsistent, headerForward, headerIndex, "X-Vault-Token", "Authorization"} {
		if c := http.CanonicalHeaderKey(k); c != k {
			t.Errorf("header key %q is not canonical (%q)", k, c)
		}
	}
	h := http.Header{}
	h.Add("x-vault-token", "a")
	h.Add("X-Vault-Token", "b")
	if got := headerValue(h, "X-Vault-Token"); got != h.Get("X-Vault-Token") {
		t.Fatalf("headerValue = %q, Get = %q", got, h.Get("X-Vault-Token"))
	}
}

// BenchmarkEncodeIndexState is the X-Vault-Index of every write's answer.
func BenchmarkEncodeIndexState(b *testing.B) {
	key := []byte("0123456789abcdef0123456789abcdef")
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		i++
		_ = encodeIndexState("cluster-4f9c2a", key, 1_000_000+i)
	}
}

// TestPooledMACsUnchanged pins the pooled HMACs (index.go) to the plain
// computation: other nodes verify these values, so they must not move.
func TestPooledMACsUnchanged(t *testing.T) {
	for _, key := range [][]byte{[]byte("0123456789abcdef0123456789abcdef"), []byte("another key")} {
		m := hmac.New(sha256.New, key)
		m.Write([]byte("v1:c1:42:0"))
		wantIndex := base64.StdEncoding.EncodeToString([]byte("v1:c1:42:0:" + hex.EncodeToString(m.Sum(nil))))
		if got := encodeIndexState("c1", key, 42); got != wantIndex {
			t.Errorf("encodeIndexState = %q, want %q", got, wantIndex)
		}
		m = hmac.New(sha256.New, key)
		m.Write([]byte("tokend-client-addr\x00" + "10.0.0.1" + "\x00" + "1700000000" + "\x00" + "abc"))
		wantAddr := base64.RawURLEncoding.EncodeToString(m.Sum(nil))
		if got := clientAddrMAC(key, "10.0.0.1", "1700000000", "abc"); got != wantAddr {
			t.Errorf("clientAddrMAC = %q, want %q", got, wantAddr)
		}
	}
}

// TestAppendAuthMatchesJSON: the hand-written auth object is byte for byte
// what encoding/json writes for it.
func TestAppendAuthMatchesJSON(t *testing.T) {
	strs := func(t *rapid.T, label string) []string {
		if rapid.Bool().Draw(t, label+"-nil") {
			return nil
		}
		n := rapid.IntRange(0, 3).Draw(t, label+"-n")
		out := make([]string, n)
		for i := range out {
			out[i] = drawJSONString(t, label)
		}
		return out
	}
	rapid.Check(t, func(t *rapid.T) {
		a := &Auth{
			ClientToken:   drawJSONString(t, "client_token"),
			Accessor:      drawJSONString(t, "accessor"),
			Policies:      strs(t, "policies"),
			TokenPolicies: strs(t, "token_policies"),
			LeaseDuration: rapid.Int64().Draw(t, "lease_duration"),
			Renewable:     rapid.Bool().Draw(t, "renewable"),
			EntityID:      drawJSONString(t, "entity_id"),
			TokenType:     drawJSONString(t, "token_type"),
			Orphan:        rapid.Bool().Draw(t, "orphan"),
			NumUses:       rapid.Int().Draw(t, "num_uses"),
		}
		if !rapid.Bool().Draw(t, "meta-nil") {
			a.Metadata = map[string]string{}
			for range rapid.IntRange(0, 20).Draw(t, "meta-n") {
				a.Metadata[drawJSONString(t, "meta-k")] = drawJSONString(t, "meta-v")
			}
		}
		if rapid.Bool().Draw(t, "mfa") {
			a.MFARequirement = map[string]any{"mfa_request_id": drawJSONString(t, "mfa")}
		}
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		got, err := appendAuth(nil, a)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("appendAuth:\n got %s %v\nwant %s", got, err, want)
		}
	})
}

// BenchmarkAppendAuth: the auth object of a create's answer, hand-written
// and through encoding/json.
func BenchmarkAppendAuth(b *testing.B) {
	a := &Auth{ClientToken: "hvs.CAESIJ8h3kWbq2ZfZr6jY0vX", Accessor: "0Yb5hWkK1uQy3nTq8sXcVb2r",
		Policies: []string{"default", "web"}, TokenPolicies: []string{"default", "web"},
		Metadata: map[string]string{"team": "a"}, LeaseDuration: 3600, Renewable: true, TokenType: "service"}
	buf := make([]byte, 0, 1024)
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = appendAuth(buf[:0], a)
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = appendMarshal(buf[:0], a)
		}
	})
}
