package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/cluster/status"
)

// hopByHop lists headers that describe one connection and are never
// forwarded (RFC 9110 §7.6.1).
var hopByHop = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// forwardToLeader (ForwardToLeader, in metrics.go, is it with telemetry)
// sends r to the leader's HTTP address with HopHeader set
// and copies the answer to w. It waits up to LeaderWait for a leader whose
// HTTP address gossip has published. forwarded=false with a nil error means
// this node is the leader and must handle r itself. A request that already
// carries HopHeader is never forwarded again (status.ErrHopRefused). When the
// leader cannot be reached it waits for a leader change (at most two
// election timeouts), re-checks the leader and retries, until LeaderWait
// after the first failure; then it returns status.ErrNoLeader. A target that
// answers 503 with HopRefusedHeader (it does not lead and did not run the
// request) counts as unreachable. On error
// nothing has been written to w, and
// r.Body is left re-readable.
//
// A request is sent a second time only when that cannot make it run
// twice with a different outcome: when the first copy provably never left
// (connect or handshake failed, bounded by Timing.ForwardDialTimeout), or
// when the caller marked it status.WithRetrySafe. When raft reports a
// leader change (or the loss of the leader) while the old leader holds the
// request, the forward is cancelled at once (cancelForwards) instead of
// waiting out ForwardTimeout on a leader that may never answer: a
// retry-safe request then goes to the new leader, any other gets
// status.ErrLeaderChanged (the old leader may have applied it).
//
// The target is chosen by forwardTarget from the raft leader's id, never
// from the request. With cluster TLS it is the leader's raft address from
// the raft library over the cluster port, on a connection whose peer
// certificate must name the leader's id (gossip plays no part). Without,
// it is the HTTP address published in gossip by the member whose id and
// raft address match the raft leader.
func (n *Node) forwardToLeader(w http.ResponseWriter, r *http.Request) (bool, error) {
	if n.shuttingDown.Load() {
		return false, status.ErrShuttingDown
	}
	if n.steppingDown.Load() {
		n.waitStepDown(r.Context())
	}
	if n.raft.State() == raft.Leader {
		return false, nil
	}
	if r.Header.Get(HopHeader) != "" {
		return false, status.ErrHopRefused
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		b, err := readBody(r)
		r.Body.Close()
		// Leave the body re-readable for the caller whatever happens.
		r.Body = io.NopCloser(bytes.NewReader(b))
		if err != nil {
			return false, err
		}
		body = b
	}

	retrySafe := status.RetrySafe(r.Context()) || repeatable(r.Method)
	failed := ""
	// A leader that cannot be reached is tried again after each wait for a
	// leader change, until LeaderWait after the first failure: raft may go
	// on reporting a killed leader for up to about three heartbeat
	// timeouts (a follower's randomised timer re-arms once when it fires
	// shortly after the last contact), longer than one wait of two
	// election timeouts, and giving up then answered 503 just before the
	// next leader appeared. maxForwardAttempts only bounds the loop.
	var giveUp time.Time
	for attempt := 0; attempt < maxForwardAttempts; attempt++ {
		// Fast path: a known leader with a usable address needs no wait (and
		// no timer) at all. With cluster TLS the target comes from raft
		// alone: gossip's HTTP address is not needed (nor trusted).
		needHTTPAddr := n.cfg.TLS == nil
		id, _, addr := n.leaderInfo()
		if failed != "" || id == "" || (needHTTPAddr && addr == "" && id != n.id) {
			wctx, cancel := context.WithTimeout(r.Context(), n.timing.LeaderWait)
			if failed != "" {
				n.waitLeaderChange(wctx, failed)
			}
			var err error
			id, err = n.waitLeader(wctx, needHTTPAddr)
			cancel()
			if err != nil {
				return false, err
			}
		}
		if id == n.id {
			return false, nil
		}
		base, client, ok := n.forwardTarget(id)
		if !ok {
			// Leadership moved between the two looks: look again.
			failed = ""
			continue
		}
		start := time.Now()
		resp, cancelReq, err := n.sendForward(r, id, base, client, body)
		if err != nil {
			// No path in logs: token endpoints carry token IDs in the path.
			n.logger.Warn("forward to leader failed", "leader", id, "method", r.Method,
				"retry_safe", retrySafe, "held", time.Since(start), "error", err)
			switch {
			case r.Context().Err() != nil:
				return false, status.ErrTimeout
			case errors.Is(err, errLeaderChanged):
				if !retrySafe {
					// The old leader may have applied it: only the client
					// can decide to send it again.
					return false, status.ErrLeaderChanged
				}
				// Whoever leads now (the old leader again after a
				// hiccup, too) gets it.
				failed = ""
			case neverSent(err):
				// Never sent: safe to send to whoever leads next.
				failed = id
			case retrySafe && isConnError(err):
				failed = id
			case isConnError(err):
				// The connection broke after the request went out: the
				// leader may have applied it before it died. Sent again,
				// a create with a client-chosen ID would answer
				// "duplicate ID" for the client's own token.
				return false, status.ErrLeaderLost
			default:
				// A timeout: the leader may be executing it; do not send
				// it twice.
				return false, status.ErrNoLeader
			}
			if giveUp.IsZero() {
				giveUp = time.Now().Add(n.timing.LeaderWait)
			} else if time.Now().After(giveUp) {
				break
			}
			continue
		}
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get(HopRefusedHeader) != "" {
			// The target no longer leads (raft here has not heard yet) and
			// did not run the request: it is safe to send to the next
			// leader, a write too. Seen in rolling restarts: a follower
			// forwarded to a leader that had just handed over.
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cancelReq()
			n.logger.Debug("leader refused a forwarded request: it no longer leads", "leader", id, "method", r.Method)
			failed = id
			if giveUp.IsZero() {
				giveUp = time.Now().Add(n.timing.LeaderWait)
			} else if time.Now().After(giveUp) {
				break
			}
			continue
		}
		copyResponse(w, resp)
		resp.Body.Close()
		cancelReq()
		n.logger.Debug("forwarded request", "leader", id, "method", r.Method,
			"status", resp.StatusCode, "duration", time.Since(start))
		return true, nil
	}
	return false, status.ErrNoLeader
}

// errLeaderChanged is the cancellation cause of a forward that
// cancelForwards cut off.
var errLeaderChanged = errors.New("raft reported another leader (or none) while the request was forwarded")

// errForwardDial marks a failure to connect (or complete the cluster TLS
// handshake) to the leader: the request was never sent.
var errForwardDial = errors.New("connect to leader")

// forwardDialer bounds connecting to the leader, the TLS handshake
// included, by Timing.ForwardDialTimeout, and marks its failures with
// errForwardDial.
func (n *Node) forwardDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, n.timing.ForwardDialTimeout)
		defer cancel()
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", errForwardDial, addr, err)
		}
		return c, nil
	}
}

// inflightForward is one forward waiting for the leader's answer.
type inflightForward struct {
	leader string
	cancel context.CancelCauseFunc
}

// forwardSet holds the forwards waiting for a leader's answer, so that a
// leader change can cut off those sent to the old leader at once: an
// isolated leader never answers, and without this they would wait out
// ForwardTimeout although raft elected a new leader within an election
// timeout.
type forwardSet struct {
	mu sync.Mutex
	m  map[*inflightForward]struct{}
}

func (s *forwardSet) add(f *inflightForward) {
	s.mu.Lock()
	if s.m == nil {
		s.m = make(map[*inflightForward]struct{})
	}
	s.m[f] = struct{}{}
	s.mu.Unlock()
}

func (s *forwardSet) remove(f *inflightForward) {
	s.mu.Lock()
	delete(s.m, f)
	s.mu.Unlock()
}

// cancelForwards cuts off every forward in flight to a leader other than
// leader ("" cancels them all). observerLoop calls it on every leader
// change raft reports.
func (n *Node) cancelForwards(leader string) {
	s := &n.inflight
	s.mu.Lock()
	var cut int
	for f := range s.m {
		if f.leader != leader {
			f.cancel(errLeaderChanged)
			delete(s.m, f)
			cut++
		}
	}
	s.mu.Unlock()
	if cut > 0 {
		n.logger.Info("cancelled forwards to the previous leader", "count", cut, "leader", leader)
	}
}

// maxForwardAttempts bounds forwardToLeader's tries; in practice
// LeaderWait ends them first (each failed try is followed by a wait of up
// to two election timeouts for a leader change).
const maxForwardAttempts = 32

// maxBodyPrealloc bounds the buffer readBody allocates up front from a
// client's Content-Length; a larger body still reads, growing as it goes.
const maxBodyPrealloc = 1 << 20

// readBody reads r.Body whole in one allocation when the length is known:
// httpapi has already read the body and hands it over in a bytes.Reader,
// whose WriteTo copies it once into the right-sized buffer (io.ReadAll
// would grow a buffer from 512 bytes and copy on every step).
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength <= 0 || r.ContentLength > maxBodyPrealloc {
		return io.ReadAll(r.Body)
	}
	buf := bytes.NewBuffer(make([]byte, 0, r.ContentLength))
	_, err := io.Copy(buf, r.Body)
	return buf.Bytes(), err
}

// waitStepDown waits (bounded by ctx and StepDown's own bound) until
// StepDown has finished.
func (n *Node) waitStepDown(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*n.timing.ElectionTimeout+time.Second)
	defer cancel()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for n.steppingDown.Load() {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// waitLeaderChange waits (at most two election timeouts, bounded by ctx)
// for raft to report a leader other than failed.
func (n *Node) waitLeaderChange(ctx context.Context, failed string) {
	ctx, cancel := context.WithTimeout(ctx, 2*n.timing.ElectionTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if id, _, _ := n.leaderInfo(); id != "" && id != failed {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-n.shutdownCh:
			return
		case <-tick.C:
		}
	}
}

// sendForward sends one copy of r to leader id: a batchable request
// through the lane of batches to that leader (forwardbatch.go), any other
// on its own. The returned cancel must be called after the response body
// has been read. Until the leader's answer arrives the forward is in
// n.inflight: a leader change raft reports meanwhile cancels it, and the
// error wraps errLeaderChanged.
func (n *Node) sendForward(r *http.Request, id, base string, client *http.Client, body []byte) (*http.Response, context.CancelFunc, error) {
	if batchable(r, body) {
		return n.sendForwardBatched(r, id, base, client, body)
	}
	return n.sendForwardOne(r, id, base, client, body)
}

// forwardHeader is the header a forwarded copy of r carries: r's own
// without the hop-by-hop fields, the hop marker naming this node, and the
// client's address appended to X-Forwarded-For.
func (n *Node) forwardHeader(r *http.Request) http.Header {
	h := r.Header.Clone()
	for _, k := range hopByHop {
		h.Del(k)
	}
	h.Set(HopHeader, n.id)
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if prior := r.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			h.Set("X-Forwarded-For", strings.Join(prior, ", ")+", "+host)
		} else {
			h.Set("X-Forwarded-For", host)
		}
	}
	return h
}

// sendForwardOne sends r to leader id in an HTTP request of its own.
// base is the leader's scheme://host:port (forwardTarget); nothing of the
// request's own Host, X-Forwarded-* or absolute request line is used.
func (n *Node) sendForwardOne(r *http.Request, id, base string, client *http.Client, body []byte) (*http.Response, context.CancelFunc, error) {
	tctx, cancelTimeout := context.WithTimeout(r.Context(), n.timing.ForwardTimeout)
	ctx, cancelCause := context.WithCancelCause(tctx)
	cancel := func() {
		cancelCause(context.Canceled)
		cancelTimeout()
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, base+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.Header = n.forwardHeader(r)
	req.ContentLength = int64(len(body))
	if len(body) == 0 {
		req.Body = http.NoBody
	}
	resp, err := n.doForward(ctx, cancelCause, id, client, req)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return resp, cancel, nil
}

// doForward sends req (whose context is ctx, cancelled by cancelCause) to
// leader id, in n.inflight until the answer's headers arrive: a leader
// change raft reports meanwhile cancels it, and the error then wraps
// errLeaderChanged. From the headers on, a leader change must not cut the
// copy of an answer already given.
func (n *Node) doForward(ctx context.Context, cancelCause context.CancelCauseFunc, id string, client *http.Client, req *http.Request) (*http.Response, error) {
	f := &inflightForward{leader: id, cancel: cancelCause}
	n.inflight.add(f)
	// A change raft reported before f was added found nothing to cancel:
	// look once more now that any later one will.
	if cur, _, _ := n.leaderInfo(); cur != id {
		cancelCause(errLeaderChanged)
	}
	resp, err := client.Do(req)
	n.inflight.remove(f)
	if err != nil {
		if errors.Is(context.Cause(ctx), errLeaderChanged) && !errors.Is(err, errLeaderChanged) {
			err = fmt.Errorf("%w: %w", errLeaderChanged, err)
		}
		return nil, err
	}
	return resp, nil
}

// copyResponse writes the leader's status, headers and body to w.
func copyResponse(w http.ResponseWriter, resp *http.Response) {
	h := w.Header()
	for k, vs := range resp.Header {
		h[k] = append([]string(nil), vs...)
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
	w.WriteHeader(resp.StatusCode)
	// The status is already sent; a broken copy can only be logged by the
	// client's side seeing a short body. A pooled buffer: io.Copy would
	// allocate 32 KiB per forwarded request (neither the wrapped
	// ResponseWriter nor the client's body offers ReaderFrom/WriterTo),
	// which was 28% of all bytes allocated under a create load.
	bp := copyBufPool.Get().(*[]byte)
	_, _ = io.CopyBuffer(w, resp.Body, *bp)
	copyBufPool.Put(bp)
}

// copyBufPool holds the buffers copyResponse copies answers through; the
// answers of the token API are a few hundred bytes, larger ones take a few
// rounds.
var copyBufPool = sync.Pool{New: func() any {
	b := make([]byte, 4096)
	return &b
}}

// neverSent reports whether err says the request never left this node:
// connecting to the leader (or the cluster TLS handshake) failed.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.Is(err, errForwardDial) || (errors.As(err, &op) && op.Op == "dial")
}

// repeatable reports whether a request may run twice whatever happened to
// the first copy: reads.
func repeatable(method string) bool {
	return method == http.MethodGet || method == http.MethodHead
}

// isConnError reports whether err is a connection failure (refused, reset,
// closed before an answer) rather than a timeout: the leader is gone or the
// pooled connection went stale. If the connection broke after the old
// leader had received the request, it may have run, so only a retry-safe
// request (status.WithRetrySafe) is sent again after one.
func isConnError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNREFUSED)
}
