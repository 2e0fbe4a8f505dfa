package fsm

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
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
	switch rapid.IntRange(0, 15).Draw(t, "kind") {
	case 0, 1, 2:
		tk := tok(name, "")
		tk.Path = rapid.SampledFrom(paths).Draw(t, "path")
		tk.Role = rapid.SampledFrom([]string{"", "", "r", "rx"}).Draw(t, "token_role")
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
	case 9:
		if rapid.Bool().Draw(t, "ident") {
			return SetClusterIdent{ClusterID: name, IndexKey: []byte(name)}
		}
		c := InitRoot{Token: tok(name, ""), Now: now}
		if rapid.Bool().Draw(t, "seed_default") {
			c.DefaultPolicyText = "seeded-" + name
		}
		return c
	case 10:
		pol := rapid.SampledFrom(policyNames).Draw(t, "policy")
		if rapid.Bool().Draw(t, "delete_policy") {
			return DeletePolicy{Name: pol}
		}
		return SetPolicy{Name: pol, Text: "text-" + name, Now: now}
	case 11:
		role := rapid.SampledFrom(roleNames).Draw(t, "role")
		if rapid.Bool().Draw(t, "delete_role") {
			return DeleteRole{Name: role}
		}
		return SetRole{Role: Role{Name: role, Orphan: rapid.Bool().Draw(t, "orphan"),
			AllowedPolicies: rapid.SampledFrom([][]string{nil, {}, {"dev"}}).Draw(t, "allowed"), PathSuffix: name}}
	case 12, 13:
		return RevokePrefix{Prefix: rapid.SampledFrom(prefixes).Draw(t, "prefix"), Now: now}
	case 14:
		if rapid.IntRange(0, 2).Draw(t, "prune") == 0 {
			return PruneBatchKeys{Before: now}
		}
		k := keyBytes(byte(rapid.IntRange('a', 'c').Draw(t, "key_byte")))
		if rapid.IntRange(0, 9).Draw(t, "short_key") == 0 {
			k = k[:16]
		}
		return RotateBatchKey{KeyID: uint32(rapid.IntRange(0, 4).Draw(t, "key_id")), Key: k, Now: now}
	default:
		return Tidy{Now: now}
	}
}

// Pools for the issue-3 commands: creation paths that nest and share
// string prefixes without sharing segments, prefixes to revoke (including
// trailing-slash and invalid ones), and policy/role names including the
// reserved and empty ones.
var (
	paths       = []string{"", "auth/token/create", "auth/token/create/r", "auth/token/create/r/s", "auth/token/create/rx", "auth/token/create-orphan"}
	prefixes    = []string{"", "/", "auth/token/create", "auth/token/create/r", "auth/token/create/r/", "auth/token/create/r/s", "auth/token/create/rx", "auth/token/cre"}
	policyNames = []string{"", "root", "default", "dev", "ops"}
	roleNames   = []string{"", "r", "rx"}
)

// prefixDoomed is what a RevokePrefix must remove: the subtrees of every
// token whose path matches, computed by a full scan (the model) rather than
// the index.
func (f *FSM) prefixDoomed(prefix string) []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	prefix = trimPrefix(prefix)
	seen := map[string]bool{}
	var out []string
	for h, t := range f.st.tokenMap() {
		if !pathMatches(t.Path, prefix) {
			continue
		}
		for _, d := range f.subtreeLocked(h) {
			if !seen[d] {
				seen[d] = true
				out = append(out, d)
			}
		}
	}
	return out
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
			case RevokePrefix:
				doomed = f.prefixDoomed(c.Prefix)
			}
			primaryBefore, _ := f.BatchKeys()
			policyVersion := f.PolicyVersion()

			r := f.Apply(uint64(i+1), entry)
			if r.Err != nil && f.Hash() != before {
				rt.Fatalf("rejected %T (%v) changed the state", c, r.Err)
			}
			checkIssue3Effects(rt, f, c, r, primaryBefore, policyVersion)
			if err := checkInvariants(f); err != nil {
				rt.Fatalf("after %T: %v", c, err)
			}
			for _, d := range doomed {
				if _, ok := f.Token(d); ok {
					rt.Fatalf("%T left descendant %s", c, shortHash(d))
				}
			}
			if r.Err == nil && len(doomed) != r.Revoked {
				switch c.(type) {
				case RevokeTree, RevokePrefix:
					rt.Fatalf("%T: Revoked %d, doomed %d", c, r.Revoked, len(doomed))
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
	return f.subtreeLocked(hash)
}

// subtreeLocked is subtreeOf; the caller holds mu.
func (f *FSM) subtreeLocked(hash string) []string {
	k, ok := keyOf(hash)
	if !ok {
		return nil
	}
	var out []string
	for _, d := range f.st.subtree(k) {
		out = append(out, d.String())
	}
	return out
}

// checkIssue3Effects checks what one applied policy, role, keyring, prefix or
// tidy command must have done.
func checkIssue3Effects(rt *rapid.T, f *FSM, c Command, r Result, primaryBefore uint32, policyVersion uint64) {
	if v := f.PolicyVersion(); v < policyVersion {
		rt.Fatalf("PolicyVersion went back from %d to %d", policyVersion, v)
	}
	switch c := c.(type) {
	case SetPolicy:
		if text, ok := f.Policy(c.Name); r.Err == nil && (!ok || text != c.Text || f.PolicyVersion() == policyVersion) {
			rt.Fatalf("SetPolicy %q: stored %q %v", c.Name, text, ok)
		}
		if (c.Name == "root" || c.Name == "") != (r.Err != nil) {
			rt.Fatalf("SetPolicy %q: err %v", c.Name, r.Err)
		}
	case DeletePolicy:
		if _, ok := f.Policy(c.Name); r.Err == nil && ok {
			rt.Fatalf("DeletePolicy %q: still stored", c.Name)
		}
		if (c.Name == "root" || c.Name == "default") != (r.Err != nil) {
			rt.Fatalf("DeletePolicy %q: err %v", c.Name, r.Err)
		}
	case SetRole:
		if got, ok := f.Role(c.Role.Name); r.Err == nil && (!ok || got.Orphan != c.Role.Orphan) {
			rt.Fatalf("SetRole %q: stored %+v %v", c.Role.Name, got, ok)
		}
	case DeleteRole:
		if _, ok := f.Role(c.Name); ok || r.Err != nil {
			rt.Fatalf("DeleteRole %q: still stored (err %v)", c.Name, r.Err)
		}
	case RotateBatchKey:
		primary, keys := f.BatchKeys()
		if r.Err == nil && (primary != c.KeyID || !bytes.Equal(keys[c.KeyID], c.Key)) {
			rt.Fatalf("RotateBatchKey %d: primary %d", c.KeyID, primary)
		}
		if r.Err == nil && primaryBefore != 0 && keys[primaryBefore] == nil {
			rt.Fatalf("RotateBatchKey dropped the old key %d", primaryBefore)
		}
	case PruneBatchKeys:
		if primary, keys := f.BatchKeys(); primary != primaryBefore || (primary != 0 && keys[primary] == nil) {
			rt.Fatalf("PruneBatchKeys touched the primary %d → %d", primaryBefore, primary)
		}
		for _, k := range f.BatchKeyring() {
			if k.ID != primaryBefore && k.RetiredAt < c.Before {
				rt.Fatalf("PruneBatchKeys kept key %d retired at %d < %d", k.ID, k.RetiredAt, c.Before)
			}
		}
	case RevokePrefix:
		if r.Err == nil {
			if left := f.prefixDoomed(c.Prefix); len(left) != 0 {
				rt.Fatalf("RevokePrefix %q left %d tokens", c.Prefix, len(left))
			}
		}
	case Tidy:
		// Apply keeps every index consistent, so tidy finds nothing.
		if r.Err != nil || r.Tidy == nil || r.Tidy.Total() != 0 {
			rt.Fatalf("Tidy on a consistent state: %+v %v", r.Tidy, r.Err)
		}
	}
}

// corruptKinds are the CorruptIndexForTest kinds that damage only derived
// indexes (not CorruptParentMissing, which loses a primary record).
var corruptKinds = []string{
	CorruptAccessorMissing, CorruptAccessorDangling, CorruptAccessorMismatched,
	CorruptChildrenMissing, CorruptChildrenDangling, CorruptChildrenMismatched,
	CorruptExpiryMissing, CorruptExpiryExtra, CorruptPathMissing, CorruptPathExtra,
}

// TestPropertyTidyRepairs builds a random state, damages one replica's
// indexes at random, and checks that Check sees the damage, that a Tidy
// command repairs exactly what Check reported, and that afterwards the
// damaged replica and an undamaged one fed the same log are identical and
// both pass every invariant. With lost parent records as well, tidy still
// restores every invariant (children become orphans).
func TestPropertyTidyRepairs(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		good, bad := New(), New()
		n := rapid.IntRange(1, 40).Draw(rt, "n")
		for i := 0; i < n; i++ {
			entry, err := Encode(genCommand(rt))
			if err != nil {
				rt.Fatal(err)
			}
			good.Apply(uint64(i+1), entry)
			bad.Apply(uint64(i+1), entry)
		}
		hashes := bad.allHashes()
		if len(hashes) == 0 {
			return
		}
		lossy := rapid.Bool().Draw(rt, "lossy")
		kinds := corruptKinds
		if lossy {
			kinds = append(slices.Clone(corruptKinds), CorruptParentMissing)
		}
		damaged := 0
		for j := rapid.IntRange(1, 6).Draw(rt, "corruptions"); j > 0; j-- {
			target := rapid.SampledFrom(hashes).Draw(rt, "target")
			if CorruptIndexForTest(bad, rapid.SampledFrom(kinds).Draw(rt, "kind"), target) == nil {
				damaged++
			}
		}
		report := bad.Check()
		if damaged > 0 && report.Total() == 0 {
			// No kind undoes another: any damage leaves a repair.
			rt.Fatal("Check missed the damage")
		}
		entry, _ := Encode(Tidy{Now: t0})
		r := bad.Apply(uint64(n+1), entry)
		good.Apply(uint64(n+1), entry)
		if r.Tidy == nil || fmt.Sprint(*r.Tidy) != fmt.Sprint(report) {
			rt.Fatalf("Tidy did something else than Check reported:\n%+v\n%+v", r.Tidy, report)
		}
		if err := checkInvariants(bad); err != nil {
			rt.Fatalf("after tidy: %v", err)
		}
		if !lossy && bad.Hash() != good.Hash() {
			rt.Fatal("tidy of index damage changed the primary state")
		}
		// The repaired replica keeps agreeing with its peer on every later
		// command.
		for i := 0; i < 10; i++ {
			entry, _ := Encode(genCommand(rt))
			bad.Apply(uint64(n+2+i), entry)
			good.Apply(uint64(n+2+i), entry)
			if err := checkInvariants(bad); err != nil {
				rt.Fatalf("after tidy and more commands: %v", err)
			}
		}
		if !lossy && bad.Hash() != good.Hash() {
			rt.Fatal("repaired replica diverged from its peer")
		}
	})
}

// allHashes lists the stored token hashes, sorted (test helper).
func (f *FSM) allHashes() []string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return slices.Sorted(maps.Keys(f.st.tokenMap()))
}
