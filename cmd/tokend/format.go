package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/vault/api"
)

// writeTable writes an aligned table with a dashed rule under the header,
// like the vault CLI:
//
//	Key      Value
//	---      -----
//	token    hvs.…
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 4, ' ', 0)
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			// A tab or newline inside a value would break the columns.
			fmt.Fprint(tw, strings.NewReplacer("\t", " ", "\n", " ").Replace(c))
		}
		fmt.Fprint(tw, "\n")
	}
	line(header)
	rule := make([]string, len(header))
	for i, h := range header {
		rule[i] = strings.Repeat("-", len(h))
	}
	line(rule)
	for _, r := range rows {
		line(r)
	}
	return tw.Flush()
}

// authRows are the rows `vault token create` prints for an auth response.
func authRows(a *api.SecretAuth) [][]string {
	return [][]string{
		{"token", a.ClientToken},
		{"token_accessor", a.Accessor},
		{"token_duration", tokenDuration(a.LeaseDuration)},
		{"token_renewable", strconv.FormatBool(a.Renewable)},
		{"token_policies", quotedList(a.TokenPolicies)},
		{"identity_policies", quotedList(a.IdentityPolicies)},
		{"policies", quotedList(a.Policies)},
	}
}

// printAuth prints a response carrying a token (create, renew).
func printAuth(e *env, cf clientFlags, s *api.Secret) error {
	if s == nil || s.Auth == nil {
		return fmt.Errorf("the server returned no token")
	}
	return printSecret(e, cf, s, authRows(s.Auth))
}

// printData prints a response's data as sorted Key/Value rows (lookup).
func printData(e *env, cf clientFlags, s *api.Secret) error {
	if s == nil {
		return fmt.Errorf("the server returned no data")
	}
	return printSecret(e, cf, s, dataRows(s.Data))
}

// printSecret prints a response's warnings to stderr, then one field, the
// JSON, or the Key/Value table of rows, as the flags ask.
func printSecret(e *env, cf clientFlags, s *api.Secret, rows [][]string) error {
	printWarnings(e, s)
	switch {
	case cf.field != "":
		return printField(e.stdout, rows, cf.field)
	case cf.format == "json":
		return printJSON(e.stdout, s)
	}
	return writeTable(e.stdout, []string{"Key", "Value"}, rows)
}

// durationKeys are data fields holding seconds that are shown as durations.
var durationKeys = map[string]bool{
	"ttl": true, "creation_ttl": true, "explicit_max_ttl": true, "period": true,
}

func dataRows(data map[string]any) [][]string {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([][]string, 0, len(keys))
	for _, k := range keys {
		v := formatValue(data[k])
		if durationKeys[k] {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				v = humanDuration(time.Duration(n) * time.Second)
			}
		}
		rows = append(rows, []string{k, v})
	}
	return rows
}

// formatValue renders a JSON value for a table cell: lists as [a b], maps
// as map[k:v] with sorted keys, null as n/a.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "n/a"
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = formatValue(e)
		}
		return "[" + strings.Join(parts, " ") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + ":" + formatValue(x[k])
		}
		return "map[" + strings.Join(parts, " ") + "]"
	default:
		return fmt.Sprint(x)
	}
}

// quotedList renders policies as the vault CLI does: ["default" "web"].
func quotedList(l []string) string {
	if l == nil {
		l = []string{}
	}
	return fmt.Sprintf("%q", l)
}

// humanDuration drops zero minute/second units: 768h0m0s → 768h,
// 1h30m0s → 1h30m; 0 stays 0s.
func humanDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// tokenDuration shows a lease of 0 (never expires) as ∞, as the vault CLI.
func tokenDuration(secs int) string {
	if secs == 0 {
		return "∞"
	}
	return humanDuration(time.Duration(secs) * time.Second)
}

func printField(w io.Writer, rows [][]string, field string) error {
	for _, r := range rows {
		if r[0] == field {
			_, err := fmt.Fprintln(w, r[1])
			return err
		}
	}
	return usagef("field %q not present in the response", field)
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// printWarnings shows the server's warnings on stderr, keeping stdout
// parseable.
func printWarnings(e *env, s *api.Secret) {
	if len(s.Warnings) == 0 {
		return
	}
	fmt.Fprintln(e.stderr, "WARNING! The server returned these warnings:")
	for _, w := range s.Warnings {
		fmt.Fprintf(e.stderr, "  * %s\n", w)
	}
}
