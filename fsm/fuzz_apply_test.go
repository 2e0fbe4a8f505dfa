package fsm

import (
	"strings"
	"testing"
)

// FuzzFSMApply feeds raw bytes to Apply as if raft had committed them. The
// decoders never panic: Decode returns an error for corrupt entries, and
// then Apply halts deliberately (its documented panic, no entry bytes in
// the message) without touching the state — or skips a skippable unknown
// type. Anything that decodes applies and keeps the invariants.
func FuzzFSMApply(f *testing.F) {
	for _, e := range goldenEntries(f) {
		f.Add(e)
		if len(e) > 3 {
			f.Add(e[:len(e)/2])                             // torn
			f.Add(append([]byte{e[0], e[1] + 1}, e[2:]...)) // unknown version
			f.Add(append([]byte{e[0] | byte(Skippable)}, e[1:]...))
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0})
	f.Add([]byte{0xff, 1, '{'})
	f.Fuzz(func(t *testing.T, entry []byte) {
		_, decErr := Decode(entry) // must not panic
		for _, fsm := range []*FSM{New(), sampleFSM(t)} {
			before, applied := fsm.Hash(), fsm.LastApplied()
			halted := func() (halted bool) {
				defer func() {
					if r := recover(); r != nil {
						msg, _ := r.(string)
						if !strings.HasPrefix(msg, "fsm: cannot apply committed entry") {
							t.Fatalf("Apply panicked with something other than the deliberate halt: %v", r)
						}
						halted = true
					}
				}()
				fsm.Apply(applied+1, entry)
				return false
			}()
			if halted {
				if decErr == nil {
					t.Fatal("Apply halted on an entry that decodes")
				}
				if fsm.Hash() != before || fsm.LastApplied() != applied {
					t.Fatal("a halted Apply changed the state")
				}
				continue
			}
			if decErr != nil && fsm.Hash() != before {
				t.Fatal("a skipped entry changed the state")
			}
			if err := checkInvariants(fsm); err != nil {
				t.Fatalf("invariants: %v", err)
			}
		}
	})
}
