package chaos

import (
	"strings"
	"testing"
)

func TestBackwardValidates(t *testing.T) {
	v := func(id int64, node int, tok string, inv, done int64, valid bool) *Op {
		return &Op{ID: id, Node: node, Kind: OpValidate, Token: tok, Invoke: inv, Complete: done, Outcome: Ok, Valid: valid}
	}
	ok := []*Op{
		// absent → valid → revoked: forward only.
		v(1, 0, "a", 0, 10, false), v(2, 0, "a", 20, 30, true), v(3, 0, "a", 40, 50, false), v(4, 0, "a", 60, 70, false),
		// overlapping answers are not ordered.
		v(5, 0, "b", 0, 100, true), v(6, 0, "b", 10, 20, false), v(7, 0, "b", 30, 40, true),
		// another node's answers are another sequence.
		v(8, 0, "c", 0, 10, true), v(9, 1, "c", 20, 30, false), v(10, 0, "c", 40, 50, true),
		// consistent reads are not default reads.
		v(11, 0, "d", 0, 10, true), {ID: 12, Node: 0, Kind: OpValidateConsistent, Token: "d", Invoke: 20, Complete: 30, Outcome: Ok},
		v(13, 0, "d", 40, 50, true),
	}
	if got := backwardValidates(ok); len(got) != 0 {
		t.Fatalf("legal history flagged: %v", got)
	}
	bad := append(ok, v(14, 2, "e", 0, 10, true), v(15, 2, "e", 20, 30, false), v(16, 2, "e", 31, 35, false), v(17, 2, "e", 40, 50, true))
	got := backwardValidates(bad)
	if len(got) != 1 || !strings.Contains(got[0], "e on n3") || !strings.Contains(got[0], "op 14") || !strings.Contains(got[0], "op 17") {
		t.Fatalf("backwards chain: %v", got)
	}
}
