package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// peerCtxKey keys the authenticated peer node id in the context of a
// request that arrived on the cluster port.
type peerCtxKey struct{}

// ClusterTLSEnabled reports whether this node runs raft and forwarding
// over the authenticated cluster port.
func (n *Node) ClusterTLSEnabled() bool { return n.cfg.TLS != nil }

// allowPeer implements peerPolicy: a verified peer may connect when the
// raft configuration has it as a server or gossip knows it as an alive
// member. A new member is admitted by gossip first (the leader probes it
// before adding it to raft), so both sources are needed.
func (n *Node) allowPeer(id string) error {
	if r := n.raftReady.Load(); r != nil {
		if f := r.GetConfiguration(); f.Error() == nil && hasServer(f.Configuration(), id) {
			return nil
		}
	}
	n.mu.Lock()
	rec := n.members[id]
	ok := rec != nil && rec.metaOK && (rec.status == "alive" || rec.status == "suspect")
	n.mu.Unlock()
	if ok {
		return nil
	}
	return fmt.Errorf("node %q is neither a raft server nor a gossip member", id)
}

// expectedAt implements peerPolicy: the ids the raft configuration has at
// addr. raft only ever dials addresses of its configuration.
func (n *Node) expectedAt(addr string) []string {
	r := n.raftReady.Load()
	if r == nil {
		return nil
	}
	f := r.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var ids []string
	for _, s := range f.Configuration().Servers {
		if string(s.Address) == addr {
			ids = append(ids, string(s.ID))
		}
	}
	return ids
}

// probePeer checks, before the leader makes id a voter, that the member
// at raftAddr completes a cluster TLS handshake naming id: a node without
// a certificate from the cluster CA never enters the raft configuration.
func (n *Node) probePeer(ctx context.Context, id, raftAddr string) error {
	if n.cfg.TLS == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, n.timing.TransportTimeout)
	defer cancel()
	c, err := n.stream.dialTLS(ctx, raftAddr, alpnProbe, expectID(id))
	if err != nil {
		return err
	}
	return c.Close()
}

// peerClient returns the HTTP client for node id's cluster port. Every
// connection it opens is a TLS connection whose peer certificate names id,
// so a request sent with it reaches that node or nobody, whatever address
// it is given.
func (n *Node) peerClient(id string) *http.Client {
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	if c := n.peerClients[id]; c != nil {
		return c
	}
	if len(n.peerClients) >= 64 {
		// Ids of long-gone leaders: drop them all, they are rebuilt on use.
		for k, c := range n.peerClients {
			c.CloseIdleConnections()
			delete(n.peerClients, k)
		}
	}
	c := &http.Client{
		Timeout: n.timing.ForwardTimeout,
		Transport: &http.Transport{
			// Connect and handshake bounded by ForwardDialTimeout, not by
			// the transport's (raft's) timeout: a leader that does not
			// answer fails the forward fast, and it never left this node.
			DialTLSContext: n.forwardDialer(func(ctx context.Context, _, addr string) (net.Conn, error) {
				return n.stream.dialTLS(ctx, addr, ALPNForward, expectID(id))
			}),
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     forwardIdleTimeout,
		},
		// Never follow a redirect on behalf of a client.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	n.peerClients[id] = c
	return c
}

// closePeerClients closes the idle connections of every peer client.
func (n *Node) closePeerClients() {
	n.peerMu.Lock()
	defer n.peerMu.Unlock()
	for _, c := range n.peerClients {
		c.CloseIdleConnections()
	}
}

// SetForwardHandler sets the handler that serves requests other nodes
// forward to this one over the cluster port: the same HTTP API handler
// that serves clients. Until it is set such requests get 503.
func (n *Node) SetForwardHandler(h http.Handler) {
	n.forwardHandler.Store(&h)
}

// ClientHandler wraps the handler of the client-facing HTTP listener. With
// cluster TLS, node-to-node requests are accepted only on the cluster
// port: a request on the client listener that carries the hop marker or a
// signed client address, or asks for a node-to-node endpoint, is refused
// with 403 before it is looked at. Without cluster TLS forwarding uses the
// client listener, and h is returned unchanged.
func (n *Node) ClientHandler(h http.Handler) http.Handler {
	if n.cfg.TLS == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(HopHeader) != "" || r.Header.Get(clientAddrHeader) != "" ||
			strings.HasPrefix(r.URL.Path, InternalPathPrefix) {
			writeInternalError(w, http.StatusForbidden, "permission denied")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serveClusterHTTP serves HTTP on the cluster port. The connection's peer
// is authenticated; a forwarded request must name that peer in its hop
// marker, so a node cannot pass its requests off as another's.
func (n *Node) serveClusterHTTP(w http.ResponseWriter, r *http.Request) {
	peer, _ := r.Context().Value(peerCtxKey{}).(string)
	if peer == "" {
		writeInternalError(w, http.StatusForbidden, "permission denied")
		return
	}
	if strings.HasPrefix(r.URL.Path, InternalPathPrefix) {
		n.ServeInternal(w, r)
		return
	}
	if r.Header.Get(HopHeader) != peer {
		writeInternalError(w, http.StatusForbidden, "permission denied")
		return
	}
	if h, ok := n.loadForwardHandler(w); ok {
		h.ServeHTTP(w, r)
	}
}

// loadForwardHandler returns the handler of forwarded requests, or
// answers 503 while SetForwardHandler has not run yet.
func (n *Node) loadForwardHandler(w http.ResponseWriter) (http.Handler, bool) {
	h := n.forwardHandler.Load()
	if h == nil {
		writeInternalError(w, http.StatusServiceUnavailable, "node is starting")
		return nil, false
	}
	return *h, true
}

// startForwardServer serves forwarded requests and lease grants arriving
// on the cluster port until the stream closes.
func (n *Node) startForwardServer() {
	log := n.logger.Named("cluster-http")
	n.fwdServer = &http.Server{
		Handler:           http.HandlerFunc(n.serveClusterHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*peerConn); ok {
				return context.WithValue(ctx, peerCtxKey{}, pc.peer)
			}
			return ctx
		},
	}
	n.fwdDone = make(chan struct{})
	go func() {
		defer close(n.fwdDone)
		// Returns once the stream (raft shutdown) closes the port.
		_ = n.fwdServer.Serve(n.stream.forward)
	}()
}

// stopForwardServer closes the forwarding connections (bounded wait for
// requests in flight); the stream's Close ends Serve.
func (n *Node) stopForwardServer(ctx context.Context) {
	if n.fwdServer == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := n.fwdServer.Shutdown(ctx); err != nil {
		n.fwdServer.Close()
	}
}

// forwardTarget returns where a request for leader id goes, and the
// client to send it with. With cluster TLS: the leader's raft address as
// the raft library knows it, over a connection that must authenticate as
// id. Without: the HTTP address gossip published for that id and raft
// address.
func (n *Node) forwardTarget(id string) (base string, client *http.Client, ok bool) {
	leaderID, raftAddr, httpAddr := n.leaderInfo()
	if leaderID != id {
		return "", nil, false
	}
	if n.cfg.TLS != nil {
		if raftAddr == "" {
			return "", nil, false
		}
		return "https://" + raftAddr, n.peerClient(id), true
	}
	if httpAddr == "" {
		return "", nil, false
	}
	return "http://" + httpAddr, n.client, true
}
