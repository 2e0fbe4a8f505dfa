package chaos

import (
	"fmt"
	"sort"
)

// backwardValidates finds default validates that went backwards on one
// node for one token: a valid answer, then (invoked after it completed) an
// invalid one, then (invoked after that completed) a valid one again. A
// node's state only moves forward and a revoked token never comes back, so
// any such chain is a node serving an older state than it served before.
func backwardValidates(ops []*Op) []string {
	type key struct {
		node  int
		token string
	}
	byKey := map[key][]*Op{}
	for _, op := range ops {
		if op.Kind == OpValidate && op.Outcome == Ok {
			k := key{op.Node, op.Token}
			byKey[k] = append(byKey[k], op)
		}
	}
	var out []string
	for k, list := range byKey {
		sort.Slice(list, func(i, j int) bool { return list[i].Invoke < list[j].Invoke })
		const never = int64(1 << 62)
		validDone, invalidDone := never, never
		var firstValid, invalid *Op
		for _, op := range list {
			switch {
			case op.Valid && op.Invoke > invalidDone:
				out = append(out, fmt.Sprintf("validate of %s on n%d went backwards: valid (op %d), invalid (op %d), valid again (op %d)",
					k.token, k.node+1, firstValid.ID, invalid.ID, op.ID))
				invalidDone = never // report each chain once
			case op.Valid:
				if op.Complete < validDone {
					validDone, firstValid = op.Complete, op
				}
			case op.Invoke > validDone && op.Complete < invalidDone:
				invalidDone, invalid = op.Complete, op
			}
		}
	}
	sort.Strings(out)
	return out
}
