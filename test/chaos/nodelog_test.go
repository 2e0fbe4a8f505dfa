package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReadLogLinesAndElectionCause(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, lines ...string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	logs := map[string]string{
		"n2": write("n2.log",
			`{"@message":"gained leadership","@timestamp":"2026-12-02T02:45:37.026067Z","node_id":"n2","term":5}`,
			`not json, gained leadership`,
			`{"@message":"failed to contact","@timestamp":"2026-12-02T02:45:46.498000Z","server-id":"n3","time":300115359}`,
			`{"@message":"failed to contact quorum of nodes, stepping down","@timestamp":"2026-12-02T02:45:46.498100Z"}`,
			`{"@message":"lost leadership","@timestamp":"2026-12-02T02:45:46.498528Z","node_id":"n2"}`,
			`{"@message":"gained leadership","@timestamp":"2026-12-02T02:45:47.335667Z","node_id":"n2","term":6}`),
		"n1": write("n1.log",
			`{"@message":"lost leadership","@timestamp":"2026-12-02T02:45:36.336407Z","node_id":"n1"}`),
	}
	lines, err := ReadLogLines(logs, "gained leadership", "lost leadership", "failed to contact",
		"failed to contact quorum of nodes, stepping down")
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 6 {
		t.Fatalf("%d lines: %+v", len(lines), lines)
	}
	var gain LogLine
	for _, l := range lines {
		if l.Message == "gained leadership" && l.Field("term") == "6" {
			gain = l
		}
	}
	if gain.Node != "n2" || gain.At.Format(time.RFC3339Nano) != "2026-12-02T02:45:47.335667Z" {
		t.Fatalf("gain %+v", gain)
	}
	// n2 lost contact with n3: not the rejoining n1's doing …
	if byOthers, why := electionCause(lines, gain, "n1"); !byOthers || !strings.Contains(why, "[n3]") {
		t.Fatalf("rejoiner n1: %v %s", byOthers, why)
	}
	// … but it is when the node it lost contact with is the rejoiner.
	if byOthers, why := electionCause(lines, gain, "n3"); byOthers {
		t.Fatalf("rejoiner n3: %v %s", byOthers, why)
	}
	// A step-down without failed contact (a higher term) is the rejoiner's.
	var noContact []LogLine
	for _, l := range lines {
		if !strings.HasPrefix(l.Message, "failed to contact") {
			noContact = append(noContact, l)
		}
	}
	if byOthers, _ := electionCause(noContact, gain, "n1"); byOthers {
		t.Fatal("a step-down for another reason was not attributed to the rejoiner")
	}
}
