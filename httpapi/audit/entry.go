package audit

import (
	"bytes"
	"encoding/json"
)

// Entry types.
const (
	TypeRequest  = "request"
	TypeResponse = "response"
)

// Entry is one line of the audit log (Vault's file audit device format).
type Entry struct {
	// Time is RFC 3339 with nanoseconds, UTC.
	Time string `json:"time"`
	// Type is TypeRequest or TypeResponse.
	Type string `json:"type"`
	// Auth describes the caller (its token hashed).
	Auth *Auth `json:"auth,omitempty"`
	// Request is present in both entries; Request.ID pairs them.
	Request *Request `json:"request"`
	// Response is present in response entries only.
	Response *Response `json:"response,omitempty"`
	// Error is the error text sent to the client ("" on success).
	Error string `json:"error"`
	// ForwardedFrom is the address of the node that forwarded this request
	// to this one (the leader); empty for requests from clients.
	ForwardedFrom string `json:"forwarded_from,omitempty"`
	// ForwardedToLeader marks a response entry of a request this node
	// forwarded: the leader served it (and audited it, with ForwardedFrom).
	ForwardedToLeader bool `json:"forwarded_to_leader,omitempty"`
}

// Auth is a token's description: the caller's (Entry.Auth) or a new
// token's (Response.Auth). ClientToken and Accessor are hashed.
type Auth struct {
	ClientToken    string         `json:"client_token,omitempty"`
	Accessor       string         `json:"accessor,omitempty"`
	DisplayName    string         `json:"display_name,omitempty"`
	Policies       []string       `json:"policies,omitempty"`
	TokenPolicies  []string       `json:"token_policies,omitempty"`
	Metadata       map[string]any `json:"metadata,omitempty"`
	EntityID       string         `json:"entity_id,omitempty"`
	TokenType      string         `json:"token_type,omitempty"`
	TokenTTL       int64          `json:"token_ttl,omitempty"`
	TokenIssueTime string         `json:"token_issue_time,omitempty"`
	LeaseDuration  int64          `json:"lease_duration,omitempty"`
	Renewable      bool           `json:"renewable,omitempty"`
	Orphan         bool           `json:"orphan,omitempty"`
	NumUses        int            `json:"num_uses,omitempty"`
}

// Request describes a request. ClientToken, ClientTokenAccessor, any token
// in Path and the secrets in Data are hashed; the raw body is never kept.
type Request struct {
	ID                  string         `json:"id"`
	Operation           string         `json:"operation"`
	MountType           string         `json:"mount_type,omitempty"`
	ClientToken         string         `json:"client_token,omitempty"`
	ClientTokenAccessor string         `json:"client_token_accessor,omitempty"`
	Path                string         `json:"path"`
	Data                map[string]any `json:"data,omitempty"`
	RemoteAddress       string         `json:"remote_address,omitempty"`
}

// Response describes the answer: HTTP status, and the envelope's data and
// auth with secrets hashed.
type Response struct {
	Status    int            `json:"status"`
	MountType string         `json:"mount_type,omitempty"`
	Auth      *Auth          `json:"auth,omitempty"`
	Data      map[string]any `json:"data,omitempty"`
}

func jsonUnmarshalNumber(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}
