package httpapi

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/tokend/tokend/fsm"
)

// The read path's hand-written JSON (the envelope and the lookup object).
//
// encoding/json spends most of a lookup's time reflecting over the envelope
// and sorting the keys of a map built only to be encoded. The writers here
// append the same bytes directly: envelope keys in the struct's order, map
// keys sorted the way encoding/json sorts them, strings escaped exactly as
// encoding/json escapes them (HTML-safe) — by falling back to it whenever a
// string holds anything but plain printable ASCII. encode_test.go checks
// every writer against encoding/json byte for byte.

// bufPool recycles response buffers (a lookup answer is ≈600 bytes).
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 1024)
	return &b
}}

// maxPooledBuf keeps one huge answer from pinning its buffer forever.
const maxPooledBuf = 64 << 10

// plainJSON reports whether s needs no escaping at all in encoding/json's
// HTML-safe output: printable ASCII without '"', '\\', '<', '>' and '&'.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// appendString appends s as a JSON string, exactly as encoding/json does.
func appendString(b []byte, s string) []byte {
	if plainJSON(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// appendStrings appends a []string as a JSON array (null when nil).
func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendStringMap appends a map[string]string as a JSON object with sorted
// keys (null when nil).
func appendStringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	var arr [16]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

// appendMarshal appends encoding/json's rendering of v (no trailing newline).
func appendMarshal(b []byte, v any) ([]byte, error) {
	out, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, out...), nil
}

// appendAuth appends a's JSON exactly as encoding/json renders it (every
// create and renewal answers with one; reflection was a few percent of a
// create on the leader).
func appendAuth(b []byte, a *Auth) ([]byte, error) {
	b = append(b, `{"client_token":`...)
	b = appendString(b, a.ClientToken)
	b = append(b, `,"accessor":`...)
	b = appendString(b, a.Accessor)
	b = append(b, `,"policies":`...)
	b = appendStrings(b, a.Policies)
	if len(a.TokenPolicies) > 0 { // omitempty
		b = append(b, `,"token_policies":`...)
		b = appendStrings(b, a.TokenPolicies)
	}
	b = append(b, `,"metadata":`...)
	b = appendStringMap(b, a.Metadata)
	b = append(b, `,"lease_duration":`...)
	b = strconv.AppendInt(b, a.LeaseDuration, 10)
	b = append(b, `,"renewable":`...)
	b = strconv.AppendBool(b, a.Renewable)
	b = append(b, `,"entity_id":`...)
	b = appendString(b, a.EntityID)
	b = append(b, `,"token_type":`...)
	b = appendString(b, a.TokenType)
	b = append(b, `,"orphan":`...)
	b = strconv.AppendBool(b, a.Orphan)
	b = append(b, `,"mfa_requirement":`...)
	if a.MFARequirement == nil {
		b = append(b, "null"...)
	} else {
		var err error
		if b, err = appendMarshal(b, a.MFARequirement); err != nil {
			return b, err
		}
	}
	b = append(b, `,"num_uses":`...)
	b = strconv.AppendInt(b, int64(a.NumUses), 10)
	return append(b, '}'), nil
}

// lookupView is Vault's lookup object (VAULT-API.md §1.4) of a token, kept
// typed: encoded straight to JSON by appendJSON, turned into the map of
// lookupData only when something needs the map (the audit log).
type lookupView struct {
	t   *fsm.Token
	id  string
	now time.Time
}

// lookupResponse is the answer of a lookup of t (data.id = id) at now: the
// Response and its view in one allocation.
func lookupResponse(t *fsm.Token, id string, now time.Time) *Response {
	r := &struct {
		resp Response
		view lookupView
	}{view: lookupView{t: t, id: id, now: now}}
	r.resp.lookup = &r.view
	return &r.resp
}

// data is the lookup object as a map (what encoding/json would be given).
func (v *lookupView) data() map[string]any { return lookupData(v.t, v.id, v.now) }

// appendJSON appends the object encoding/json renders for v.data(): the
// same keys, in its (sorted) order, with the same values.
func (v *lookupView) appendJSON(b []byte) []byte {
	t := v.t
	var exp time.Time
	if t.ExpireTime != 0 {
		exp = time.Unix(0, t.ExpireTime).UTC()
	}
	b = append(b, `{"accessor":`...)
	b = appendString(b, t.Accessor)
	if len(t.BoundCIDRs) > 0 {
		b = append(b, `,"bound_cidrs":`...)
		b = appendStrings(b, t.BoundCIDRs)
	}
	b = append(b, `,"creation_time":`...)
	b = strconv.AppendInt(b, t.CreationTime/int64(time.Second), 10)
	b = append(b, `,"creation_ttl":`...)
	b = strconv.AppendInt(b, t.CreationTTL, 10)
	b = append(b, `,"display_name":`...)
	b = appendString(b, t.DisplayName)
	b = append(b, `,"entity_id":`...)
	b = appendString(b, t.EntityID)
	b = append(b, `,"expire_time":`...)
	if t.ExpireTime != 0 {
		b = append(b, '"')
		b = exp.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"explicit_max_ttl":`...)
	b = strconv.AppendInt(b, t.ExplicitMaxTTL, 10)
	b = append(b, `,"id":`...)
	b = appendString(b, v.id)
	if t.ExpireTime != 0 {
		issue := t.IssueTime
		if issue == 0 {
			issue = t.CreationTime
		}
		b = append(b, `,"issue_time":"`...)
		b = time.Unix(0, issue).UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if t.LastRenewalTime != 0 {
		lr := time.Unix(0, t.LastRenewalTime).UTC()
		b = append(b, `,"last_renewal":"`...)
		b = lr.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","last_renewal_time":`...)
		b = strconv.AppendInt(b, lr.Unix(), 10)
	}
	b = append(b, `,"meta":`...)
	b = appendStringMap(b, t.Meta)
	b = append(b, `,"num_uses":`...)
	b = strconv.AppendInt(b, int64(t.NumUses), 10)
	b = append(b, `,"orphan":`...)
	b = strconv.AppendBool(b, t.Parent == "")
	b = append(b, `,"path":`...)
	b = appendString(b, t.Path)
	if t.Period > 0 {
		b = append(b, `,"period":`...)
		b = strconv.AppendInt(b, t.Period, 10)
	}
	b = append(b, `,"policies":`...)
	if t.Policies == nil {
		b = append(b, "[]"...)
	} else {
		b = appendStrings(b, t.Policies)
	}
	if t.ExpireTime != 0 {
		b = append(b, `,"renewable":`...)
		b = strconv.AppendBool(b, t.Renewable)
	}
	if t.Role != "" {
		b = append(b, `,"role":`...)
		b = appendString(b, t.Role)
	}
	b = append(b, `,"ttl":`...)
	ttl := int64(0)
	if t.ExpireTime != 0 {
		ttl = max(int64(exp.Sub(v.now).Round(time.Second)/time.Second), 0)
	}
	b = strconv.AppendInt(b, ttl, 10)
	b = append(b, `,"type":`...)
	b = appendString(b, tokenType(t))
	return append(b, '}')
}

// appendEnvelope appends the bytes json.Marshal(env) gives, with data
// rendered from view when it is set (env.Data is then ignored). An empty
// RequestID is written as a fresh random UUID (every answer has one; this
// way it needs no string of its own).
func appendEnvelope(b []byte, env *envelope, view *lookupView) ([]byte, error) {
	var err error
	b = append(b, `{"request_id":`...)
	if env.RequestID == "" {
		b = append(b, '"')
		b = appendUUID(b)
		b = append(b, '"')
	} else {
		b = appendString(b, env.RequestID)
	}
	b = append(b, `,"lease_id":`...)
	b = appendString(b, env.LeaseID)
	b = append(b, `,"renewable":`...)
	b = strconv.AppendBool(b, env.Renewable)
	b = append(b, `,"lease_duration":`...)
	b = strconv.AppendInt(b, env.LeaseDuration, 10)
	b = append(b, `,"data":`...)
	switch {
	case view != nil:
		b = view.appendJSON(b)
	case env.Data == nil:
		b = append(b, "null"...)
	default:
		if b, err = appendMarshal(b, env.Data); err != nil {
			return b, err
		}
	}
	b = append(b, `,"wrap_info":`...)
	if env.WrapInfo == nil {
		b = append(b, "null"...)
	} else if b, err = appendMarshal(b, env.WrapInfo); err != nil {
		return b, err
	}
	b = append(b, `,"warnings":`...)
	b = appendStrings(b, env.Warnings)
	b = append(b, `,"auth":`...)
	if env.Auth == nil {
		b = append(b, "null"...)
	} else if b, err = appendAuth(b, env.Auth); err != nil {
		return b, err
	}
	b = append(b, `,"mount_type":`...)
	b = appendString(b, env.MountType)
	return append(b, '}'), nil
}

// writeEnvelope writes env (and view, see appendEnvelope) with status: the
// same answer as writeJSON(w, status, env), from a pooled buffer.
func writeEnvelope(w http.ResponseWriter, status int, env *envelope, view *lookupView) {
	bp := bufPool.Get().(*[]byte)
	b, err := appendEnvelope((*bp)[:0], env, view)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"errors":["internal error"]}` + "\n"))
	} else {
		w.WriteHeader(status)
		_, _ = w.Write(append(b, '\n'))
	}
	if cap(b) <= maxPooledBuf {
		*bp = b[:0]
		bufPool.Put(bp)
	}
}
