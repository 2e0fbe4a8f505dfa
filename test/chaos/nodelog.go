package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// LogLine is one JSON line of a node log (hclog's JSON format), with the
// fields the scenario figures use.
type LogLine struct {
	Node    string
	At      time.Time
	Message string
	Fields  map[string]any
}

// ReadLogLines returns the lines of the node logs (node ID → path) whose
// message is one of messages, in file order per node.
func ReadLogLines(logs map[string]string, messages ...string) ([]LogLine, error) {
	want := make(map[string]bool, len(messages))
	for _, m := range messages {
		want[m] = true
	}
	var out []LogLine
	for node, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			hit := false
			for m := range want {
				if strings.Contains(string(line), m) {
					hit = true
					break
				}
			}
			if !hit {
				continue
			}
			var fields map[string]any
			if json.Unmarshal(line, &fields) != nil {
				continue
			}
			msg, _ := fields["@message"].(string)
			ts, _ := fields["@timestamp"].(string)
			at, err := time.Parse(time.RFC3339Nano, ts)
			if !want[msg] || err != nil {
				continue
			}
			out = append(out, LogLine{Node: node, At: at, Message: msg, Fields: fields})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Field returns a string or number field of the line as a string.
func (l LogLine) Field(name string) string {
	switch v := l.Fields[name].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return ""
}

// Number returns a numeric field (0 when absent or not a number).
func (l LogLine) Number(name string) float64 {
	v, _ := l.Fields[name].(float64)
	return v
}

// electionCause explains one election (a "gained leadership" line) from the
// node logs: how the leadership before it ended. An election follows a
// leader that stepped down, died or was cut off; it is the rejoining
// node's doing unless the previous leader stepped down because it lost
// contact with followers other than rejoiner ("failed to contact quorum of
// nodes, stepping down", with the "failed to contact" lines just before it
// naming only other nodes). byOthers reports that case; why says what the
// logs show either way.
func electionCause(lines []LogLine, gain LogLine, rejoiner string) (byOthers bool, why string) {
	var lost *LogLine
	for i := range lines {
		l := &lines[i]
		if l.Message == "lost leadership" && l.At.Before(gain.At) && (lost == nil || l.At.After(lost.At)) {
			lost = l
		}
	}
	if lost == nil {
		return false, "no leader stepped down before it in the logs"
	}
	stepDown := false
	var failed []string
	for _, l := range lines {
		if l.Node != lost.Node || l.At.After(lost.At) || lost.At.Sub(l.At) > 10*time.Millisecond {
			continue
		}
		switch l.Message {
		case "failed to contact quorum of nodes, stepping down":
			stepDown = true
		case "failed to contact":
			failed = append(failed, l.Field("server-id"))
		}
	}
	if !stepDown {
		return false, fmt.Sprintf("%s lost leadership at %s for another reason than failed contact", lost.Node, lost.At.Format("15:04:05.000"))
	}
	if len(failed) == 0 || slices.Contains(failed, rejoiner) {
		return false, fmt.Sprintf("%s stepped down at %s after failing to contact %v", lost.Node, lost.At.Format("15:04:05.000"), failed)
	}
	return true, fmt.Sprintf("%s stepped down at %s after failing to contact %v (not %s) for LeaderLeaseTimeout",
		lost.Node, lost.At.Format("15:04:05.000"), failed, rejoiner)
}
