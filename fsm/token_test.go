package fsm

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
)

func TestHasherIsHMACSHA256(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	hs := mustHasher(key)
	for _, id := range []string{"", "root", "hvs.CAESIJ0123456789abcdefghij", strings.Repeat("x", 5000)} {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id))
		want := hex.EncodeToString(m.Sum(nil))
		// Twice: the second call reuses the pooled state.
		for i := 0; i < 2; i++ {
			if got := hs.Hash(id); got != want {
				t.Fatalf("Hash(%d bytes) = %s, want %s", len(id), got, want)
			}
		}
		if !validHash(hs.Hash(id)) {
			t.Fatalf("Hash output is not a valid stored hash")
		}
	}
}

func TestHasherKeyMatters(t *testing.T) {
	a := mustHasher([]byte(strings.Repeat("a", 32)))
	b := mustHasher([]byte(strings.Repeat("b", 32)))
	if a.Hash("root") == b.Hash("root") {
		t.Fatal("two keys give the same hash")
	}
	plain := sha256.Sum256([]byte("root"))
	if a.Hash("root") == hex.EncodeToString(plain[:]) {
		t.Fatal("the hash is the unkeyed SHA-256")
	}
	if a.KeyCheck() == b.KeyCheck() || a.KeyCheck() != mustHasher([]byte(strings.Repeat("a", 32))).KeyCheck() {
		t.Fatal("KeyCheck does not tell keys apart")
	}
	if !strings.HasPrefix(a.Hash("\x00tokend token hash key check v1"), a.KeyCheck()) {
		t.Fatal("KeyCheck is not derived from the key")
	}
}

func TestNewHasherKeyLength(t *testing.T) {
	for _, n := range []int{0, 16, 31, 65} {
		if _, err := NewHasher(make([]byte, n)); err == nil {
			t.Errorf("NewHasher(%d bytes) accepted", n)
		}
	}
	for _, n := range []int{32, 48, 64} {
		if _, err := NewHasher(make([]byte, n)); err != nil {
			t.Errorf("NewHasher(%d bytes): %v", n, err)
		}
	}
}

func TestNewHasherCopiesKey(t *testing.T) {
	key := []byte(strings.Repeat("c", 32))
	hs := mustHasher(key)
	want := hs.Hash("x")
	key[0] = 'd'
	// A fresh pooled state must still use the original key.
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if hs.Hash("x") != want {
				t.Error("the Hasher saw the caller's change to the key")
			}
		}()
	}
	wg.Wait()
}

var sinkHash string

// BenchmarkTokenHash compares the keyed hash with the unkeyed SHA-256 it
// replaced (run both in one go and compare the ratio).
func BenchmarkTokenHash(b *testing.B) {
	id := "hvs." + strings.Repeat("A", 24)
	b.Run("hmac-sha256", func(b *testing.B) {
		hs := mustHasher([]byte(strings.Repeat("k", 32)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sinkHash = hs.Hash(id)
			}
		})
	})
	b.Run("sha256-unkeyed", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sum := sha256.Sum256([]byte(id))
				sinkHash = hex.EncodeToString(sum[:])
			}
		})
	})
}
