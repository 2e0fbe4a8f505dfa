package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// hist builds a history from compact op descriptions; times are in ms.
type hop struct {
	kind     string
	idx      int
	call     int64
	ret      int64
	outcome  string
	valid    bool
	accessor string
	node     int
}

func history(fam int, ops ...hop) []*Op {
	var out []*Op
	for i, h := range ops {
		out = append(out, &Op{ID: int64(i + 1), Process: i, Kind: h.kind, Family: fam, Index: h.idx,
			Token: tokenName(fam, h.idx), Invoke: h.call * int64(time.Millisecond),
			Complete: h.ret * int64(time.Millisecond), Outcome: h.outcome, Valid: h.valid,
			Accessor: h.accessor, Node: h.node})
	}
	return out
}

func tokenName(fam, idx int) string {
	return "tok-f" + string(rune('0'+fam)) + "-t" + string(rune('0'+idx))
}

func TestLinearizableAcceptsLegalHistory(t *testing.T) {
	ops := history(0,
		hop{kind: OpCreate, idx: 0, call: 0, ret: 10, outcome: Ok},
		hop{kind: OpChildCreate, idx: 1, call: 11, ret: 20, outcome: Ok},
		hop{kind: OpValidateConsistent, idx: 1, call: 21, ret: 22, outcome: Ok, valid: true},
		// An indeterminate create that may or may not have happened.
		hop{kind: OpChildCreate, idx: 2, call: 23, ret: 30, outcome: Info},
		hop{kind: OpValidateConsistent, idx: 2, call: 31, ret: 32, outcome: Ok, valid: false},
		hop{kind: OpValidateConsistent, idx: 2, call: 33, ret: 34, outcome: Ok, valid: true},
		hop{kind: OpRenew, idx: 1, call: 35, ret: 36, outcome: Ok},
		// A read concurrent with the revoke may see either state.
		hop{kind: OpRevoke, idx: 0, call: 40, ret: 50, outcome: Ok},
		hop{kind: OpValidateConsistent, idx: 1, call: 41, ret: 45, outcome: Ok, valid: true},
		hop{kind: OpValidateConsistent, idx: 2, call: 51, ret: 52, outcome: Ok, valid: false},
		hop{kind: OpChildCreate, idx: 3, call: 53, ret: 54, outcome: Fail},
	)
	if v := CheckLinearizable(ops, "", 10*time.Second); len(v) != 0 {
		t.Fatalf("legal history reported: %v", v)
	}
}

func TestLinearizableFindsViolations(t *testing.T) {
	cases := map[string][]*Op{
		"revoke undone": history(1,
			hop{kind: OpCreate, idx: 0, call: 0, ret: 10, outcome: Ok},
			hop{kind: OpRevoke, idx: 0, call: 11, ret: 20, outcome: Ok},
			hop{kind: OpValidateConsistent, idx: 0, call: 21, ret: 22, outcome: Ok, valid: true}),
		"cascade missed": history(2,
			hop{kind: OpCreate, idx: 0, call: 0, ret: 10, outcome: Ok},
			hop{kind: OpChildCreate, idx: 1, call: 11, ret: 20, outcome: Ok},
			hop{kind: OpRevokeAccessor, idx: 0, call: 21, ret: 30, outcome: Ok},
			hop{kind: OpValidateConsistent, idx: 1, call: 31, ret: 32, outcome: Ok, valid: true}),
		"create lost": history(3,
			hop{kind: OpCreate, idx: 0, call: 0, ret: 10, outcome: Ok},
			hop{kind: OpValidateConsistent, idx: 0, call: 11, ret: 12, outcome: Ok, valid: false}),
		"renew of a revoked token": history(4,
			hop{kind: OpCreate, idx: 0, call: 0, ret: 10, outcome: Ok},
			hop{kind: OpRevoke, idx: 0, call: 11, ret: 20, outcome: Ok},
			hop{kind: OpRenew, idx: 0, call: 21, ret: 22, outcome: Ok}),
		"child of a revoked parent": history(5,
			hop{kind: OpCreate, idx: 0, call: 0, ret: 10, outcome: Ok},
			hop{kind: OpRevoke, idx: 0, call: 11, ret: 20, outcome: Ok},
			hop{kind: OpChildCreate, idx: 1, call: 21, ret: 22, outcome: Ok}),
	}
	for name, ops := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			v := CheckLinearizable(ops, dir, 10*time.Second)
			if len(v) != 1 || v[0].Checker != CheckLinear {
				t.Fatalf("want one linearizability violation, got %v", v)
			}
			html, _ := filepath.Glob(filepath.Join(dir, "*.html"))
			jsonl, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
			if len(html) != 1 || len(jsonl) != 1 {
				t.Fatalf("want the visualisation and the history saved, got %v %v", html, jsonl)
			}
			if b, err := os.ReadFile(html[0]); err != nil || len(b) < 100 {
				t.Fatalf("visualisation %s: %d bytes, %v", html[0], len(b), err)
			}
		})
	}
}

func TestVisibilityAndStaleness(t *testing.T) {
	ms := func(d int64) int64 { return d }
	ops := history(0,
		hop{kind: OpCreate, idx: 0, call: 0, ret: ms(10), outcome: Ok},
		// Within the bound: missed a create acknowledged 500 ms earlier.
		hop{kind: OpValidate, idx: 0, call: ms(510), ret: ms(511), outcome: Ok, valid: false},
		// Beyond it (max-stale 1 s + 250 ms).
		hop{kind: OpValidate, idx: 0, call: ms(1400), ret: ms(1401), outcome: Ok, valid: false, node: 2},
		hop{kind: OpRevoke, idx: 0, call: ms(2000), ret: ms(2010), outcome: Ok},
		// Concurrent with the revoke: allowed.
		hop{kind: OpValidate, idx: 0, call: ms(2005), ret: ms(2011), outcome: Ok, valid: true},
		// After the acknowledgement: a violation.
		hop{kind: OpValidate, idx: 0, call: ms(2020), ret: ms(2021), outcome: Ok, valid: true, node: 1},
		// Indeterminate reads say nothing.
		hop{kind: OpValidate, idx: 0, call: ms(2030), ret: ms(2031), outcome: Info},
	)
	v, st := CheckVisibility(ops, time.Second)
	var vis, stale int
	for _, x := range v {
		switch x.Checker {
		case CheckRevokeVis:
			vis++
			if !strings.Contains(x.Detail, "n2") {
				t.Errorf("violation names the wrong node: %s", x.Detail)
			}
		case CheckStale:
			stale++
			if !strings.Contains(x.Detail, "n3") {
				t.Errorf("violation names the wrong node: %s", x.Detail)
			}
		}
	}
	if vis != 1 || stale != 1 || st.RevokedValid != 1 || len(st.MissingCreate) != 2 {
		t.Fatalf("got %d visibility and %d staleness violations, stats %+v: %v", vis, stale, st, v)
	}
}

func TestExpectations(t *testing.T) {
	ops := history(0,
		hop{kind: OpCreate, idx: 0, call: 0, ret: 1, outcome: Ok, accessor: "a0"},
		hop{kind: OpChildCreate, idx: 1, call: 2, ret: 3, outcome: Ok, accessor: "a1"},
		hop{kind: OpChildCreate, idx: 2, call: 2, ret: 3, outcome: Info},
		hop{kind: OpRevoke, idx: 1, call: 4, ret: 5, outcome: Ok},
	)
	ops = append(ops, history(1,
		hop{kind: OpCreate, idx: 0, call: 0, ret: 1, outcome: Ok, accessor: "b0"},
		hop{kind: OpRevoke, idx: 0, call: 4, ret: 5, outcome: Info},
	)...)
	got := map[string]Expectation{}
	for _, e := range Expectations(ops) {
		got[e.Token] = e
	}
	if e := got[tokenName(0, 0)]; !e.MustValid || e.MustInvalid || e.Accessor != "a0" {
		t.Errorf("parent: %+v", e)
	}
	if e := got[tokenName(0, 1)]; e.MustValid || !e.MustInvalid {
		t.Errorf("revoked child: %+v", e)
	}
	if _, ok := got[tokenName(0, 2)]; ok {
		t.Errorf("indeterminate create must not be expected either way")
	}
	if _, ok := got[tokenName(1, 0)]; ok {
		t.Errorf("token with an indeterminate revoke must not be expected either way")
	}
}

func TestLeaderTermsAndLogs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	logs := map[string]string{
		"n1": write("n1.log", `{"@message":"gained leadership","term":3,"node_id":"n1"}`+"\n"+
			`{"@message":"gained leadership","term":5,"node_id":"n1"}`+"\n"),
		"n2": write("n2.log", `{"@message":"gained leadership","term":4,"node_id":"n2"}`+"\n"+
			`{"@message":"gained leadership","term":5,"node_id":"n2"}`+"\n"+
			"panic: runtime error: index out of range\n"),
	}
	terms, err := LeaderTerms(logs)
	if err != nil {
		t.Fatal(err)
	}
	v := CheckLeaders(terms)
	if len(v) != 1 || !strings.Contains(v[0].Detail, "term 5") {
		t.Fatalf("want one violation for term 5, got %v", v)
	}
	if p := CheckLogs(logs); len(p) != 1 || !strings.Contains(p[0].Detail, "n2") {
		t.Fatalf("want the panic of n2, got %v", p)
	}
}

func TestDropRules(t *testing.T) {
	n := &nftNetwork{nodes: 3, addr: func(i int) string { return []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}[i] }}
	rules := n.dropRules(append(Between([]int{0}, []int{1}), Link{2, 2}, Link{0, 1}))
	want := []string{
		"ct direction original ct mark 1 ip daddr 127.0.0.3 drop",
		"ct direction reply ct mark 2 ip saddr 127.0.0.2 drop",
		"ct direction original ct mark 2 ip daddr 127.0.0.2 drop",
		"ct direction reply ct mark 1 ip saddr 127.0.0.3 drop",
	}
	if strings.Join(rules, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rules:\n%s\nwant:\n%s", strings.Join(rules, "\n"), strings.Join(want, "\n"))
	}
	text := string(rulesText(3, rules))
	for k := 1; k <= 3; k++ {
		if !strings.Contains(text, "meta skgid "+string(rune('0'+k))) && !strings.Contains(text, "ct mark set "+string(rune('0'+k))) {
			t.Fatalf("node %d is not marked:\n%s", k, text)
		}
	}
}
