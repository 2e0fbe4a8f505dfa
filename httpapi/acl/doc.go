// Package acl is tokend's implementation of Vault's ACL policy language: it
// parses policy documents and evaluates requests against the merged rules of
// a token's policies (VAULT-API.md §1.11, §1.12, §2.5, §4).
//
// # What it owns
//
//   - Parse turns a policy document (HCL, JSON, or either of them base64
//     encoded, as Vault's sys/policies/acl endpoint accepts) into a Policy.
//     Every error it returns is a *ParseError whose text is Vault's wording
//     ("failed to parse policy: path \"x\": invalid capability \"fly\""), and
//     satisfies errors.Is(err, ErrInvalidPolicy); syntax errors carry the
//     parser's line and column ("failed to parse policy: At 3:5: …").
//   - DefaultPolicyText is the stock "default" policy; Root returns the
//     synthetic "root" policy, which is never parsed or stored.
//   - New merges the rules of several policies into an ACL, an immutable,
//     precomputed structure that is safe for concurrent use and answers
//     Allowed (one request) and Capabilities (sys/capabilities*) quickly.
//
// # Matching rules (Vault's, VAULT-API.md §4.2–4.3)
//
//   - A rule for exactly the request path wins over every glob.
//   - A trailing "*" makes a prefix rule; "*" anywhere else is literal.
//   - "+" matches exactly one path segment; "+*" is rejected at parse time.
//   - Among non-exact matches the most specific wins: later first
//     wildcard/glob position, then non-prefix over prefix, then fewer "+"
//     segments, then the longer pattern, then the lexicographically larger.
//     Only the winning rule's capabilities apply.
//   - Rules for the same pattern from different policies merge: capabilities
//     are unioned, but "deny" from any of them makes the merged rule
//     deny-only. The root policy makes the whole ACL a root ACL.
//   - For list operations (and Capabilities) the path without its trailing
//     "/" is tried too, as Vault does.
//
// # Invariants and limits
//
//   - The package imports only the standard library and
//     github.com/hashicorp/hcl; nothing of tokend's own.
//   - Policy and ACL values are never mutated after construction; New copies
//     what it merges.
//   - Templated path rules ("{{identity.entity.id}}") are parsed and kept
//     but never match: tokend tokens have no identity entity, and Vault
//     likewise drops a templated rule it cannot resolve.
//   - mfa_methods, control_group and subscribe_event_types are accepted and
//     ignored, as in Vault's open-source edition.
//   - DeniedReason strings name rules and parameter names, never parameter
//     values (which may be secrets).
package acl
