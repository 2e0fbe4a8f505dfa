package fsm

import (
	"fmt"
	"testing"
)

// applyBench prepares one Apply benchmark: given the number of tokens to
// store first and b.N, it returns the state to apply to and b.N encoded
// entries, each of which must succeed.
type applyBench func(tb testing.TB, base, n int) (*FSM, [][]byte)

// benchBase is the number of tokens stored before each Apply benchmark.
const benchBase = 100_000

// applyBenches has one entry per command type (TestEveryCommandHasAnApplyBenchmark).
var applyBenches = map[Type]applyBench{
	TypeCreateToken: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, _ := populated(base)
		return f, entries(tb, n, func(i int) Command { return CreateToken{Token: tok(fmt.Sprintf("new%d", i), ""), Now: t0} })
	},
	TypeRenewToken: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, hashes := populated(base)
		return f, entries(tb, n, func(i int) Command {
			return RenewToken{Hash: hashes[i%len(hashes)], Increment: 600, MaxTTL: DefaultMaxTTL, Now: t0 + int64(i)}
		})
	},
	TypeRevokeTree: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, leaves := withLeaves(base, n, false)
		return f, entries(tb, n, func(i int) Command { return RevokeTree{Hash: leaves[i], Now: t0} })
	},
	TypeRevokeOrphan: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, parents := withLeaves(base, n, true)
		return f, entries(tb, n, func(i int) Command { return RevokeOrphan{Hash: parents[i], Now: t0} })
	},
	TypeRevokeAccessor: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, leaves := withLeaves(base, n, false)
		return f, entries(tb, n, func(i int) Command { return RevokeAccessor{Accessor: f.st.tokenMap()[leaves[i]].Accessor, Now: t0} })
	},
	TypeUseToken: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, hashes := populated(base)
		return f, entries(tb, n, func(int) Command { return UseToken{Hash: hashes[1], Now: t0} })
	},
	TypeReapExpired: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, _ := withLeaves(base, n, false)
		// Every token expires at t0+hour: each command reaps one.
		return f, entries(tb, n, func(int) Command { return ReapExpired{Now: t0 + 2*hour, Limit: 1} })
	},
	TypeBatch: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		// What the group commit writes under load: 64 creates per entry.
		f, _ := populated(base)
		return f, entries(tb, n, func(i int) Command {
			cmds := make([]Command, 64)
			for j := range cmds {
				cmds[j] = CreateToken{Token: tok(fmt.Sprintf("new%d-%d", i, j), ""), Now: t0}
			}
			return Batch{Commands: cmds}
		})
	},
	TypeInitRoot: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		// Only the first succeeds; the rest measure the rejection, which is
		// what a retried proposal costs.
		f, _ := populated(base)
		return f, entries(tb, n, func(int) Command { return rootInit("bench-root") })
	},
	TypeSetClusterIdent: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, _ := populated(base)
		return f, entries(tb, n, func(int) Command { return SetClusterIdent{ClusterID: "c", IndexKey: keyBytes('i')} })
	},
	TypeSetGossipKeyring: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		// Each entry replaces the keyring the one before it set (Prev is
		// the version it expects).
		f, _ := populated(base)
		return f, entries(tb, n, func(i int) Command {
			return SetGossipKeyring{Keys: [][]byte{keyBytes('g'), keyBytes('h')}, Prev: uint64(i)}
		})
	},
	TypeRemovePeer: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		// Distinct servers, so the list grows to its bound and then drops
		// the oldest.
		f, _ := populated(base)
		return f, entries(tb, n, func(i int) Command {
			return RemovePeer{ServerID: fmt.Sprintf("n%d", i), InstanceID: "inst", Time: t0}
		})
	},
	TypeSetPolicy: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, _ := populated(base)
		return f, entries(tb, n, func(i int) Command {
			return SetPolicy{Name: fmt.Sprintf("p%d", i%100), Text: `path "secret/*" { capabilities = ["read", "list"] }`, Now: t0}
		})
	},
	TypeDeletePolicy: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, _ := populated(base)
		for i := 0; i < n; i++ {
			f.st.setPolicy(fmt.Sprintf("p%d", i), "x", t0)
		}
		return f, entries(tb, n, func(i int) Command { return DeletePolicy{Name: fmt.Sprintf("p%d", i)} })
	},
	TypeSetRole: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, _ := populated(base)
		return f, entries(tb, n, func(i int) Command {
			r := goldenRole()
			r.Name = fmt.Sprintf("r%d", i%100)
			return SetRole{Role: r}
		})
	},
	TypeDeleteRole: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, _ := populated(base)
		for i := 0; i < n; i++ {
			r := goldenRole()
			r.Name = fmt.Sprintf("r%d", i)
			f.st.roles[r.Name] = &r
		}
		return f, entries(tb, n, func(i int) Command { return DeleteRole{Name: fmt.Sprintf("r%d", i)} })
	},
	TypeRevokePrefix: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, _ := populated(base)
		for i := 0; i < n; i++ {
			t := tok(fmt.Sprintf("pre%d", i), "")
			t.Path = fmt.Sprintf("auth/token/create/r%d", i)
			f.st.insert(&t)
		}
		return f, entries(tb, n, func(i int) Command { return RevokePrefix{Prefix: fmt.Sprintf("auth/token/create/r%d", i), Now: t0} })
	},
	TypeRotateBatchKey: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, _ := populated(base)
		return f, entries(tb, n, func(i int) Command { return rotate(uint32(i+1), byte(i), t0+int64(i)) })
	},
	TypePruneBatchKeys: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, _ := populated(base)
		mustApply(tb, f, rotate(1, 'a', t0), rotate(2, 'b', t0+sec), rotate(3, 'c', t0+2*sec))
		// Nothing is old enough to prune: each command scans the keyring.
		return f, entries(tb, n, func(int) Command { return PruneBatchKeys{Before: t0} })
	},
	TypeTidy: func(tb testing.TB, base, n int) (*FSM, [][]byte) {
		f, _ := populated(base)
		return f, entries(tb, n, func(int) Command { return Tidy{Now: t0} })
	},
}

func entries(tb testing.TB, n int, cmd func(i int) Command) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = mustEncode(tb, cmd(i))
	}
	return out
}

// withLeaves is populated(base) plus n extra tokens with one child each; it
// returns the extra tokens (orphanParents) or their children.
func withLeaves(base, n int, orphanParents bool) (*FSM, []string) {
	f, _ := populated(base)
	out := make([]string, n)
	for i := 0; i < n; i++ {
		p := tok(fmt.Sprintf("lp%d", i), "")
		c := tok(fmt.Sprintf("lc%d", i), "")
		c.Parent = p.Hash
		f.st.insert(&p)
		f.st.insert(&c)
		out[i] = c.Hash
		if orphanParents {
			out[i] = p.Hash
		}
	}
	return f, out
}

// BenchmarkApply applies each command type to a state of 100,000 tokens
// (STYLE §9: Apply of each command); entries are decoded inside Apply, as
// raft hands them over.
func BenchmarkApply(b *testing.B) {
	for _, typ := range RegisteredTypes() {
		setup := applyBenches[typ]
		b.Run(TypeName(typ), func(b *testing.B) {
			f, es := setup(b, benchBase, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i, e := range es {
				r := f.Apply(uint64(i+1), e)
				if r.Err != nil && typ != TypeInitRoot {
					b.Fatal(r.Err)
				}
			}
		})
	}
}

// TestEveryCommandHasAnApplyBenchmark keeps BenchmarkApply complete, and
// runs each setup once with two entries so none rots.
func TestEveryCommandHasAnApplyBenchmark(t *testing.T) {
	for _, typ := range RegisteredTypes() {
		setup, ok := applyBenches[typ]
		if !ok {
			t.Errorf("no Apply benchmark for %s", TypeName(typ))
			continue
		}
		if testing.Short() {
			continue
		}
		f, es := setup(t, 100, 2)
		for i, e := range es {
			if r := f.Apply(uint64(i+1), e); r.Err != nil && !(typ == TypeInitRoot && i > 0) {
				t.Errorf("%s entry %d: %v", TypeName(typ), i, r.Err)
			}
		}
	}
}
