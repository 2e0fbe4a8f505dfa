package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// FieldType is the closed set of request field types the adapter parses.
type FieldType int

// Field types, parsed the way Vault's clients send them.
const (
	// String accepts strings, numbers and booleans (weakly converted).
	String FieldType = iota + 1
	// Int accepts JSON numbers and numeric strings.
	Int
	// Bool accepts JSON booleans, "true"/"false"-like strings and numbers.
	Bool
	// Duration accepts integer seconds (number or string) and Go/Vault
	// duration strings ("90s", "1h", "2d").
	Duration
	// StringSlice accepts a JSON list of strings or a single string (one element).
	StringSlice
	// CommaStringSlice is StringSlice that also splits a string on commas.
	CommaStringSlice
	// Map accepts a JSON object of strings or a list of "k=v" strings.
	Map
)

// String names the type for the generated documentation.
func (t FieldType) String() string {
	switch t {
	case String:
		return "string"
	case Int:
		return "int"
	case Bool:
		return "bool"
	case Duration:
		return "duration"
	case StringSlice:
		return "[]string"
	case CommaStringSlice:
		return "comma-separated []string"
	case Map:
		return "map[string]string"
	}
	return "unknown"
}

// Field declares one request parameter of a route.
type Field struct {
	Type        FieldType
	Description string
	// Required fields must be present and non-empty; Missing is the error
	// text returned (400) when one is not (default: a generic message).
	Required bool
	Missing  string
	// Default is returned by the accessors when the field is absent.
	Default any
	// Allowed restricts a String field to these values.
	Allowed []string
	// MaxLen bounds a String field's length in bytes (0 = no limit).
	MaxLen int
	// Signed allows a negative Duration (the handler validates it itself).
	Signed bool
	// Sensitive fields (token IDs) are never logged or documented with examples.
	Sensitive bool
}

// Fields maps a parameter name to its declaration.
type Fields map[string]*Field

// FieldData is the validated input of one request: the raw values (body or
// query, then path values on top) checked against the route's Fields.
type FieldData struct {
	raw     map[string]any
	schema  Fields
	parsed  map[string]any
	unknown []string
}

// errFieldValidation wraps a conversion failure as Vault words it.
func errFieldValidation(name string, err error) error {
	return badRequest(fmt.Sprintf("Field validation failed: error converting input for field %q: %s", name, err))
}

// newFieldData converts and validates raw against schema. Unknown keys are
// remembered (sorted) for the "unrecognized parameters" warning.
func newFieldData(raw map[string]any, schema Fields) (*FieldData, error) {
	d := &FieldData{}
	if err := d.init(raw, schema); err != nil {
		return nil, err
	}
	return d, nil
}

// init is newFieldData into d (the adapter keeps d in its per-request
// state). A request without input allocates nothing here.
func (d *FieldData) init(raw map[string]any, schema Fields) error {
	*d = FieldData{raw: raw, schema: schema}
	if len(raw) > 0 {
		d.parsed = make(map[string]any, len(raw))
	}
	for k, v := range raw {
		f, ok := schema[k]
		if !ok {
			d.unknown = append(d.unknown, k)
			continue
		}
		if v == nil {
			continue
		}
		pv, err := parseField(f, v)
		if err != nil {
			return errFieldValidation(k, err)
		}
		if f.Type == String {
			s := pv.(string)
			if f.MaxLen > 0 && len(s) > f.MaxLen {
				return badRequest(fmt.Sprintf("Field validation failed: field %q exceeds the maximum length of %d", k, f.MaxLen))
			}
			if len(f.Allowed) > 0 && s != "" && !contains(f.Allowed, s) {
				return badRequest(fmt.Sprintf("Field validation failed: value %q is not allowed for field %q", s, k))
			}
		}
		d.parsed[k] = pv
	}
	sort.Strings(d.unknown)
	// Required fields are checked in name order (the first missing one is
	// reported); only they are collected, so most routes sort nothing.
	var required []string
	for k, f := range schema {
		if f.Required {
			required = append(required, k)
		}
	}
	sort.Strings(required)
	for _, k := range required {
		f := schema[k]
		v, ok := d.parsed[k]
		if !ok || isEmpty(v) {
			msg := f.Missing
			if msg == "" {
				msg = fmt.Sprintf("missing required field %q", k)
			}
			return badRequest(msg)
		}
	}
	return nil
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case string:
		return x == ""
	case []string:
		return len(x) == 0
	case map[string]string:
		return len(x) == 0
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Unknown lists the request keys that no field declares, sorted.
func (d *FieldData) Unknown() []string { return d.unknown }

// Has reports whether the request carried the field (non-null).
func (d *FieldData) Has(name string) bool {
	_, ok := d.parsed[name]
	return ok
}

func (d *FieldData) get(name string) any {
	if v, ok := d.parsed[name]; ok {
		return v
	}
	if f, ok := d.schema[name]; ok && f.Default != nil {
		return f.Default
	}
	return nil
}

// String returns a String field ("" when absent and no default).
func (d *FieldData) String(name string) string {
	switch v := d.get(name).(type) {
	case string:
		return v
	}
	return ""
}

// Int returns an Int field.
func (d *FieldData) Int(name string) int64 {
	switch v := d.get(name).(type) {
	case int64:
		return v
	case int:
		return int64(v)
	}
	return 0
}

// Bool returns a Bool field.
func (d *FieldData) Bool(name string) bool {
	v, _ := d.get(name).(bool)
	return v
}

// Duration returns a Duration field in whole seconds.
func (d *FieldData) Duration(name string) int64 {
	switch v := d.get(name).(type) {
	case int64:
		return v
	case int:
		return int64(v)
	case time.Duration:
		return int64(v / time.Second)
	}
	return 0
}

// Strings returns a StringSlice or CommaStringSlice field.
func (d *FieldData) Strings(name string) []string {
	v, _ := d.get(name).([]string)
	return v
}

// Map returns a Map field (nil when absent).
func (d *FieldData) Map(name string) map[string]string {
	v, _ := d.get(name).(map[string]string)
	return v
}

// parseField converts one raw JSON/form/query value to the field's Go type:
// string, int64, bool, int64 seconds, []string or map[string]string.
func parseField(f *Field, v any) (any, error) {
	switch f.Type {
	case String:
		return toString(v)
	case Int:
		return toInt(v)
	case Bool:
		return toBool(v)
	case Duration:
		sec, err := toDurationSeconds(v)
		if err != nil {
			return nil, err
		}
		if sec < 0 && !f.Signed {
			return nil, errors.New("cannot provide negative value")
		}
		return sec, nil
	case StringSlice:
		return toStringSlice(v, false)
	case CommaStringSlice:
		return toStringSlice(v, true)
	case Map:
		return toMap(v)
	}
	return nil, fmt.Errorf("unknown field type %d", f.Type)
}

func toString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case []string:
		// Form and query values arrive as lists; a single one is a string.
		if len(x) == 1 {
			return x[0], nil
		}
	}
	return "", fmt.Errorf("'' expected type 'string', got unconvertible type '%s'", jsonKind(v))
}

func toInt(v any) (int64, error) {
	switch x := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
			return n, nil
		}
		fl, err := x.Float64()
		if err != nil || fl != math.Trunc(fl) || math.Abs(fl) > 1<<53 {
			return 0, fmt.Errorf("cannot parse '' as int: %q is not an integer", x.String())
		}
		return int64(fl), nil
	case float64:
		if x != math.Trunc(x) || math.Abs(x) > 1<<53 {
			return 0, fmt.Errorf("cannot parse '' as int: %v is not an integer", x)
		}
		return int64(x), nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		if x == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(x, 0, 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse '' as int: %w", err)
		}
		return n, nil
	case []string:
		if len(x) == 1 {
			return toInt(x[0])
		}
	}
	return 0, fmt.Errorf("'' expected type 'int', got unconvertible type '%s'", jsonKind(v))
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return false, fmt.Errorf("cannot parse '' as bool: %w", err)
		}
		return f != 0, nil
	case string:
		if x == "" {
			return false, nil
		}
		b, err := strconv.ParseBool(x)
		if err != nil {
			return false, fmt.Errorf("cannot parse '' as bool: %w", err)
		}
		return b, nil
	case []string:
		if len(x) == 1 {
			return toBool(x[0])
		}
	}
	return false, fmt.Errorf("'' expected type 'bool', got unconvertible type '%s'", jsonKind(v))
}

// maxDurationSeconds keeps seconds*1e9 inside int64.
const maxDurationSeconds = math.MaxInt64 / int64(time.Second)

// toDurationSeconds is parseutil.ParseDurationSecond: integer seconds or a
// duration string with an optional "d" (days) suffix.
func toDurationSeconds(v any) (int64, error) {
	var sec int64
	switch x := v.(type) {
	case json.Number:
		n, err := toInt(x)
		if err != nil {
			return 0, err
		}
		sec = n
	case float64:
		n, err := toInt(x)
		if err != nil {
			return 0, err
		}
		sec = n
	case string:
		s := strings.TrimSpace(x)
		if s == "" {
			return 0, nil
		}
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			sec = n
			break
		}
		if strings.HasSuffix(s, "d") {
			days, err := strconv.ParseInt(strings.TrimSuffix(s, "d"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("time: invalid duration %q", x)
			}
			if days > maxDurationSeconds/86400 || days < -maxDurationSeconds/86400 {
				return 0, fmt.Errorf("duration %q is out of range", x)
			}
			sec = days * 86400
			break
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, err
		}
		sec = int64(d / time.Second)
	case []string:
		if len(x) == 1 {
			return toDurationSeconds(x[0])
		}
		return 0, fmt.Errorf("'' expected a duration, got a list")
	default:
		return 0, fmt.Errorf("'' expected a duration, got unconvertible type '%s'", jsonKind(v))
	}
	if sec > maxDurationSeconds || sec < -maxDurationSeconds {
		return 0, fmt.Errorf("duration of %d seconds is out of range", sec)
	}
	return sec, nil
}

func toStringSlice(v any, comma bool) ([]string, error) {
	var out []string
	switch x := v.(type) {
	case string:
		if comma {
			if x == "" {
				return []string{}, nil
			}
			for _, p := range strings.Split(x, ",") {
				out = append(out, strings.TrimSpace(p))
			}
			return out, nil
		}
		return []string{x}, nil
	case []string:
		if comma && len(x) == 1 {
			return toStringSlice(x[0], true)
		}
		return append([]string{}, x...), nil
	case []any:
		out = make([]string, 0, len(x))
		for _, e := range x {
			s, err := toString(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	case json.Number, bool:
		s, _ := toString(x)
		return []string{s}, nil
	}
	return nil, fmt.Errorf("'' expected a list of strings, got unconvertible type '%s'", jsonKind(v))
}

func toMap(v any) (map[string]string, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]string, len(x))
		for k, e := range x {
			if e == nil {
				out[k] = ""
				continue
			}
			s, err := toString(e)
			if err != nil {
				return nil, fmt.Errorf("value of key %q: %w", k, err)
			}
			out[k] = s
		}
		return out, nil
	case []any, []string, string:
		list, err := toStringSlice(x, false)
		if err != nil {
			return nil, err
		}
		out := make(map[string]string, len(list))
		for _, kv := range list {
			k, val, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("invalid key value pair %q", kv)
			}
			out[k] = val
		}
		return out, nil
	}
	return nil, fmt.Errorf("'' expected a map, got unconvertible type '%s'", jsonKind(v))
}

func jsonKind(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case json.Number, float64:
		return "number"
	case bool:
		return "bool"
	case []any, []string:
		return "slice"
	case map[string]any:
		return "map"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}
