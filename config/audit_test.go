package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestAuditFlags(t *testing.T) {
	fixedHostname(t, "h")
	dir := t.TempDir()
	audit := filepath.Join(dir, "audit.log")
	base := []string{"-data-dir", dir, "-bootstrap-expect", "1"}

	c, err := Load(base, env())
	if err != nil {
		t.Fatal(err)
	}
	if c.AuditFile != "" || c.AuditFailOpen {
		t.Fatalf("defaults: audit_file=%q fail_open=%v, want off and fail-closed", c.AuditFile, c.AuditFailOpen)
	}

	c, err = Load(append(base, "-audit-file", audit, "-audit-fail-open"), env())
	if err != nil || c.AuditFile != audit || !c.AuditFailOpen {
		t.Fatalf("flags: %+v %v", c, err)
	}
	c, err = Load(base, env("TOKEND_AUDIT_FILE", audit, "TOKEND_AUDIT_FAIL_OPEN", "true"))
	if err != nil || c.AuditFile != audit || !c.AuditFailOpen {
		t.Fatalf("env: %+v %v", c, err)
	}
	file := writeFile(t, "c.hcl", "audit_file = \""+audit+"\"\naudit_fail_open = true\n")
	c, err = Load(append(base, "-config", file), env())
	if err != nil || c.AuditFile != audit || !c.AuditFailOpen {
		t.Fatalf("file: %+v %v", c, err)
	}
	// Flag beats env beats file.
	c, err = Load(append(base, "-config", file, "-audit-fail-open=false"), env("TOKEND_AUDIT_FILE", audit+".env"))
	if err != nil || c.AuditFile != audit+".env" || c.AuditFailOpen {
		t.Fatalf("precedence: %+v %v", c, err)
	}
	if !strings.Contains(c.String(), "audit_file="+audit+".env") {
		t.Errorf("String lacks the audit file: %s", c)
	}

	notDir := writeFile(t, "plain", "x")
	bad := []struct {
		name string
		args []string
		want string
	}{
		{"fail-open without file", append(base, "-audit-fail-open"), "invalid config: -audit-fail-open requires -audit-file"},
		{"file is a directory", append(base, "-audit-file", dir), `invalid config: -audit-file "` + dir + `" is a directory`},
		{"missing directory", append(base, "-audit-file", filepath.Join(dir, "nope", "a.log")), `invalid config: -audit-file "` + filepath.Join(dir, "nope", "a.log") + `": directory`},
		{"parent is a file", append(base, "-audit-file", filepath.Join(notDir, "a.log")), `invalid config: -audit-file "` + filepath.Join(notDir, "a.log") + `": `},
		{"fail-open not a bool", append(base, "-audit-fail-open=maybe"), "invalid config: invalid boolean value"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(tt.args, env())
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("err = %v, want prefix %q", err, tt.want)
			}
		})
	}
	if _, err := Load(base, env("TOKEND_AUDIT_FAIL_OPEN", "perhaps")); err == nil || !strings.Contains(err.Error(), "-audit-fail-open: not a boolean") {
		t.Fatalf("env not a bool: %v", err)
	}
}
