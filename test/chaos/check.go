package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Violation is one finding of a checker.
type Violation struct {
	Checker string `json:"checker"`
	// At is the monotonic time (ns since the run started) the violation
	// refers to, for attributing it to a fault; -1 when it has none.
	At     int64  `json:"at_ns"`
	Detail string `json:"detail"`
}

// Checker names.
const (
	CheckLinear    = "linearizable"
	CheckLost      = "lost-or-undone"
	CheckRevokeVis = "revocation-visibility"
	CheckStale     = "staleness"
	CheckConverge  = "convergence"
	CheckLeader    = "one-leader-per-term"
	CheckCrash     = "crash-or-panic"
	CheckHealthy   = "healthy"
	CheckNemesis   = "nemesis-error"
	CheckServerErr = "no-500"
)

// Token states of the linearizability model.
const (
	stAbsent  = 'a'
	stValid   = 'v'
	stRevoked = 'r'
)

// linInput is one operation on a token family, for porcupine.
type linInput struct {
	Kind  string
	Index int
}

// linOutput is its outcome: ok, fail or info; Valid for reads.
type linOutput struct {
	Outcome string
	Valid   bool
}

// familyModel is the sequential specification of one token family: a
// parent (index 0) and its children. State is a string with one byte per
// index (absent, valid, revoked), so == compares states.
var familyModel = porcupine.Model{
	Init: func() any { return strings.Repeat(string(rune(stAbsent)), MaxChildren+1) },
	Step: func(state, input, output any) (bool, any) {
		s := []byte(state.(string))
		in, out := input.(linInput), output.(linOutput)
		switch in.Kind {
		case OpCreate, OpChildCreate:
			canCreate := s[in.Index] == stAbsent && (in.Index == 0 || s[0] == stValid)
			switch out.Outcome {
			case Ok:
				if !canCreate {
					return false, state
				}
				s[in.Index] = stValid
			case Info:
				// Linearized here it took effect; porcupine may also place
				// it after everything else (never happened).
				if canCreate {
					s[in.Index] = stValid
				}
			}
			return true, string(s)
		case OpRevoke, OpRevokeAccessor:
			if out.Outcome == Fail {
				return true, state
			}
			revoke := func(i int) {
				if s[i] == stValid {
					s[i] = stRevoked
				}
			}
			revoke(in.Index)
			if in.Index == 0 {
				for i := 1; i <= MaxChildren; i++ {
					revoke(i)
				}
			}
			return true, string(s)
		case OpRenew:
			if out.Outcome == Ok && s[in.Index] != stValid {
				return false, state
			}
			return true, state
		case OpValidateConsistent:
			return (s[in.Index] == stValid) == out.Valid, state
		}
		return true, state
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		res := out.Outcome
		if in.Kind == OpValidateConsistent {
			res = map[bool]string{true: "valid", false: "invalid"}[out.Valid]
		}
		return fmt.Sprintf("%s(t%d) -> %s", in.Kind, in.Index, res)
	},
	DescribeState: func(state any) string { return state.(string) },
}

// CheckLinearizable checks every family's writes and consistent reads with
// porcupine. On a violation it writes the family's history and porcupine's
// HTML visualisation into dir.
func CheckLinearizable(ops []*Op, dir string, timeout time.Duration) []Violation {
	byFam := make(map[int][]*Op)
	var end int64
	for _, op := range ops {
		end = max(end, op.Complete)
		switch op.Kind {
		case OpValidate:
			continue // default reads are checked for staleness, not here
		case OpValidateConsistent:
			if op.Outcome != Ok {
				continue // a read with unknown result constrains nothing
			}
		}
		byFam[op.Family] = append(byFam[op.Family], op)
	}
	fams := make([]int, 0, len(byFam))
	for f := range byFam {
		fams = append(fams, f)
	}
	sort.Ints(fams)
	var out []Violation
	for _, f := range fams {
		hist := make([]porcupine.Operation, 0, len(byFam[f]))
		// Every operation runs in its own goroutine: one visualisation row
		// per operation, numbered from 0 within the family.
		for i, op := range byFam[f] {
			ret := op.Complete
			if op.Outcome != Ok && op.Outcome != Fail {
				ret = end + 1 // indeterminate: may take effect any time later
			}
			hist = append(hist, porcupine.Operation{
				ClientId: i, Call: op.Invoke, Return: ret,
				Input:  linInput{Kind: op.Kind, Index: op.Index},
				Output: linOutput{Outcome: op.Outcome, Valid: op.Valid},
			})
		}
		res, info := porcupine.CheckOperationsVerbose(familyModel, hist, timeout)
		if res == porcupine.Ok {
			continue
		}
		v := Violation{Checker: CheckLinear, At: byFam[f][0].Invoke,
			Detail: fmt.Sprintf("family f%d: porcupine says %s", f, res)}
		if res == porcupine.Unknown {
			v.Detail += " (check timed out)"
		}
		if dir != "" {
			base := filepath.Join(dir, fmt.Sprintf("linearizability-f%d", f))
			_ = porcupine.VisualizePath(familyModel, info, base+".html")
			_ = writeOps(base+".jsonl", byFam[f])
			v.Detail += "; see " + base + ".html"
		}
		out = append(out, v)
	}
	return out
}

func writeOps(path string, ops []*Op) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	for _, op := range ops {
		_ = enc.Encode(op)
	}
	return f.Close()
}

// tokenOps indexes a history by token.
type tokenOps struct {
	creates []*Op
	revokes []*Op // its own revokes (by token or accessor)
	reads   []*Op
	parent  string // family parent's token ID for a child
}

func indexTokens(ops []*Op) (map[string]*tokenOps, map[int]string) {
	toks := make(map[string]*tokenOps)
	parents := make(map[int]string)
	get := func(id string) *tokenOps {
		t := toks[id]
		if t == nil {
			t = &tokenOps{}
			toks[id] = t
		}
		return t
	}
	for _, op := range ops {
		if op.Index == 0 {
			parents[op.Family] = op.Token
		}
	}
	for _, op := range ops {
		t := get(op.Token)
		if op.Index > 0 {
			t.parent = parents[op.Family]
		}
		switch op.Kind {
		case OpCreate, OpChildCreate:
			t.creates = append(t.creates, op)
		case OpRevoke, OpRevokeAccessor:
			t.revokes = append(t.revokes, op)
		case OpValidate, OpValidateConsistent:
			t.reads = append(t.reads, op)
		}
	}
	return toks, parents
}

// covering returns every revoke that applies to token t: its own and its
// parent's (a parent's revoke cascades).
func covering(toks map[string]*tokenOps, t *tokenOps) []*Op {
	out := append([]*Op(nil), t.revokes...)
	if t.parent != "" {
		if p := toks[t.parent]; p != nil {
			out = append(out, p.revokes...)
		}
	}
	return out
}

// StaleStats summarises the staleness of default reads.
type StaleStats struct {
	// RevokedValid counts default reads answering valid after a covering
	// revoke was acknowledged (the fence says there are none).
	RevokedValid int
	// MissingCreate lists, per default read that missed an acknowledged
	// create, how long before the read's start the create was acknowledged.
	MissingCreate []time.Duration
}

// CheckVisibility checks default (and consistent) reads against
// acknowledged revokes and default reads against acknowledged creates:
// after a revoke's 2xx no read that starts later may answer valid; a read
// may miss a create acknowledged at most maxStale + 250 ms before it
// started (RELIABILITY C2).
func CheckVisibility(ops []*Op, maxStale time.Duration) ([]Violation, StaleStats) {
	toks, _ := indexTokens(ops)
	var out []Violation
	var st StaleStats
	bound := maxStale + 250*time.Millisecond
	for id, t := range toks {
		cov := covering(toks, t)
		firstAck := int64(math.MaxInt64)
		for _, r := range cov {
			if r.Outcome == Ok {
				firstAck = min(firstAck, r.Complete)
			}
		}
		firstRevokeInvoke := int64(math.MaxInt64)
		for _, r := range cov {
			firstRevokeInvoke = min(firstRevokeInvoke, r.Invoke)
		}
		createAck := int64(math.MaxInt64)
		for _, c := range t.creates {
			if c.Outcome == Ok {
				createAck = min(createAck, c.Complete)
			}
		}
		for _, rd := range t.reads {
			if rd.Outcome != Ok {
				continue
			}
			if rd.Valid && rd.Invoke > firstAck {
				st.RevokedValid++
				out = append(out, Violation{Checker: CheckRevokeVis, At: rd.Invoke, Detail: fmt.Sprintf(
					"%s of %s on n%d answered valid %s after a covering revoke was acknowledged (op %d)",
					rd.Kind, id, rd.Node+1, time.Duration(rd.Invoke-firstAck), rd.ID)})
			}
			if rd.Kind == OpValidate && !rd.Valid && rd.Invoke > createAck && rd.Complete < firstRevokeInvoke {
				stale := time.Duration(rd.Invoke - createAck)
				st.MissingCreate = append(st.MissingCreate, stale)
				if stale > bound {
					out = append(out, Violation{Checker: CheckStale, At: rd.Invoke, Detail: fmt.Sprintf(
						"default read of %s on n%d missed a create acknowledged %s before it started (bound %s, op %d)",
						id, rd.Node+1, stale, bound, rd.ID)})
				}
			}
		}
	}
	return out, st
}

// Expectation is what the final check requires of one token.
type Expectation struct {
	Token    string
	Accessor string
	// MustValid: its create was acknowledged and no revoke covering it was
	// ever sent. MustInvalid: a covering revoke was acknowledged.
	MustValid, MustInvalid bool
}

// Expectations derives the final ledger from the history.
func Expectations(ops []*Op) []Expectation {
	toks, _ := indexTokens(ops)
	var out []Expectation
	for id, t := range toks {
		e := Expectation{Token: id}
		acked := false
		for _, c := range t.creates {
			if c.Outcome == Ok {
				acked, e.Accessor = true, c.Accessor
			}
		}
		cov := covering(toks, t)
		for _, r := range cov {
			if r.Outcome == Ok {
				e.MustInvalid = true
			}
		}
		e.MustValid = acked && len(cov) == 0
		if e.MustValid || e.MustInvalid {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Token < out[j].Token })
	return out
}

// LeaderTerms parses the node logs for "gained leadership" lines and
// returns, per term, the nodes that took leadership in it.
func LeaderTerms(logs map[string]string) (map[uint64][]string, error) {
	terms := make(map[uint64][]string)
	for node, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			if !strings.Contains(string(line), "gained leadership") {
				continue
			}
			var l struct {
				Msg  string `json:"@message"`
				Term uint64 `json:"term"`
			}
			if json.Unmarshal(line, &l) == nil && l.Msg == "gained leadership" {
				terms[l.Term] = append(terms[l.Term], node)
			}
		}
		f.Close()
	}
	return terms, nil
}

// CheckLeaders reports every term with more than one distinct leader.
func CheckLeaders(terms map[uint64][]string) []Violation {
	var out []Violation
	for term, nodes := range terms {
		distinct := map[string]bool{}
		for _, n := range nodes {
			distinct[n] = true
		}
		if len(distinct) > 1 {
			out = append(out, Violation{Checker: CheckLeader, At: -1,
				Detail: fmt.Sprintf("term %d had leaders %v", term, nodes)})
		}
	}
	return out
}

// panicMarkers are the lines a crashing Go process (or the race detector)
// writes.
var panicMarkers = []string{"panic:", "fatal error:", "WARNING: DATA RACE"}

// CheckLogs reports every panic line in the node logs.
func CheckLogs(logs map[string]string) []Violation {
	var out []Violation
	for node, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			out = append(out, Violation{Checker: CheckCrash, At: -1, Detail: err.Error()})
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			for _, m := range panicMarkers {
				if strings.HasPrefix(line, m) || (m == "WARNING: DATA RACE" && strings.Contains(line, m)) {
					out = append(out, Violation{Checker: CheckCrash, At: -1,
						Detail: fmt.Sprintf("%s log: %s", node, line[:min(len(line), 300)])})
				}
			}
		}
		f.Close()
	}
	return out
}

// CheckServerErrors reports every answer with a 5xx other than 503: the
// product answers overload and missing leaders with a retryable 503, so a
// 500 (or 502, 504) is a bug.
func CheckServerErrors(ops []*Op) []Violation {
	var out []Violation
	for _, op := range ops {
		if op.Status >= 500 && op.Status != 503 {
			out = append(out, Violation{Checker: CheckServerErr, At: op.Invoke, Detail: fmt.Sprintf(
				"%s of %s on n%d answered %d: %s (op %d)", op.Kind, op.Token, op.Node+1, op.Status, op.Error, op.ID)})
		}
	}
	return out
}

// ErrorClasses counts the answers that were not a definite success, by
// class: the HTTP status, or "timeout" and "transport" for no answer.
func ErrorClasses(ops []*Op) map[string]int {
	out := map[string]int{}
	for _, op := range ops {
		if op.Outcome == Ok {
			continue
		}
		switch {
		case op.Status != 0:
			out[fmt.Sprintf("%s:%d", op.Kind, op.Status)]++
		case op.Error == "timeout":
			out[op.Kind+":timeout"]++
		default:
			out[op.Kind+":transport"]++
		}
	}
	return out
}
