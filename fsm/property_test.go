package fsm

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

// names is the small pool of token names random commands draw from, so that
// parents, duplicates and revokes of existing tokens are frequent.
var names = []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"}

// genCommand draws one random command. Times stay within a few seconds of
// t0 so expiry, renewal caps and reaping all happen.
func genCommand(t *rapid.T) Command {
	name := rapid.SampledFrom(names).Draw(t, "name")
	now := t0 + rapid.Int64Range(0, 12).Draw(t, "now")*sec
	switch rapid.IntRange(0, 9).Draw(t, "kind") {
	case 0, 1, 2:
		tk := tok(name, "")
		if rapid.Bool().Draw(t, "has_parent") {
			tk.Parent = h(rapid.SampledFrom(names).Draw(t, "parent"))
		}
		if rapid.IntRange(0, 9).Draw(t, "dup_accessor") == 0 {
			tk.Accessor = acc(rapid.SampledFrom(names).Draw(t, "accessor"))
		}
		if exp := rapid.Int64Range(0, 10).Draw(t, "expire"); exp == 0 {
			tk.ExpireTime, tk.TTL = 0, 0
		} else {
			tk.ExpireTime, tk.TTL = now+exp*sec, exp
		}
		tk.CreationTime, tk.IssueTime = now, now
		tk.NumUses = rapid.IntRange(0, 3).Draw(t, "num_uses")
		tk.Renewable = rapid.Bool().Draw(t, "renewable")
		tk.Period = rapid.SampledFrom([]int64{0, 0, 3, 30}).Draw(t, "period")
		tk.ExplicitMaxTTL = rapid.SampledFrom([]int64{0, 0, 5, 20}).Draw(t, "explicit_max")
		return CreateToken{Token: tk, Now: now}
	case 3:
		return RenewToken{Hash: h(name), Increment: rapid.Int64Range(0, 20).Draw(t, "increment"),
			MaxTTL: rapid.Int64Range(1, 30).Draw(t, "max_ttl"), Now: now}
	case 4:
		return RevokeTree{Hash: h(name), Now: now}
	case 5:
		return RevokeOrphan{Hash: h(name), Now: now}
	case 6:
		return RevokeAccessor{Accessor: acc(name), Now: now}
	case 7:
		return UseToken{Hash: h(name), Now: now}
	case 8:
		return ReapExpired{Now: now, Limit: rapid.IntRange(0, 3).Draw(t, "limit")}
	default:
		if rapid.Bool().Draw(t, "ident") {
			return SetClusterIdent{ClusterID: name, IndexKey: []byte(name)}
		}
		return InitRoot{Token: tok(name, ""), Now: now}
	}
}

// TestPropertyRandomCommands applies random command sequences and checks,
// after every command, that the indexes agree with the primary state, that
// no token outlives its parent, that a rejected command changed nothing and
// that a revoked subtree is entirely gone; then that snapshot → restore and
// replaying the log into a fresh FSM both reproduce the state exactly.
func TestPropertyRandomCommands(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		f := New()
		var log [][]byte
		n := rapid.IntRange(1, 80).Draw(rt, "n")
		for i := 0; i < n; i++ {
			c := genCommand(rt)
			entry, err := Encode(c)
			if err != nil {
				rt.Fatal(err)
			}
			log = append(log, entry)

			before := f.Hash()
			var doomed []string
			switch c := c.(type) {
			case RevokeTree:
				doomed = f.subtreeOf(c.Hash)
			case RevokeAccessor:
				if tk, ok := f.TokenByAccessor(c.Accessor); ok {
					doomed = f.subtreeOf(tk.Hash)
				}
			}

			r := f.Apply(uint64(i+1), entry)
			if r.Err != nil && f.Hash() != before {
				rt.Fatalf("rejected %T (%v) changed the state", c, r.Err)
			}
			if err := checkInvariants(f); err != nil {
				rt.Fatalf("after %T: %v", c, err)
			}
			for _, d := range doomed {
				if _, ok := f.Token(d); ok {
					rt.Fatalf("%T left descendant %s", c, shortHash(d))
				}
			}
			if r.Err == nil && len(doomed) != r.Revoked {
				if _, isTree := c.(RevokeTree); isTree {
					rt.Fatalf("RevokeTree: Revoked %d, subtree %d", r.Revoked, len(doomed))
				}
			}
			// A valid token's parent is valid too, at any time.
			now := t0 + rapid.Int64Range(0, 14).Draw(rt, "check_now")*sec
			for _, name := range names {
				if tk, ok := f.Valid(h(name), now); ok && tk.Parent != "" {
					if _, ok := f.Valid(tk.Parent, now); !ok {
						rt.Fatalf("token %s valid under an invalid parent", name)
					}
				}
			}
		}

		snap := snapshotBytes(rt, f)
		restored := New()
		if err := restored.Restore(bytes.NewReader(snap)); err != nil {
			rt.Fatal(err)
		}
		if restored.Hash() != f.Hash() || !bytes.Equal(snapshotBytes(rt, restored), snap) {
			rt.Fatal("snapshot → restore changed the state")
		}
		if err := checkInvariants(restored); err != nil {
			rt.Fatal(err)
		}

		replay := New()
		for i, e := range log {
			replay.Apply(uint64(i+1), e)
		}
		if !bytes.Equal(snapshotBytes(rt, replay), snap) {
			rt.Fatal("replaying the log gave a different state")
		}
	})
}

// subtreeOf lists a token's subtree (test helper, read lock).
func (f *FSM) subtreeOf(hash string) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.subtree(hash)
}
