// Package httpapi serves tokend's HTTP API: Vault's token auth backend
// (/v1/auth/token/…) and the sys endpoints (/v1/sys/…), with further
// dialects to come as more route tables.
//
// What it owns:
//   - the route tables (token.go, sys.go): every endpoint is declared as a
//     Route with its fields (typed: String, Int, Bool, Duration,
//     StringSlice, CommaStringSlice, Map; Required/Default/Allowed/MaxLen
//     enforced) and one Op per method, each marked Read or Write;
//   - the single generic adapter (server.go) that does everything that is
//     not business logic: method → operation (LIST and GET ?list=true are
//     the same), body limits (413), JSON and form decoding (malformed JSON is
//     a 400), write forwarding to the leader, the read gates (staleness,
//     X-Vault-Index read-your-writes with 412 or forwarding, ?consistent),
//     authentication (X-Vault-Token / Authorization: Bearer), num_uses,
//     the ACL check (acl.go), field validation with Vault's "unrecognized
//     parameters" warning, the response envelope, X-Vault-Index on every
//     response, and the one error mapping (errors.go);
//   - token ID and accessor generation (crypto/rand, base62) and InitRoot;
//   - the generated API reference (docs.go → docs/api.md).
//
// What it must not import: github.com/hashicorp/raft or memberlist, nor
// the cluster package itself; it talks to the cluster only through the Node
// interface (node.go) and reads the state through fsm.Reader. Handlers never
// mutate state: they build complete fsm commands (IDs generated, Now stamped
// once, defaults resolved) and Propose them.
//
// Invariants:
//   - A plaintext token ID exists only in the request that carried it and in
//     the create (or init) response; the state, the commands and the logs see
//     only the keyed token hash (fsm.Hasher) of the ID and the accessor.
//     Request logs name the route pattern, never the raw path (a path may
//     hold a token); so do the request metrics' labels (metrics.go), whose
//     values come from fixed sets.
//   - Nothing a client sends yields a 5xx from input alone, or panics.
//   - A non-root token is checked against the default policy before routing,
//     so it learns nothing about which paths exist.
package httpapi
