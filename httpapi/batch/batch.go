package batch

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Prefix starts every batch token.
const Prefix = "hvb."

// Version is the format version Seal writes (the first byte of the blob).
const Version uint8 = 1

// KeySize is the length of a keyring key in bytes (AES-256).
const KeySize = 32

// MaxTokenLen is the longest token, in characters, that Seal produces and
// Open accepts; it bounds the work an attacker can make Open do.
const MaxTokenLen = 8192

const (
	nonceSize  = 12
	tagSize    = 16
	headerSize = 1 + 4 + nonceSize
	// hashSize is the length of a parent hash once hex-decoded (SHA-256).
	hashSize = 32
)

// minBlobLen is the shortest blob Open will try: a header, a tag and the
// smallest valid plaintext (two varints, three strings, a parent, a string,
// two lists and a map: ten bytes).
const minBlobLen = headerSize + tagSize + 10

var (
	// ErrInvalid is the only error Open returns: the token is not a batch
	// token sealed by any key of the keyring, whatever the reason.
	ErrInvalid = errors.New("invalid batch token")
	// ErrTooLarge is returned (wrapped) by Seal when the entry does not fit
	// in MaxTokenLen characters (typically: too much meta).
	ErrTooLarge = errors.New("batch token too large")
)

// Entry is everything a batch token carries: enough to validate it and to
// answer a lookup without storage. Batch tokens have no accessor, no
// num_uses, no period and no explicit max TTL, and are never renewable.
type Entry struct {
	// Version is the format version the token was sealed with; Open sets
	// it, Seal ignores it and always writes the current Version.
	Version uint8
	// Policies are the token's policies, in the order given.
	Policies []string
	// Meta is the token's metadata.
	Meta map[string]string
	// DisplayName is the display name as Vault shows it ("token-…").
	DisplayName string
	// Path is the creation path (e.g. "auth/token/create/<role>").
	Path string
	// Role is the role the token was created through ("" for none).
	Role string
	// ParentHash is the lowercase hex SHA-256 of the parent service token's
	// ID (fsm.Hasher.Hash), or "" for an orphan. The caller must check on
	// every use that the parent still exists and is unexpired.
	ParentHash string
	// CreationTime is when the token was created, in Unix seconds.
	CreationTime int64
	// TTL is the token's lifetime in seconds from CreationTime; 0 means it
	// never expires on its own.
	TTL int64
	// EntityID is the identity entity the token belongs to ("" for none).
	EntityID string
	// BoundCIDRs restrict the client addresses the token may be used from.
	BoundCIDRs []string
}

// validTimes reports whether ttl is not negative and creation+ttl does not
// overflow, so ExpireTime and ExpiredAt are exact for every entry Open
// returns.
func validTimes(creation, ttl int64) bool {
	return ttl >= 0 && (creation <= 0 || ttl <= math.MaxInt64-creation)
}

// ExpireTime returns when the token stops being valid, or the zero time if
// its TTL is 0.
func (e Entry) ExpireTime() time.Time {
	if e.TTL == 0 {
		return time.Time{}
	}
	return time.Unix(e.CreationTime+e.TTL, 0)
}

// ExpiredAt reports whether the token's own lifetime has ended at now. It
// says nothing about the parent, which the caller must check in the store.
func (e Entry) ExpiredAt(now time.Time) bool {
	return e.TTL != 0 && now.Unix() >= e.CreationTime+e.TTL
}

// Seal encrypts e under key (the keyring entry keyID) and returns the
// token. random supplies the nonce (crypto/rand.Reader in production).
// Errors describe the bad argument and never include key material; an
// entry that does not fit in MaxTokenLen gives an error wrapping
// ErrTooLarge.
func Seal(keyID uint32, key []byte, e Entry, random io.Reader) (string, error) {
	if keyID == 0 {
		return "", errors.New("seal batch token: key id 0 is reserved")
	}
	if len(key) != KeySize {
		return "", fmt.Errorf("seal batch token: key of %d bytes, want %d", len(key), KeySize)
	}
	if !validTimes(e.CreationTime, e.TTL) {
		return "", errors.New("seal batch token: negative ttl, or expiry past the end of time")
	}
	var parent []byte
	var parentBuf [hashSize]byte
	if e.ParentHash != "" {
		if !decodeLowerHex(parentBuf[:], e.ParentHash) {
			return "", errors.New("seal batch token: parent hash is not lowercase hex sha-256")
		}
		parent = parentBuf[:]
	}
	// One buffer: header, then the plaintext, sealed in place (the tag
	// fits in the spare capacity).
	blob := make([]byte, headerSize, headerSize+plainSizeBound(e)+tagSize)
	blob = appendEntry(blob, e, parent)
	plainLen := len(blob) - headerSize
	if len(Prefix)+base64.RawURLEncoding.EncodedLen(len(blob)+tagSize) > MaxTokenLen {
		return "", fmt.Errorf("seal batch token: %d byte entry: %w", plainLen, ErrTooLarge)
	}
	aead, err := aeadFor(keyID, key)
	if err != nil {
		return "", fmt.Errorf("seal batch token: %w", err)
	}
	blob[0] = Version
	binary.BigEndian.PutUint32(blob[1:5], keyID)
	if _, err := io.ReadFull(random, blob[5:headerSize]); err != nil {
		return "", fmt.Errorf("seal batch token: nonce: %w", err)
	}
	// Seal reuses the plaintext's storage only if the tag fits; otherwise
	// it would return a new slice and blob would still hold plaintext.
	blob = slices.Grow(blob, tagSize)
	var ad [len(Prefix) + 5]byte
	sealed := aead.Seal(blob[headerSize:headerSize], blob[5:headerSize], blob[headerSize:], additionalData(&ad, blob[:5]))
	blob = blob[:headerSize+len(sealed)]
	return Prefix + base64.RawURLEncoding.EncodeToString(blob), nil
}

// decodeLowerHex decodes s, which must be exactly 2*len(dst) lowercase hex
// digits, into dst.
func decodeLowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := lowerHexDigit(s[2*i])
		lo, ok2 := lowerHexDigit(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func lowerHexDigit(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// Open authenticates and decrypts token with the key its key ID names in
// keys, and returns its entry (Version set). Every failure is ErrInvalid.
// Open does not check expiry (see Entry.ExpiredAt) or the parent.
func Open(token string, keys map[uint32][]byte) (Entry, error) {
	forgetRemoved(keys)
	if len(token) > MaxTokenLen || len(token) <= len(Prefix) || token[:len(Prefix)] != Prefix {
		return Entry{}, ErrInvalid
	}
	body := token[len(Prefix):]
	// The decoder skips '\r' and '\n'; refuse them (and everything else
	// outside the alphabet) so a token has exactly one spelling.
	for i := 0; i < len(body); i++ {
		if !isURLSafe(body[i]) {
			return Entry{}, ErrInvalid
		}
	}
	blob, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil || len(blob) < minBlobLen || blob[0] != Version {
		return Entry{}, ErrInvalid
	}
	keyID := binary.BigEndian.Uint32(blob[1:5])
	key, ok := keys[keyID]
	if !ok || len(key) != KeySize {
		return Entry{}, ErrInvalid
	}
	aead, err := aeadFor(keyID, key)
	if err != nil {
		return Entry{}, ErrInvalid
	}
	var ad [len(Prefix) + 5]byte
	// Decrypt in place: blob is ours and is not used afterwards.
	plain, err := aead.Open(blob[headerSize:headerSize], blob[5:headerSize], blob[headerSize:], additionalData(&ad, blob[:5]))
	if err != nil {
		return Entry{}, ErrInvalid
	}
	e, ok := decodeEntry(plain)
	if !ok {
		return Entry{}, ErrInvalid
	}
	e.Version = blob[0]
	return e, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// maxCached bounds the AEAD cache; a keyring holds a handful of keys.
const maxCached = 16

// cachedAEAD is the expanded AES-GCM state of one key. A GCM value is
// immutable once built, so it is shared by concurrent Seal and Open calls.
type cachedAEAD struct {
	key  [KeySize]byte
	aead cipher.AEAD
}

// aeadCache maps key ID → expanded key. Expanding an AES-256-GCM key costs
// about twice as much as sealing or opening a token with it, so the state is
// kept. Readers load the map without locking; writers (rare: a new key, a
// rotation, a removal) copy it under aeadMu and swap it.
var (
	aeadMu    sync.Mutex
	aeadCache atomic.Pointer[map[uint32]cachedAEAD]
)

// aeadFor returns the AEAD for key, which the keyring holds under id. A
// cached entry is used only if its material equals key, so a key ID reused
// with new material never meets a stale entry.
func aeadFor(id uint32, key []byte) (cipher.AEAD, error) {
	if p := aeadCache.Load(); p != nil {
		if c, ok := (*p)[id]; ok && subtle.ConstantTimeCompare(c.key[:], key) == 1 {
			return c.aead, nil
		}
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	c := cachedAEAD{aead: aead}
	copy(c.key[:], key)
	updateCache(func(m map[uint32]cachedAEAD) {
		if len(m) >= maxCached {
			clear(m) // more keys than any keyring holds: start over
		}
		m[id] = c
	})
	return aead, nil
}

// forgetRemoved drops cached keys that are not (or no longer with the same
// material) in keyring, so removing a key from the keyring also removes it
// from this process's memory. It is cheap when there is nothing to drop.
func forgetRemoved(keyring map[uint32][]byte) {
	p := aeadCache.Load()
	if p == nil || len(*p) <= len(keyring) {
		return
	}
	updateCache(func(m map[uint32]cachedAEAD) {
		for id, c := range m {
			if k, ok := keyring[id]; !ok || subtle.ConstantTimeCompare(c.key[:], k) != 1 {
				delete(m, id)
			}
		}
	})
}

// updateCache applies change to a copy of the cache and publishes it.
func updateCache(change func(map[uint32]cachedAEAD)) {
	aeadMu.Lock()
	defer aeadMu.Unlock()
	next := make(map[uint32]cachedAEAD)
	if p := aeadCache.Load(); p != nil {
		maps.Copy(next, *p)
	}
	change(next)
	aeadCache.Store(&next)
}

// additionalData binds the prefix, version and key ID into the tag, so a
// blob cannot be replayed under another header.
func additionalData(buf *[len(Prefix) + 5]byte, header []byte) []byte {
	n := copy(buf[:], Prefix)
	copy(buf[n:], header)
	return buf[:]
}

func isURLSafe(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// encodeEntry returns the version-1 plaintext. parent is the raw parent
// hash (nil for an orphan).
func encodeEntry(e Entry, parent []byte) []byte {
	return appendEntry(nil, e, parent)
}

// plainSizeBound is at least the length of e's plaintext.
func plainSizeBound(e Entry) int {
	const v = binary.MaxVarintLen64
	n := 2*v + 1 + hashSize + 3*v // two varints, the parent, three counts
	for _, s := range []string{e.DisplayName, e.Path, e.Role, e.EntityID} {
		n += v + len(s)
	}
	for _, s := range e.Policies {
		n += v + len(s)
	}
	for _, s := range e.BoundCIDRs {
		n += v + len(s)
	}
	for k, val := range e.Meta {
		n += 2*v + len(k) + len(val)
	}
	return n
}

// appendEntry appends the version-1 plaintext to b.
func appendEntry(b []byte, e Entry, parent []byte) []byte {
	b = binary.AppendVarint(b, e.CreationTime)
	b = binary.AppendVarint(b, e.TTL)
	b = appendString(b, e.DisplayName)
	b = appendString(b, e.Path)
	b = appendString(b, e.Role)
	b = append(b, byte(len(parent)))
	b = append(b, parent...)
	b = appendString(b, e.EntityID)
	b = appendList(b, e.Policies)
	keys := make([]string, 0, len(e.Meta))
	for k := range e.Meta {
		keys = append(keys, k)
	}
	slices.Sort(keys) // canonical: one entry, one plaintext
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = appendString(b, k)
		b = appendString(b, e.Meta[k])
	}
	return appendList(b, e.BoundCIDRs)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendList(b []byte, l []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(l)))
	for _, s := range l {
		b = appendString(b, s)
	}
	return b
}

// decoder reads the plaintext; the first failure sticks in ok.
type decoder struct {
	b  []byte
	ok bool
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.ok = false
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.ok = false
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64) []byte {
	if !d.ok || n > uint64(len(d.b)) {
		d.ok = false
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	return string(d.bytes(d.uvarint()))
}

// count reads an element count; every element takes at least size bytes,
// so a count larger than what is left is malformed (and never allocated).
func (d *decoder) count(size uint64) int {
	n := d.uvarint()
	if !d.ok || n > uint64(len(d.b))/size {
		d.ok = false
		return 0
	}
	return int(n)
}

func (d *decoder) list() []string {
	n := d.count(1)
	if n == 0 {
		return nil
	}
	l := make([]string, 0, n)
	for range n {
		l = append(l, d.string())
	}
	return l
}

func decodeEntry(plain []byte) (Entry, bool) {
	d := &decoder{b: plain, ok: true}
	var e Entry
	e.CreationTime = d.varint()
	e.TTL = d.varint()
	e.DisplayName = d.string()
	e.Path = d.string()
	e.Role = d.string()
	switch n := d.bytes(1); {
	case !d.ok:
	case n[0] == hashSize:
		e.ParentHash = hex.EncodeToString(d.bytes(hashSize))
	case n[0] != 0:
		d.ok = false
	}
	e.EntityID = d.string()
	e.Policies = d.list()
	if n := d.count(2); n > 0 {
		e.Meta = make(map[string]string, n)
		prev := ""
		for i := range n {
			k, v := d.string(), d.string()
			if i > 0 && k <= prev {
				d.ok = false // unsorted or duplicate: not canonical
			}
			e.Meta[k] = v
			prev = k
		}
	}
	e.BoundCIDRs = d.list()
	if !d.ok || len(d.b) != 0 || !validTimes(e.CreationTime, e.TTL) {
		return Entry{}, false
	}
	return e, true
}
