//go:build !race

package fsm

import (
	"strings"
	"testing"
)

// The race detector makes sync.Pool drop items at random, so this
// allocation count only holds (and only runs) without -race; `make bench`
// reports the same figure (BenchmarkTokenHash).
func TestHasherAllocs(t *testing.T) {
	hs := mustHasher([]byte(strings.Repeat("k", 32)))
	id := "hvs." + strings.Repeat("A", 24)
	hs.Hash(id)
	// One allocation: the result string (a GC emptying the pool between
	// runs may add one more).
	if n := testing.AllocsPerRun(200, func() { hs.Hash(id) }); n > 2 {
		t.Fatalf("Hash allocates %.1f times per call", n)
	}
}
