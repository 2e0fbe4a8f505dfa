package fsm

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"
)

// populated returns an FSM holding n tokens: n/100 orphans with 99 children
// each (so reads walk one ancestor), built without Apply for speed.
func populated(n int) (*FSM, []string) {
	f := New()
	hashes := make([]string, 0, n)
	var parent string
	for i := 0; i < n; i++ {
		t := tok(fmt.Sprintf("bench-%d", i), "")
		t.Meta = map[string]string{"app": "bench"}
		if i%100 == 0 {
			parent = t.Hash
		} else {
			t.Parent = parent
		}
		f.st.insert(&t)
		hashes = append(hashes, t.Hash)
	}
	return f, hashes
}

func BenchmarkApplyCreateToken(b *testing.B) {
	entries := make([][]byte, b.N)
	for i := range entries {
		entries[i] = mustEncode(b, CreateToken{Token: tok(fmt.Sprintf("c%d", i), ""), Now: t0})
	}
	f := New()
	b.ReportAllocs()
	b.ResetTimer()
	for i, e := range entries {
		if r := f.Apply(uint64(i+1), e); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

func BenchmarkApplyRenewToken(b *testing.B) {
	f, hashes := populated(100_000)
	entries := make([][]byte, b.N)
	for i := range entries {
		entries[i] = mustEncode(b, RenewToken{Hash: hashes[i%len(hashes)], Increment: 600, MaxTTL: DefaultMaxTTL, Now: t0 + int64(i)})
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i, e := range entries {
		if r := f.Apply(uint64(i+1), e); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

func BenchmarkApplyUseToken(b *testing.B) {
	f, hashes := populated(100_000)
	entry := mustEncode(b, UseToken{Hash: hashes[1], Now: t0})
	_ = hashes
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := f.Apply(uint64(i+1), entry); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

// BenchmarkValid is the validation read path: a child token, one ancestor.
func BenchmarkValid(b *testing.B) {
	f, hashes := populated(100_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := f.Valid(hashes[(i*7919+1)%len(hashes)], t0); !ok {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkValidParallel(b *testing.B) {
	f, hashes := populated(100_000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			if _, ok := f.Valid(hashes[(i*7919+1)%len(hashes)], t0); !ok {
				b.Fatal("invalid")
			}
		}
	})
}

// BenchmarkSnapshot writes a snapshot of 100k tokens (1M with
// TOKEND_BENCH_1M=1); Snapshot is the part taken under the lock.
func BenchmarkSnapshot(b *testing.B) {
	n := 100_000
	if os.Getenv("TOKEND_BENCH_1M") != "" {
		n = 1_000_000
	}
	f, _ := populated(n)
	b.Run(fmt.Sprintf("take_%d", n), func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := f.Snapshot(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run(fmt.Sprintf("write_%d", n), func(b *testing.B) {
		b.ReportAllocs()
		var size int64
		for i := 0; i < b.N; i++ {
			s, _ := f.Snapshot()
			size, _ = s.WriteTo(io.Discard)
		}
		b.ReportMetric(float64(size), "bytes/snapshot")
	})
	b.Run(fmt.Sprintf("restore_%d", n), func(b *testing.B) {
		var buf bytes.Buffer
		s, _ := f.Snapshot()
		s.WriteTo(&buf)
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := New().Restore(bytes.NewReader(buf.Bytes())); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRevokeTree revokes one root with 100k descendants (a wide level
// of 1000 children with 99 children each).
func BenchmarkRevokeTree(b *testing.B) {
	entry := mustEncode(b, RevokeTree{Hash: h("root"), Now: t0})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f := New()
		mustApply(b, f, create("root", ""))
		for j := 0; j < 1000; j++ {
			mid := tok(fmt.Sprintf("m%d", j), "root")
			f.st.insert(&mid)
			insertWide(f, fmt.Sprintf("m%d-", j), mid.Hash, 99)
		}
		b.StartTimer()
		if r := f.Apply(2, entry); r.Revoked != 100_001 {
			b.Fatalf("Revoked = %d", r.Revoked)
		}
	}
}

// BenchmarkRevokePrefix revokes 10,000 tokens created under one role path
// (plus 5,000 children of theirs), in one command, next to 100,000 tokens
// under a path sharing the string prefix but not the segment.
func BenchmarkRevokePrefix(b *testing.B) {
	entry := mustEncode(b, RevokePrefix{Prefix: "auth/token/create/bulk", Now: t0})
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f, _ := populatedPaths(10_000, 100_000)
		b.StartTimer()
		if r := f.Apply(1, entry); r.Revoked != 15_000 {
			b.Fatalf("Revoked = %d", r.Revoked)
		}
	}
}

func BenchmarkApplySetPolicy(b *testing.B) {
	f := New()
	entry := mustEncode(b, SetPolicy{Name: "dev", Text: `path "secret/*" { capabilities = ["read", "list"] }`, Now: t0})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := f.Apply(uint64(i+1), entry); r.Err != nil {
			b.Fatal(r.Err)
		}
	}
}

func BenchmarkPolicyRead(b *testing.B) {
	f := New()
	mustApply(b, f, SetPolicy{Name: "dev", Text: "x"})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = f.PolicyVersion()
		if _, ok := f.Policy("dev"); !ok {
			b.Fatal("missing")
		}
	}
}

func BenchmarkBatchKeyRead(b *testing.B) {
	f := New()
	mustApply(b, f, rotate(1, 'a', t0), rotate(2, 'b', t0))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, ok := f.BatchKey(1); !ok {
			b.Fatal("missing")
		}
	}
}

// BenchmarkCheck walks every index of 100,000 tokens (what Tidy does under
// the write lock).
func BenchmarkCheck(b *testing.B) {
	f, _ := populatedPaths(50_000, 25_000)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := f.Check(); r.Total() != 0 {
			b.Fatalf("repairs on a consistent state: %d", r.Total())
		}
	}
}
