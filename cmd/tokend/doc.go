// Command tokend is the single binary of tokend: the server and a small
// client for the Vault-compatible token API.
//
//	tokend server [flags]          run a node (tokend server -h lists every flag)
//	tokend token create [flags]    create a token
//	tokend token lookup [TOKEN]    look a token up (no argument: the caller's own)
//	tokend token renew [TOKEN]     renew a token (no argument: the caller's own)
//	tokend token revoke [TOKEN]    revoke a token and its descendants
//	tokend bench [flags]           load generator for the token API (bench.go)
//	tokend operator members        the gossip view of the cluster
//	tokend operator raft list-peers  the raft configuration
//	tokend operator raft remove-peer -server-id ID  remove a server for good
//	tokend version                 print the version
//
// The server loads its configuration with package config (flag > env >
// file > default), builds one hclog root logger (text with -dev, JSON
// otherwise, or -log-format), starts a cluster.Node and serves httpapi on
// -http-addr. SIGINT/SIGTERM stop it gracefully: the HTTP server finishes
// in-flight requests, then the node hands over leadership, leaves gossip and
// closes raft. A second signal kills the process. With -dev it waits for
// leadership, initialises the store and prints the API address and root
// token on stdout — the only place tokend ever prints a token ID.
//
// Client commands use github.com/hashicorp/vault/api. They talk to
// TOKEND_ADDR, else VAULT_ADDR, else http://127.0.0.1:8200 (or -address)
// with the token in TOKEND_TOKEN, else VAULT_TOKEN. Output is an aligned
// table by default and the server's JSON with -format=json.
//
// Exit codes: 0 success; 1 invalid configuration, bad usage or a server
// that failed to start or stopped with an error; 2 an API request failed.
package main
