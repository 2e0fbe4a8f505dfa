package batch

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func testKey(seed byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func parentHash(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

// fullEntry uses every field.
func fullEntry() Entry {
	return Entry{
		Policies:     []string{"web", "default"},
		Meta:         map[string]string{"user": "alice", "app": "billing", "": "empty key"},
		DisplayName:  "token-my-app-v2",
		Path:         "auth/token/create/r1/v1x",
		Role:         "r1",
		ParentHash:   parentHash("hvs.parent"),
		CreationTime: 1_760_000_000,
		TTL:          300,
		EntityID:     "7d2e3179-f69b-450c-7179-ac8ee8bd8ca9",
		BoundCIDRs:   []string{"127.0.0.1/32", "10.0.0.0/8"},
	}
}

// typicalEntry is a token from auth/token/create with two policies and no meta.
func typicalEntry(parent string) Entry {
	return Entry{
		Policies:     []string{"default", "web"},
		DisplayName:  "token",
		Path:         "auth/token/create",
		ParentHash:   parent,
		CreationTime: 1_760_000_000,
		TTL:          3600,
	}
}

func mustSeal(t testing.TB, keyID uint32, key []byte, e Entry) string {
	t.Helper()
	tok, err := Seal(keyID, key, e, rand.Reader)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return tok
}

// equalEntry compares entries treating nil and empty slices/maps as equal.
func equalEntry(a, b Entry) bool {
	return a.Version == b.Version && a.DisplayName == b.DisplayName && a.Path == b.Path &&
		a.Role == b.Role && a.ParentHash == b.ParentHash && a.CreationTime == b.CreationTime &&
		a.TTL == b.TTL && a.EntityID == b.EntityID &&
		slices.Equal(a.Policies, b.Policies) && slices.Equal(a.BoundCIDRs, b.BoundCIDRs) &&
		maps.Equal(a.Meta, b.Meta)
}

func decodeBlob(t testing.TB, tok string) []byte {
	t.Helper()
	blob, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, Prefix))
	if err != nil {
		t.Fatalf("decode own token: %v", err)
	}
	return blob
}

func encodeBlob(blob []byte) string {
	return Prefix + base64.RawURLEncoding.EncodeToString(blob)
}

// sealRaw seals an arbitrary plaintext with a correct header, so tests can
// reach the plaintext decoder past the AEAD.
func sealRaw(t testing.TB, version byte, keyID uint32, key, plain []byte) string {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, headerSize)
	blob[0] = version
	binary.BigEndian.PutUint32(blob[1:5], keyID)
	if _, err := rand.Read(blob[5:headerSize]); err != nil {
		t.Fatal(err)
	}
	var ad [len(Prefix) + 5]byte
	blob = aead.Seal(blob, blob[5:headerSize], plain, additionalData(&ad, blob[:5]))
	return encodeBlob(blob)
}

func wantInvalid(t *testing.T, what, tok string, keys map[uint32][]byte) {
	t.Helper()
	e, err := Open(tok, keys)
	// Exactly the sentinel, not a wrapper: nothing else may leak.
	if err != ErrInvalid {
		t.Fatalf("%s: Open error = %v, want exactly ErrInvalid", what, err)
	}
	if !equalEntry(e, Entry{}) {
		t.Fatalf("%s: Open returned a non-zero entry with its error", what)
	}
}

func TestSealOpen(t *testing.T) {
	keys := map[uint32][]byte{7: testKey(1)}
	for name, e := range map[string]Entry{
		"every field":        fullEntry(),
		"orphan minimal":     {Policies: []string{"default"}, CreationTime: 1},
		"zero entry":         {},
		"negative time":      {CreationTime: -5, TTL: 1},
		"latest expiry":      {CreationTime: 10, TTL: math.MaxInt64 - 10},
		"unicode strings":    {DisplayName: "token-ü", Meta: map[string]string{"ключ": "値"}},
		"version is ignored": {Version: 99, TTL: 10},
	} {
		t.Run(name, func(t *testing.T) {
			tok := mustSeal(t, 7, keys[7], e)
			got, err := Open(tok, keys)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			want := e
			want.Version = Version
			if !equalEntry(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestSealUsesFreshNonce(t *testing.T) {
	key := testKey(1)
	a, b := mustSeal(t, 1, key, fullEntry()), mustSeal(t, 1, key, fullEntry())
	if a == b {
		t.Fatal("two seals of the same entry gave the same token")
	}
}

func TestTokenLength(t *testing.T) {
	key := testKey(1)
	orphan := mustSeal(t, 1, key, typicalEntry(""))
	child := mustSeal(t, 1, key, typicalEntry(parentHash("hvs.parent")))
	t.Logf("2 policies, no meta: orphan %d chars, with parent %d chars", len(orphan), len(child))
	// Vault's docs tell clients to allow 255 bytes.
	if len(orphan) > 140 || len(child) > 200 {
		t.Fatalf("tokens grew: orphan %d chars, child %d chars", len(orphan), len(child))
	}
}

func TestTokenCharset(t *testing.T) {
	re := regexp.MustCompile(`^hvb\.[A-Za-z0-9_-]+$`)
	key := testKey(1)
	for i := range 200 {
		e := fullEntry()
		e.DisplayName = strings.Repeat("x", i) // vary the length mod 3
		tok := mustSeal(t, uint32(i+1), key, e)
		if !re.MatchString(tok) {
			t.Fatalf("token %q is not hvb. + unpadded base64url", tok)
		}
	}
}

func TestOpenTamperedBytes(t *testing.T) {
	keys := map[uint32][]byte{1: testKey(1)}
	tok := mustSeal(t, 1, keys[1], fullEntry())
	blob := decodeBlob(t, tok)
	for i := range blob {
		b := bytes.Clone(blob)
		b[i] ^= 0xff
		wantInvalid(t, "byte "+strconv.Itoa(i)+" flipped", encodeBlob(b), keys)
	}
	// Every bit of the header, the first and last nonce byte, the first
	// ciphertext byte and the last tag byte.
	for _, i := range []int{0, 1, 2, 3, 4, 5, headerSize - 1, headerSize, len(blob) - 1} {
		for bit := range 8 {
			b := bytes.Clone(blob)
			b[i] ^= 1 << bit
			wantInvalid(t, "byte "+strconv.Itoa(i)+" bit "+strconv.Itoa(bit), encodeBlob(b), keys)
		}
	}
	if _, err := Open(tok, keys); err != nil {
		t.Fatalf("the untampered token no longer opens: %v", err)
	}
}

func TestOpenTruncated(t *testing.T) {
	keys := map[uint32][]byte{1: testKey(1)}
	tok := mustSeal(t, 1, keys[1], fullEntry())
	for n := range len(tok) {
		wantInvalid(t, "token cut to "+strconv.Itoa(n), tok[:n], keys)
	}
	blob := decodeBlob(t, tok)
	for n := range len(blob) {
		wantInvalid(t, "blob cut to "+strconv.Itoa(n), encodeBlob(blob[:n]), keys)
	}
	wantInvalid(t, "blob extended", encodeBlob(append(bytes.Clone(blob), 0)), keys)
}

func TestOpenUnknownKeyID(t *testing.T) {
	key := testKey(1)
	tok := mustSeal(t, 1, key, fullEntry())
	wantInvalid(t, "empty keyring", tok, nil)
	wantInvalid(t, "other key ID", tok, map[uint32][]byte{2: key})
	wantInvalid(t, "same ID, other key", tok, map[uint32][]byte{1: testKey(2)})
	wantInvalid(t, "same ID, short key", tok, map[uint32][]byte{1: key[:16]})

	// The key ID is bound into the tag: moving a token to another ID that
	// holds the same key material does not open it.
	blob := decodeBlob(t, tok)
	binary.BigEndian.PutUint32(blob[1:5], 2)
	wantInvalid(t, "key ID rewritten", encodeBlob(blob), map[uint32][]byte{1: key, 2: key})
}

func TestKeyRotation(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	old := mustSeal(t, 1, k1, fullEntry())

	// Rotate: key 2 becomes primary, key 1 stays for validation.
	keys := map[uint32][]byte{1: k1, 2: k2}
	cur := mustSeal(t, 2, k2, fullEntry())
	for name, tok := range map[string]string{"old": old, "new": cur} {
		if _, err := Open(tok, keys); err != nil {
			t.Fatalf("%s token after rotation: %v", name, err)
		}
	}

	// Prune: key 1 removed; its tokens die, the new ones live.
	delete(keys, 1)
	wantInvalid(t, "token of a removed key", old, keys)
	if _, err := Open(cur, keys); err != nil {
		t.Fatalf("token of the primary after prune: %v", err)
	}
}

func TestOpenRejectsMalformedStrings(t *testing.T) {
	keys := map[uint32][]byte{1: testKey(1)}
	tok := mustSeal(t, 1, keys[1], fullEntry())
	body := strings.TrimPrefix(tok, Prefix)
	blob := decodeBlob(t, tok)
	v2 := bytes.Clone(blob)
	v2[0] = 2
	for name, s := range map[string]string{
		"empty":            "",
		"prefix only":      Prefix,
		"service prefix":   "hvs." + body,
		"legacy prefix":    "b." + body,
		"upper prefix":     "HVB." + body,
		"no prefix":        body,
		"padding":          tok + "=",
		"newline inside":   Prefix + body[:10] + "\n" + body[10:],
		"cr at end":        tok + "\r",
		"space":            tok + " ",
		"std alphabet":     Prefix + strings.NewReplacer("-", "+", "_", "/").Replace(body) + "+/",
		"non-ascii":        tok + "é",
		"too long":         Prefix + strings.Repeat("A", MaxTokenLen),
		"unknown version":  encodeBlob(v2),
		"garbage":          Prefix + "not-a-token",
		"one char":         Prefix + "A",
		"non-strict tail":  nonStrict(body),
		"prefix twice":     Prefix + tok,
		"nul byte":         tok + "\x00",
		"hvs root token":   "hvs.AAAAAAAAAAAAAAAAAAAAAAAA",
		"dot inside body":  Prefix + body[:5] + "." + body[6:],
		"whitespace front": " " + tok,
	} {
		wantInvalid(t, name, s, keys)
	}
}

// nonStrict changes the unused low bits of the last base64 character, which
// a lenient decoder would accept as the same blob; body's length must leave
// such bits (it does unless len(blob)%3 == 0, in which case it appends junk).
func nonStrict(body string) string {
	if len(body)%4 == 0 {
		return body + "A"
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, body[len(body)-1])
	return body[:len(body)-1] + string(alphabet[last|1])
}

func TestOpenRejectsMalformedPlaintext(t *testing.T) {
	key := testKey(1)
	keys := map[uint32][]byte{1: key}
	good := encodeEntry(fullEntry(), nil)
	if _, ok := decodeEntry(good); !ok {
		t.Fatal("the reference plaintext does not decode")
	}
	// ctime=0 ttl=0 "" "" "" parent entity policies meta cidrs
	minimal := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if _, ok := decodeEntry(minimal); !ok {
		t.Fatal("the minimal plaintext does not decode")
	}
	withParent := func(n byte, rest ...byte) []byte {
		return append([]byte{0, 0, 0, 0, 0, n}, rest...)
	}
	for name, plain := range map[string][]byte{
		"empty":            {},
		"trailing byte":    append(bytes.Clone(good), 0),
		"cut by one":       good[:len(good)-1],
		"minimal cut":      minimal[:9],
		"negative ttl":     {0, 1, 0, 0, 0, 0, 0, 0, 0, 0},
		"expiry overflows": append(binary.AppendVarint(binary.AppendVarint(nil, 10), math.MaxInt64-9), 0, 0, 0, 0, 0, 0, 0, 0),
		"truncated varint": {0x80},
		"overlong varint":  bytes.Repeat([]byte{0xff}, 11),
		"string too long":  {0, 0, 50, 'a'},
		"parent length 5":  withParent(5, 1, 2, 3, 4, 5, 0, 0, 0, 0),
		"parent cut":       withParent(32, 1, 2, 3),
		"huge list count":  {0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0},
		"huge meta count":  {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0},
		"meta unsorted":    {0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 'b', 0, 1, 'a', 0, 0},
		"meta duplicate":   {0, 0, 0, 0, 0, 0, 0, 0, 2, 1, 'a', 0, 1, 'a', 0, 0},
		"meta value cut":   {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 'a', 3, 'x', 0},
		"cidrs missing":    minimal[:9],
		"cidr string cut":  {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 4, '1'},
	} {
		wantInvalid(t, name, sealRaw(t, Version, 1, key, plain), keys)
	}
	// And a hand-built valid one opens, so the table above fails for the
	// reason it names rather than because sealRaw is wrong.
	if _, err := Open(sealRaw(t, Version, 1, key, minimal), keys); err != nil {
		t.Fatalf("minimal plaintext via sealRaw: %v", err)
	}
}

func TestSealRejects(t *testing.T) {
	key := testKey(1)
	bigMeta := map[string]string{"k": strings.Repeat("v", MaxTokenLen)}
	for name, tc := range map[string]struct {
		id     uint32
		key    []byte
		e      Entry
		random func() *bytes.Reader
		tooBig bool
	}{
		"key id 0":          {id: 0, key: key},
		"short key":         {id: 1, key: key[:16]},
		"no key":            {id: 1},
		"negative ttl":      {id: 1, key: key, e: Entry{TTL: -1}},
		"expiry overflows":  {id: 1, key: key, e: Entry{CreationTime: 10, TTL: math.MaxInt64 - 9}},
		"parent upper hex":  {id: 1, key: key, e: Entry{ParentHash: strings.ToUpper(parentHash("p"))}},
		"parent short":      {id: 1, key: key, e: Entry{ParentHash: parentHash("p")[:62]}},
		"parent not hex":    {id: 1, key: key, e: Entry{ParentHash: strings.Repeat("g", 64)}},
		"parent plaintext":  {id: 1, key: key, e: Entry{ParentHash: "hvs.parent"}},
		"too much meta":     {id: 1, key: key, e: Entry{Meta: bigMeta}, tooBig: true},
		"random runs short": {id: 1, key: key, random: func() *bytes.Reader { return bytes.NewReader([]byte{1, 2, 3}) }},
	} {
		t.Run(name, func(t *testing.T) {
			var r = rand.Reader
			if tc.random != nil {
				r = tc.random()
			}
			tok, err := Seal(tc.id, tc.key, tc.e, r)
			if err == nil || tok != "" {
				t.Fatalf("Seal = %q, %v; want an error", tok, err)
			}
			if errors.Is(err, ErrTooLarge) != tc.tooBig {
				t.Fatalf("Seal error %v: errors.Is(ErrTooLarge) = %v, want %v", err, !tc.tooBig, tc.tooBig)
			}
			if strings.Contains(err.Error(), string(key)) {
				t.Fatal("error contains key material")
			}
		})
	}
	if _, err := Seal(1, key, Entry{}, iotest.ErrReader(errors.New("boom"))); err == nil {
		t.Fatal("Seal with a failing random source succeeded")
	}
}

func TestSealLargestEntryOpens(t *testing.T) {
	// Grow meta until Seal refuses; the last token that sealed must open.
	keys := map[uint32][]byte{1: testKey(1)}
	var last string
	for n := MaxTokenLen*3/4 - 100; ; n++ {
		tok, err := Seal(1, keys[1], Entry{Meta: map[string]string{"k": strings.Repeat("v", n)}}, rand.Reader)
		if errors.Is(err, ErrTooLarge) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = tok
	}
	if len(last) > MaxTokenLen || len(last) < MaxTokenLen-3 {
		t.Fatalf("largest token %d chars, want just under %d", len(last), MaxTokenLen)
	}
	if _, err := Open(last, keys); err != nil {
		t.Fatalf("largest token does not open: %v", err)
	}
}

func TestExpiredAt(t *testing.T) {
	created := time.Unix(1_760_000_000, 0)
	e := Entry{CreationTime: created.Unix(), TTL: 60}
	for name, tc := range map[string]struct {
		e    Entry
		now  time.Time
		want bool
	}{
		"at creation":        {e, created, false},
		"a second before":    {e, created.Add(59 * time.Second), false},
		"just before expiry": {e, created.Add(60*time.Second - time.Nanosecond), false},
		"at expiry":          {e, created.Add(60 * time.Second), true},
		"after expiry":       {e, created.Add(time.Hour), true},
		"no ttl, far future": {Entry{CreationTime: created.Unix()}, created.Add(100 * 365 * 24 * time.Hour), false},
	} {
		if got := tc.e.ExpiredAt(tc.now); got != tc.want {
			t.Errorf("%s: ExpiredAt = %v, want %v", name, got, tc.want)
		}
	}
	if got, want := e.ExpireTime(), created.Add(time.Minute); !got.Equal(want) {
		t.Errorf("ExpireTime = %v, want %v", got, want)
	}
	if !(Entry{CreationTime: 5}).ExpireTime().IsZero() {
		t.Error("ExpireTime of a TTL-0 entry is not the zero time")
	}
}

func FuzzOpen(f *testing.F) {
	keys := map[uint32][]byte{1: testKey(1), 2: testKey(2)}
	f.Add(mustSeal(f, 1, keys[1], fullEntry()))
	f.Add(mustSeal(f, 2, keys[2], typicalEntry("")))
	f.Add(mustSeal(f, 3, testKey(3), typicalEntry(""))) // unknown key
	f.Add("")
	f.Add(Prefix)
	f.Add("hvs.AAAAAAAAAAAAAAAAAAAAAAAA")
	f.Add(Prefix + "AQAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
	f.Fuzz(func(t *testing.T, tok string) {
		e, err := Open(tok, keys)
		if err != nil {
			if err != ErrInvalid {
				t.Fatalf("Open error %v is not exactly ErrInvalid", err)
			}
			return
		}
		// Whatever opens must re-seal to a token that opens to the same entry.
		id := binary.BigEndian.Uint32(decodeBlob(t, tok)[1:5])
		again, err := Open(mustSeal(t, id, keys[id], e), keys)
		if err != nil || !equalEntry(again, e) {
			t.Fatalf("re-seal of an opened entry: %+v, %v; want %+v", again, err, e)
		}
	})
}

func FuzzSealOpen(f *testing.F) {
	full := fullEntry()
	f.Add(full.CreationTime, full.TTL, full.DisplayName, full.Path, full.Role, []byte("parent"),
		full.EntityID, "web,default", "user=alice,app=billing", "127.0.0.1/32,10.0.0.0/8", uint32(1))
	f.Add(int64(0), int64(0), "", "", "", []byte(nil), "", "", "", "", uint32(0xffffffff))
	f.Add(int64(-1<<63), int64(1<<63-1), "\x00", "\xff", "é", []byte{}, "\n", ",,", "=,=", ",", uint32(5))
	f.Fuzz(func(t *testing.T, ctime, ttl int64, display, path, role string, parent []byte,
		entity, policies, meta, cidrs string, keyID uint32) {
		e := Entry{
			CreationTime: ctime, TTL: ttl, DisplayName: display, Path: path, Role: role,
			EntityID: entity, Policies: split(policies), BoundCIDRs: split(cidrs),
		}
		if len(parent) > 0 {
			e.ParentHash = parentHash(string(parent))
		}
		for _, kv := range split(meta) {
			k, v, _ := strings.Cut(kv, "=")
			if e.Meta == nil {
				e.Meta = map[string]string{}
			}
			e.Meta[k] = v
		}
		key := testKey(byte(keyID))
		tok, err := Seal(keyID, key, e, rand.Reader)
		switch {
		case keyID == 0 || !validTimes(ctime, ttl):
			if err == nil {
				t.Fatal("Seal accepted key ID 0, a negative TTL or an overflowing expiry")
			}
			return
		case errors.Is(err, ErrTooLarge):
			return
		case err != nil:
			t.Fatalf("Seal: %v", err)
		}
		if len(tok) > MaxTokenLen {
			t.Fatalf("token of %d chars exceeds MaxTokenLen", len(tok))
		}
		got, err := Open(tok, map[uint32][]byte{keyID: key})
		if err != nil {
			t.Fatalf("Open of a fresh token: %v", err)
		}
		e.Version = Version
		if !equalEntry(got, e) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
		}
	})
}

// split splits a comma list; "" is the empty list.
func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func BenchmarkSeal(b *testing.B) {
	key := testKey(1)
	e := typicalEntry(parentHash("hvs.parent"))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Seal(1, key, e, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	keys := map[uint32][]byte{1: testKey(1), 2: testKey(2)}
	tok := mustSeal(b, 1, keys[1], typicalEntry(parentHash("hvs.parent")))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Open(tok, keys); err != nil {
			b.Fatal(err)
		}
	}
}

func cachedIDs() []uint32 {
	p := aeadCache.Load()
	if p == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(*p))
}

func TestKeyRemovalClearsCache(t *testing.T) {
	k1, k2 := testKey(101), testKey(102)
	keys := map[uint32][]byte{1001: k1, 1002: k2}
	for id, k := range keys {
		if _, err := Open(mustSeal(t, id, k, fullEntry()), keys); err != nil {
			t.Fatal(err)
		}
	}
	if ids := cachedIDs(); !slices.Contains(ids, 1001) || !slices.Contains(ids, 1002) {
		t.Fatalf("cache holds %v, want 1001 and 1002", ids)
	}
	delete(keys, 1001)
	wantInvalid(t, "garbage", "hvb.x", keys)
	if ids := cachedIDs(); !slices.Equal(ids, []uint32{1002}) {
		t.Fatalf("after key 1001 left the keyring the cache holds %v, want [1002]", ids)
	}
}

func TestConcurrentSealOpenWithRotation(t *testing.T) {
	// Race-detector food: rotations (new key IDs, ID reuse with new
	// material) while other goroutines seal and open.
	const workers = 4
	errs := make(chan error, workers)
	for g := range workers {
		go func() {
			for i := range 300 {
				id := uint32(2000 + (g+i)%5)
				key := testKey(byte(i % 3))
				tok, err := Seal(id, key, typicalEntry(""), rand.Reader)
				if err == nil {
					_, err = Open(tok, map[uint32][]byte{id: key})
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkOpenParallel(b *testing.B) {
	keys := map[uint32][]byte{1: testKey(1), 2: testKey(2)}
	tok := mustSeal(b, 1, keys[1], typicalEntry(parentHash("hvs.parent")))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := Open(tok, keys); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkSealParallel(b *testing.B) {
	key := testKey(1)
	e := typicalEntry(parentHash("hvs.parent"))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := Seal(1, key, e, rand.Reader); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestSealedTokenHidesPlaintext(t *testing.T) {
	e := fullEntry()
	e.DisplayName = "token-" + strings.Repeat("secret-marker", 4)
	tok := mustSeal(t, 1, testKey(1), e)
	blob := decodeBlob(t, tok)
	for _, s := range []string{"secret-marker", e.Path, e.EntityID, "alice", "127.0.0.1/32"} {
		if bytes.Contains(blob, []byte(s)) || strings.Contains(tok, s) {
			t.Fatalf("token reveals %q", s)
		}
	}
	if plain := encodeEntry(e, nil); len(plain) > plainSizeBound(e) {
		t.Fatalf("plainSizeBound %d < plaintext %d", plainSizeBound(e), len(plain))
	}
}
