package httpapi

import "context"

// fsmHashRoutes is the route table of sys/storage/fsm-hash: the digest of
// this node's replicated state (fsm.FSM.Digest) and the applied index it
// was taken at, so operators and the chaos harness can tell whether nodes
// converged. Root-protected (rootPaths) and Local: it reports on the node
// that received the request and is never forwarded; a node without a read
// lease answers 503 like every other local route (it cannot tell whether
// the caller's token was revoked).
func (s *server) fsmHashRoutes() []*Route {
	return []*Route{{
		Path: "/v1/sys/storage/fsm-hash", Local: true, MountType: "system", Fields: Fields{},
		Ops: Ops{"GET": {Handler: s.fsmHash, Kind: Read,
			Summary: "Digest of this node's replicated state and the applied index it was taken at (root or sudo)"}},
		Description: "Node-local: answered by the receiving node, never forwarded. `hash` is `sha256:` and 64 hex digits " +
			"over every replicated record (tokens with every field, the accessor index, policies, roles, batch and " +
			"gossip keyrings, cluster identity), independent of map order and of how the state was built; " +
			"`applied_index` is the raft index it was taken at (not hashed) and `tokens` the token count. " +
			"Two nodes at the same applied index must report the same hash.",
	}}
}

// fsmHash serves GET sys/storage/fsm-hash.
func (s *server) fsmHash(_ context.Context, _ *Request) (*Response, error) {
	d := s.node.State().Digest()
	return &Response{Data: map[string]any{
		"hash":          d.Hash,
		"applied_index": d.AppliedIndex,
		"tokens":        d.Tokens,
	}}, nil
}
