// Package audit is tokend's audit device: JSON lines in the shape of
// Vault's file audit device (one "request" entry before a request is
// handled, one "response" entry once its answer is decided), with every
// secret replaced by "hmac-sha256:<hex>".
//
// It owns the entry types (Entry, Auth, Request, Response), the keyed hash
// (Hasher, DeriveKey, Redact) and the writer (Log). It imports nothing of
// tokend's own; httpapi builds the entries.
//
// Invariants:
//   - No plaintext secret is ever handed to a Log: callers hash token IDs and
//     accessors with Hasher.Hash and pass request/response data through
//     Redact, which hashes every string not under a known non-secret key
//     (Vault's default "hash all strings" behaviour, with an allowlist).
//   - Key: the audit HMAC key is DeriveKey(indexKey) = HMAC-SHA256(key =
//     the cluster's replicated X-Vault-Index key, message "tokend-audit").
//     Every node derives the same key, so a token hashes identically in
//     every node's log and sys/audit-hash answers the same on every node; no
//     new replicated state is needed.
//   - Writes: one mutex; each entry is marshalled outside it and written with
//     a single write(2) to an O_APPEND file, so lines never interleave and an
//     entry is in the kernel before the request proceeds (it survives a crash
//     of the process, not of the machine). There is no fsync per entry (it
//     would cost milliseconds per request); Reopen and Close fsync.
package audit
