package acl

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
	hclparser "github.com/hashicorp/hcl/hcl/parser"
)

// Names of the built-in and internal policies.
const (
	// DefaultPolicyName is the built-in policy attached to new tokens; it can
	// be edited but not deleted.
	DefaultPolicyName = "default"
	// RootPolicyName is the synthetic policy that grants everything; it is
	// never stored, edited or deleted.
	RootPolicyName = "root"
	// ResponseWrappingPolicyName is internal to Vault; never assignable,
	// editable or listed.
	ResponseWrappingPolicyName = "response-wrapping"
	// ControlGroupPolicyName is internal to Vault; never assignable, editable
	// or listed.
	ControlGroupPolicyName = "control-group"
)

// Capability is a set of ACL capabilities, one bit each.
type Capability uint16

// The capabilities a policy rule may grant. Root is only ever reported (for a
// root token), never written in a policy.
const (
	CapDeny Capability = 1 << iota
	CapCreate
	CapRead
	CapUpdate
	CapDelete
	CapList
	CapSudo
	CapPatch
	CapSubscribe
	CapRecover
)

// capNames lists every writable capability in sorted name order, so that
// Names returns a sorted slice without sorting.
var capNames = []struct {
	name string
	cap  Capability
}{
	{"create", CapCreate},
	{"delete", CapDelete},
	{"deny", CapDeny},
	{"list", CapList},
	{"patch", CapPatch},
	{"read", CapRead},
	{"recover", CapRecover},
	{"subscribe", CapSubscribe},
	{"sudo", CapSudo},
	{"update", CapUpdate},
}

// ParseCapability returns the capability named name ("read", "sudo", …).
// "root" is not a capability a policy can grant, so it is rejected.
func ParseCapability(name string) (Capability, bool) {
	for _, c := range capNames {
		if c.name == name {
			return c.cap, true
		}
	}
	return 0, false
}

// Names returns the names of the capabilities in c, sorted. A set containing
// deny is reported as just ["deny"], and an empty set as ["deny"] too, as
// Vault's capabilities endpoints do.
func (c Capability) Names() []string {
	if c&CapDeny != 0 || c == 0 {
		return []string{"deny"}
	}
	out := make([]string, 0, 4)
	for _, n := range capNames {
		if c&n.cap != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// Has reports whether every capability in want is in c.
func (c Capability) Has(want Capability) bool { return c&want == want }

// Policy is a parsed ACL policy document. It is immutable once returned by
// Parse or Root.
type Policy struct {
	// Name is the policy's normalized name (NormalizeName).
	Name string
	// Raw is the document text as parsed: a base64 body is stored decoded,
	// as Vault does. Root has an empty Raw.
	Raw string
	// Paths are the rules in document order.
	Paths []PathRule
	// Templated is true when some path uses identity templating.
	Templated bool
	// Warnings are non-fatal findings (duplicate attributes) that the
	// sys/policies endpoint returns as response warnings.
	Warnings []string

	root bool
}

// IsRoot reports whether p is the synthetic root policy (Root).
func (p *Policy) IsRoot() bool { return p != nil && p.root }

// PathRule is one `path "<pattern>" { … }` block.
type PathRule struct {
	// Pattern is the path as written in the document (before any
	// normalisation); error messages name rules by it.
	Pattern string
	// Path is the pattern as matched: leading "/" removed and, for a prefix
	// rule, the trailing "*" removed. A segment-wildcard rule keeps its "*".
	Path string
	// IsPrefix is true for a trailing-"*" rule without "+" segments.
	IsPrefix bool
	// HasSegmentWildcards is true when the pattern has a "+" segment.
	HasSegmentWildcards bool
	// Templated is true when the pattern contains {{…}} identity templating.
	Templated bool
	// Capabilities is the granted set; CapDeny alone when denied.
	Capabilities Capability
	// AllowedParameters maps lower-cased parameter names to the allowed
	// values (empty list: any value; key "*": any parameter). Nil when the
	// rule has no allowed_parameters.
	AllowedParameters map[string][]any
	// DeniedParameters is like AllowedParameters for denied values.
	DeniedParameters map[string][]any
	// RequiredParameters must all be present in a request.
	RequiredParameters []string
	// MinWrappingTTL and MaxWrappingTTL bound a response-wrapping TTL; zero
	// means unset.
	MinWrappingTTL time.Duration
	// MaxWrappingTTL: see MinWrappingTTL.
	MaxWrappingTTL time.Duration
}

// ErrInvalidPolicy is matched (errors.Is) by every error Parse returns: the
// sys/policies endpoints answer it with 400.
var ErrInvalidPolicy = errors.New("invalid policy")

// ParseError is the error type of Parse. Its text is the full message Vault
// gives for the same document.
type ParseError struct {
	// Line is the 1-based line the error refers to, or 0 when unknown.
	Line int
	msg  string
}

// Error returns Vault's message for the failure.
func (e *ParseError) Error() string { return e.msg }

// Is makes every ParseError match ErrInvalidPolicy.
func (e *ParseError) Is(target error) bool { return target == ErrInvalidPolicy }

// ErrEmptyPolicy is returned by Parse for an empty document.
var ErrEmptyPolicy = &ParseError{msg: "'policy' parameter not supplied or empty"}

// parseErrorf builds a ParseError with Vault's "failed to parse policy: "
// prefix.
func parseErrorf(line int, format string, args ...any) *ParseError {
	return &ParseError{Line: line, msg: "failed to parse policy: " + fmt.Sprintf(format, args...)}
}

// NormalizeName returns a policy name as Vault stores it: trimmed of
// surrounding white space and lower-cased.
func NormalizeName(name string) string {
	return strings.ToLower(strings.TrimSpace(name))
}

// ErrProtectedPolicy is matched (errors.Is) by the errors of CheckWritable
// and CheckDeletable: the endpoints answer it with 400.
var ErrProtectedPolicy = errors.New("protected policy")

type protectedError string

func (e protectedError) Error() string        { return string(e) }
func (e protectedError) Is(target error) bool { return target == ErrProtectedPolicy }

// CheckWritable returns Vault's error for a policy name that cannot be
// created or updated (root and the internal policies), or nil. name must be
// normalized.
func CheckWritable(name string) error {
	switch name {
	case RootPolicyName, ResponseWrappingPolicyName, ControlGroupPolicyName:
		return protectedError(fmt.Sprintf("cannot update %q policy", name))
	}
	return nil
}

// CheckDeletable returns Vault's error for a policy name that cannot be
// deleted (root, default and the internal policies), or nil. name must be
// normalized.
func CheckDeletable(name string) error {
	switch name {
	case RootPolicyName, ResponseWrappingPolicyName, ControlGroupPolicyName:
		return protectedError(fmt.Sprintf("cannot delete %q policy", name))
	case DefaultPolicyName:
		return protectedError("cannot delete default policy")
	}
	return nil
}

// Assignable reports whether a token may carry the named policy: Vault's
// internal response-wrapping and control-group policies never are. (root is
// assignable only by a root parent; that rule belongs to token creation.)
func Assignable(name string) bool {
	return name != ResponseWrappingPolicyName && name != ControlGroupPolicyName
}

// Root returns the synthetic root policy: it has no rules and makes any ACL
// it is part of a root ACL that allows everything.
func Root() *Policy {
	return &Policy{Name: RootPolicyName, root: true}
}

// duplicateWarning is returned in Policy.Warnings when the document sets an
// attribute twice; Vault 1.21 accepts such documents with a deprecation
// warning.
const duplicateWarning = "policy contains duplicate attributes, which will no longer be supported in a future version"

// Parse parses the policy document text for the policy called name (which is
// normalized). text may be HCL, JSON, or either of them base64-encoded. All
// errors are *ParseError and match ErrInvalidPolicy.
func Parse(name, text string) (*Policy, error) {
	if text == "" {
		return nil, ErrEmptyPolicy
	}
	// Vault decodes the body when (and only when) the whole string is valid
	// standard base64; HCL and JSON documents never are, as they contain
	// quotes and spaces.
	if b, err := base64.StdEncoding.DecodeString(text); err == nil {
		text = string(b)
	}
	p := &Policy{Name: NormalizeName(name), Raw: text}
	if err := p.parse(text); err != nil {
		return nil, err
	}
	return p, nil
}

// parse fills p from the document text.
func (p *Policy) parse(text string) error {
	var file *ast.File
	err := guard(func() (err error) {
		file, err = hcl.Parse(text)
		return err
	})
	if err != nil && strings.Contains(err.Error(), "Each argument can only be defined once") {
		// Duplicate attributes: accepted with a warning (Vault 1.21
		// behaviour, slated to become an error).
		err = guard(func() (err error) {
			file, err = hclparser.ParseDontErrorOnDuplicateKeys([]byte(text))
			return err
		})
		if err == nil {
			p.Warnings = append(p.Warnings, duplicateWarning)
		}
	}
	if err != nil {
		return parseErrorf(errorLine(err), "%s", err)
	}
	list, ok := file.Node.(*ast.ObjectList)
	if !ok {
		return parseErrorf(0, "does not contain a root object")
	}
	if err := checkKeys(list, topLevelKeys); err != nil {
		return parseErrorf(err.Line, "%s", err.msg)
	}
	// The top-level "name" key is allowed (and ignored: the name comes from
	// the API path), but must still decode as Vault's struct would.
	var top struct {
		Name string `hcl:"name"`
	}
	if err := decode(&top, list); err != nil {
		return parseErrorf(errorLine(err), "%s", err)
	}
	paths, err := filter(list, "path")
	if err != nil {
		return parseErrorf(0, "%s", err)
	}
	for _, item := range paths.Items {
		rule, perr := parsePath(item)
		if perr != nil {
			return perr
		}
		if rule.Templated {
			p.Templated = true
		}
		p.Paths = append(p.Paths, rule)
	}
	return nil
}

var (
	topLevelKeys = []string{"name", "path"}
	pathKeys     = []string{
		"comment", "policy", "capabilities",
		"allowed_parameters", "denied_parameters", "required_parameters",
		"min_wrapping_ttl", "max_wrapping_ttl",
		"mfa_methods", "control_group", "subscribe_event_types",
	}
)

// errMalformed stands in for a panic inside the HCL library.
var errMalformed = errors.New("malformed document")

// guard runs an HCL library call and turns a panic inside it into
// errMalformed. The library panics on some malformed input (the JSON scanner
// on `{"\0`, found by FuzzParsePolicy); policy documents come from API
// clients, so such input must be a 400, not a crashed request.
func guard(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errMalformed
		}
	}()
	return f()
}

// decode is hcl.DecodeObject under guard.
func decode(out any, node ast.Node) error {
	return guard(func() error { return hcl.DecodeObject(out, node) })
}

// pathHCL is the shape hcl.DecodeObject fills from a path block; it mirrors
// Vault's PathRules so that the same loosely-typed documents decode.
type pathHCL struct {
	Policy              string           `hcl:"policy"`
	Capabilities        []string         `hcl:"capabilities"`
	AllowedParameters   map[string][]any `hcl:"allowed_parameters"`
	DeniedParameters    map[string][]any `hcl:"denied_parameters"`
	RequiredParameters  []string         `hcl:"required_parameters"`
	MinWrappingTTL      any              `hcl:"min_wrapping_ttl"`
	MaxWrappingTTL      any              `hcl:"max_wrapping_ttl"`
	MFAMethods          []string         `hcl:"mfa_methods"`
	ControlGroup        ast.Node         `hcl:"control_group"`
	SubscribeEventTypes []string         `hcl:"subscribe_event_types"`
}

// parsePath parses one path block (item has had its leading "path" key
// stripped by Filter).
func parsePath(item *ast.ObjectItem) (PathRule, *ParseError) {
	key := "path"
	if len(item.Keys) > 0 {
		key = keyString(item.Keys[0])
	}
	line := itemLine(item)
	if err := checkKeys(item.Val, pathKeys); err != nil {
		return PathRule{}, parseErrorf(err.Line, "path %q: %s", key, err.msg)
	}
	var h pathHCL
	if err := decode(&h, item.Val); err != nil {
		return PathRule{}, parseErrorf(errorLine(err), "path %q: %s", key, err)
	}

	r := PathRule{Pattern: key, Path: strings.TrimPrefix(key, "/")}
	if err := checkTemplate(r.Path); err != nil {
		return PathRule{}, parseErrorf(line, "failed to validate policy templating: %s", err)
	}
	r.Templated = strings.Contains(r.Path, "{{")
	if strings.Contains(r.Path, "+*") {
		return PathRule{}, parseErrorf(line, "path %q: invalid use of wildcards ('+*' is forbidden)", r.Path)
	}
	if r.Path == "+" || strings.Contains(r.Path, "/+") || strings.HasPrefix(r.Path, "+/") {
		r.HasSegmentWildcards = true
	}
	// A segment-wildcard rule keeps its "*": the matcher needs the segment
	// count and treats the last segment as a prefix.
	if strings.HasSuffix(r.Path, "*") && !r.HasSegmentWildcards {
		r.Path = strings.TrimSuffix(r.Path, "*")
		r.IsPrefix = true
	}

	caps := h.Capabilities
	switch h.Policy {
	case "":
	case "deny":
		caps = []string{"deny"}
	case "read":
		caps = append(caps, "read", "list")
	case "write":
		caps = append(caps, "create", "read", "update", "delete", "list")
	case "sudo":
		caps = append(caps, "create", "read", "update", "delete", "list", "sudo")
	default:
		return PathRule{}, parseErrorf(line, "path %q: invalid policy %q", key, h.Policy)
	}
	for _, name := range caps {
		c, ok := ParseCapability(name)
		if !ok {
			return PathRule{}, parseErrorf(line, "path %q: invalid capability %q", key, name)
		}
		if c == CapDeny {
			// Deny overrides everything else in the block; like Vault, the
			// rest of the block (parameters, wrapping TTLs) is then moot and
			// not validated.
			r.Capabilities = CapDeny
			return r, nil
		}
		r.Capabilities |= c
	}

	if h.AllowedParameters != nil {
		r.AllowedParameters = lowerKeys(h.AllowedParameters)
	}
	if h.DeniedParameters != nil {
		r.DeniedParameters = lowerKeys(h.DeniedParameters)
	}
	var err error
	if h.MinWrappingTTL != nil {
		if r.MinWrappingTTL, err = parseDurationSecond(h.MinWrappingTTL); err != nil {
			return PathRule{}, parseErrorf(line, "error parsing min_wrapping_ttl: %s", err)
		}
	}
	if h.MaxWrappingTTL != nil {
		if r.MaxWrappingTTL, err = parseDurationSecond(h.MaxWrappingTTL); err != nil {
			return PathRule{}, parseErrorf(line, "error parsing max_wrapping_ttl: %s", err)
		}
	}
	if r.MinWrappingTTL != 0 && r.MaxWrappingTTL != 0 && r.MaxWrappingTTL < r.MinWrappingTTL {
		return PathRule{}, parseErrorf(line, "max_wrapping_ttl cannot be less than min_wrapping_ttl")
	}
	if len(h.RequiredParameters) > 0 {
		r.RequiredParameters = append([]string(nil), h.RequiredParameters...)
	}
	return r, nil
}

// keyError is a key-check failure with the line of the offending key.
type keyError struct {
	Line int
	msg  string
}

// checkKeys is Vault's hclutil.CheckHCLKeys: every key of the object (list)
// node must be in valid. All offending keys are named, in document order.
func checkKeys(node ast.Node, valid []string) *keyError {
	var list *ast.ObjectList
	switch n := node.(type) {
	case *ast.ObjectList:
		list = n
	case *ast.ObjectType:
		list = n.List
	default:
		return &keyError{Line: nodeLine(node), msg: fmt.Sprintf("cannot check HCL keys of type %T", node)}
	}
	var msgs []string
	first := 0
	for _, item := range list.Items {
		if len(item.Keys) == 0 {
			continue
		}
		key := keyString(item.Keys[0])
		ok := false
		for _, v := range valid {
			if key == v {
				ok = true
				break
			}
		}
		if !ok {
			line := itemLine(item)
			if first == 0 {
				first = line
			}
			msgs = append(msgs, fmt.Sprintf("invalid key %q on line %d", key, line))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return &keyError{Line: first, msg: strings.Join(msgs, "; ")}
}

// itemLine is the line of an object item: its "=" (the only position the
// JSON parser records), else its first key (a block has no "=").
func itemLine(item *ast.ObjectItem) int {
	if item.Assign.Line > 0 {
		return item.Assign.Line
	}
	if len(item.Keys) > 0 && item.Keys[0].Pos().Line > 0 {
		return item.Keys[0].Pos().Line
	}
	return nodeLine(item.Val)
}

// keyString is the unquoted text of a key. Token.Value panics on a quoted
// key with an invalid escape; the raw text is used then (such a key is never
// valid anyway).
func keyString(k *ast.ObjectKey) (key string) {
	key = k.Token.Text
	_ = guard(func() error {
		if s, ok := k.Token.Value().(string); ok {
			key = s
		}
		return nil
	})
	return key
}

// filter is ast.ObjectList.Filter under guard (it unquotes every key).
func filter(list *ast.ObjectList, key string) (*ast.ObjectList, error) {
	var out *ast.ObjectList
	err := guard(func() error {
		out = list.Filter(key)
		return nil
	})
	return out, err
}

func nodeLine(n ast.Node) int {
	if n == nil {
		return 0
	}
	return n.Pos().Line
}

// errorLine extracts the line from an HCL parser or decoder error: HCL
// errors are *parser.PosError ("At 3:5: …"); the JSON scanner prefixes its
// messages with "3:5: ".
func errorLine(err error) int {
	var pe *hclparser.PosError
	if errors.As(err, &pe) {
		return pe.Pos.Line
	}
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "At ")
	if i := strings.IndexByte(msg, ':'); i > 0 {
		if n, err := strconv.Atoi(msg[:i]); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// checkTemplate verifies that every "{{" in a path is closed and names an
// identity template parameter; the templates themselves are never resolved
// (see the package doc).
func checkTemplate(path string) error {
	rest := path
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if strings.Contains(rest, "}}") {
				return fmt.Errorf("unbalanced template delimiters in %q", path)
			}
			return nil
		}
		if strings.Contains(rest[:i], "}}") {
			return fmt.Errorf("unbalanced template delimiters in %q", path)
		}
		rest = rest[i+2:]
		j := strings.Index(rest, "}}")
		if j < 0 {
			return fmt.Errorf("unbalanced template delimiters in %q", path)
		}
		param := strings.TrimSpace(rest[:j])
		if !strings.HasPrefix(param, "identity.") || strings.Contains(param, "{{") {
			return fmt.Errorf("invalid template parameter %q", param)
		}
		rest = rest[j+2:]
	}
}

func lowerKeys(in map[string][]any) map[string][]any {
	out := make(map[string][]any, len(in))
	for k, v := range in {
		out[strings.ToLower(k)] = v
	}
	return out
}

// parseDurationSecond mirrors Vault's parseutil.ParseDurationSecond: a
// number or an all-digit string is seconds, "<n>d" is days, anything else is
// a Go duration ("90s", "1h"). Negative values are rejected.
func parseDurationSecond(in any) (time.Duration, error) {
	var d time.Duration
	switch v := in.(type) {
	case string:
		switch {
		case v == "":
			return 0, nil
		case isInt(v):
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, err
			}
			return mulSeconds(float64(n), time.Second)
		case strings.HasSuffix(v, "d"):
			n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
			if err != nil {
				return 0, err
			}
			return mulSeconds(float64(n), 24*time.Hour)
		}
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, err
		}
	case int:
		return mulSeconds(float64(v), time.Second)
	case int64:
		return mulSeconds(float64(v), time.Second)
	case float64:
		return mulSeconds(v, time.Second)
	case json.Number:
		return parseDurationSecond(v.String())
	default:
		return 0, errors.New("could not parse duration from input")
	}
	if d < 0 {
		return 0, errors.New("duration must not be negative")
	}
	return d, nil
}

func isInt(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' || s[0] == '+' {
		s = s[1:]
	}
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// mulSeconds returns n units, rejecting negative values and overflow.
func mulSeconds(n float64, unit time.Duration) (time.Duration, error) {
	if n < 0 {
		return 0, errors.New("duration must not be negative")
	}
	v := n * float64(unit)
	if v > math.MaxInt64 || math.IsNaN(v) {
		return 0, errors.New("multiplication of durations resulted in overflow")
	}
	return time.Duration(v), nil
}
