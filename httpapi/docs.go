package httpapi

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
)

// WriteDocs writes docs/api.md: every route of every table with its
// methods, summaries and fields, generated from the declarations so the
// documentation cannot drift from the code.
func WriteDocs(w io.Writer) error {
	_, err := w.Write(APIDocs())
	return err
}

// APIDocs returns the generated Markdown API reference.
func APIDocs() []byte {
	s := newServer(nil, Options{})
	var b bytes.Buffer
	b.WriteString("# tokend HTTP API\n\n")
	b.WriteString("<!-- Generated from the route tables in httpapi/ by `go run ./httpapi/cmd/gendocs`. DO NOT EDIT. -->\n\n")
	b.WriteString("All paths speak Vault's dialect: JSON bodies (or form-encoded), the Vault response envelope, ")
	b.WriteString("`{\"errors\":[…]}` on failure, `X-Vault-Token` or `Authorization: Bearer` for authentication, ")
	b.WriteString("and `X-Vault-Index` on every response. `LIST` and `GET …?list=true` are the same operation.\n")
	tables := []struct {
		title  string
		routes []*Route
	}{
		{"Token auth backend (`/v1/auth/token/…`)", s.tokenRoutes()},
		{"System (`/v1/sys/…`)", s.sysRoutes()},
		{"Batch-token keyring (`/v1/sys/rotate`, `/v1/sys/key-status`)", s.batchRoutes()},
		{"ACL policies (`/v1/sys/policies/acl/…`, `/v1/sys/policy/…`)", s.policyRoutes()},
		{"Capabilities (`/v1/sys/capabilities*`)", s.capabilitiesRoutes()},
		{"Token roles (`/v1/auth/token/roles/…`)", s.roleRoutes()},
		{"Tidy (`/v1/auth/token/tidy`)", s.tidyRoutes()},
		{"Lease-prefix revocation (`/v1/sys/leases/revoke-prefix/…`)", s.leaseRoutes()},
		{"Audit hash (`/v1/sys/audit-hash/…`)", s.auditRoutes()},
		{"Profiling (`/v1/sys/pprof/…`)", s.pprofRoutes()},
		{"Telemetry (`/v1/sys/metrics`)", s.metricsRoutes()},
		{"Gossip keyring (`/v1/sys/keyring/gossip…`)", s.keyringRoutes()},
		{"State digest (`/v1/sys/storage/fsm-hash`)", s.fsmHashRoutes()},
		{"Raft membership (`/v1/sys/storage/raft/remove-peer`)", s.raftPeerRoutes()},
	}
	for _, t := range tables {
		fmt.Fprintf(&b, "\n## %s\n", t.title)
		for _, rt := range t.routes {
			fmt.Fprintf(&b, "\n### `%s`\n\n", rt.Path)
			if rt.Unauthenticated {
				b.WriteString("Unauthenticated.")
			} else {
				b.WriteString("Authenticated.")
			}
			if rt.Bare && rt.Local {
				b.WriteString(" Bare body (no envelope). Node-local: never forwarded.")
			} else if rt.Bare {
				b.WriteString(" Bare JSON body (no envelope).")
			}
			if rt.Description != "" {
				b.WriteString(" " + rt.Description)
			}
			b.WriteString("\n\n| method | kind | summary |\n|---|---|---|\n")
			for _, m := range sortedMethods(rt.Ops) {
				op := rt.Ops[m]
				kind := "read"
				if op.Kind == Write {
					kind = "write (leader)"
				}
				fmt.Fprintf(&b, "| `%s` | %s | %s |\n", m, kind, op.Summary)
			}
			if len(rt.Fields) == 0 {
				continue
			}
			b.WriteString("\n| field | type | required | default | description |\n|---|---|---|---|---|\n")
			names := make([]string, 0, len(rt.Fields))
			for n := range rt.Fields {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				f := rt.Fields[n]
				def := ""
				if f.Default != nil {
					def = fmt.Sprintf("`%v`", f.Default)
				}
				req := ""
				if f.Required {
					req = "yes"
				}
				desc := f.Description
				if len(f.Allowed) > 0 {
					desc += " (one of: " + strings.Join(f.Allowed, ", ") + ")"
				}
				fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", n, f.Type, req, def, desc)
			}
		}
	}
	return b.Bytes()
}

// sortedMethods orders a route's methods for display.
func sortedMethods(ops Ops) []string {
	order := map[string]int{"GET": 0, "HEAD": 1, "LIST": 2, "POST": 3, "PUT": 4, "DELETE": 5}
	ms := make([]string, 0, len(ops))
	for m := range ops {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return order[ms[i]] < order[ms[j]] })
	return ms
}
