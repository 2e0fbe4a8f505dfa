package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ForwardBatchPath is the leader's endpoint for a batch of forwarded
// requests (forward coalescing): one HTTP round trip carries many client
// requests, each served by the leader's API handler exactly as if it had
// come on its own.
const ForwardBatchPath = InternalPathPrefix + "forward-batch"

const (
	// forwardBatchesInFlight bounds what one follower has in flight to
	// one leader before requests start to wait and coalesce: below it a
	// request goes at once and alone, so a lone client waits no longer
	// than without batching. Two keep the leader's group commit fed while
	// the previous batch's answers travel back.
	forwardBatchesInFlight = 2
	// maxBatchForwards bounds the requests in one batch.
	maxBatchForwards = 64
	// maxBatchedBody is the largest request body that joins a batch; a
	// larger request goes alone.
	maxBatchedBody = 64 << 10
	// maxForwardBatchBytes bounds a batch's encoded request (and the
	// leader refuses more): maxBatchForwards bodies at maxBatchedBody
	// plus headers.
	maxForwardBatchBytes = maxBatchForwards*maxBatchedBody + 1<<20
	// maxForwardBatchAnswer bounds the answer a follower reads.
	maxForwardBatchAnswer = 64 << 20
	// forwardBatchVersion is the first byte of both encodings.
	forwardBatchVersion = 1
)

// errBatchRefused means the leader answered a batch without serving any of
// it (an older build without the endpoint, a node still starting): each
// request may then go alone.
var errBatchRefused = errors.New("leader refused the forward batch")

// batchable reports whether r may travel in a batch: a write to the token
// APIs with a small body. Reads and the sys endpoints always go alone.
func batchable(r *http.Request, body []byte) bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodDelete:
	default:
		return false
	}
	return len(body) <= maxBatchedBody && !strings.HasPrefix(r.URL.Path, "/v1/sys/")
}

// forwardBatcher coalesces the forwards this node sends to a leader: one
// lane per leader (id and address), each with a bounded number of round
// trips in flight and a queue of requests waiting for the next.
type forwardBatcher struct {
	mu    sync.Mutex
	lanes map[string]*forwardLane
}

// forwardLane is the batching state for one leader.
type forwardLane struct {
	id, base string
	client   *http.Client
	inflight int // round trips in flight: single requests and batches
	queue    []*batchItem
}

// batchItem is one request waiting in a lane.
type batchItem struct {
	r      *http.Request
	body   []byte
	queued time.Time
	done   chan batchAnswer // buffered: the sender never blocks
}

// batchAnswer is the leader's answer to one batched request, or why there
// is none.
type batchAnswer struct {
	resp *http.Response
	err  error
}

// lane returns the lane for leader id at base; the caller holds b.mu.
func (b *forwardBatcher) lane(id, base string, client *http.Client) *forwardLane {
	if b.lanes == nil {
		b.lanes = make(map[string]*forwardLane)
	}
	key := id + " " + base
	l := b.lanes[key]
	if l == nil || l.client != client {
		// A new leader, or a new client for it (cluster TLS re-keyed):
		// the old lane's batches finish on their own.
		l = &forwardLane{id: id, base: base, client: client}
		b.lanes[key] = l
	}
	return l
}

// sendForwardBatched is sendForward for a batchable request: it goes at
// once and alone while the lane has room, else it waits for the next batch.
func (n *Node) sendForwardBatched(r *http.Request, id, base string, client *http.Client, body []byte) (*http.Response, context.CancelFunc, error) {
	b := &n.batcher
	b.mu.Lock()
	l := b.lane(id, base, client)
	if l.inflight < forwardBatchesInFlight && len(l.queue) == 0 {
		l.inflight++
		b.mu.Unlock()
		resp, cancel, err := n.sendForwardOne(r, id, base, client, body)
		n.leaveLane(l)
		return resp, cancel, err
	}
	it := &batchItem{r: r, body: body, queued: time.Now(), done: make(chan batchAnswer, 1)}
	l.queue = append(l.queue, it)
	b.mu.Unlock()

	select {
	case a := <-it.done:
		if errors.Is(a.err, errBatchRefused) {
			return n.sendForwardOne(r, id, base, client, body)
		}
		return a.resp, func() {}, a.err
	case <-r.Context().Done():
		b.mu.Lock()
		for i, q := range l.queue {
			if q == it {
				// Still queued: it never left, nothing to wait for.
				l.queue = append(l.queue[:i], l.queue[i+1:]...)
				break
			}
		}
		b.mu.Unlock()
		// Sent already or not: the client has gone; whatever the
		// leader answers is dropped (done is buffered).
		return nil, nil, r.Context().Err()
	}
}

// leaveLane ends one round trip of l: the slot passes to a batch of what
// queued meanwhile, or is freed.
func (n *Node) leaveLane(l *forwardLane) {
	batch := n.takeBatch(l)
	if batch != nil {
		go n.runBatches(l, batch)
	}
}

// takeBatch takes the next batch from l's queue, keeping the caller's
// slot, or frees the slot when nothing waits.
func (n *Node) takeBatch(l *forwardLane) []*batchItem {
	b := &n.batcher
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(l.queue) == 0 {
		l.inflight--
		return nil
	}
	k := min(len(l.queue), maxBatchForwards)
	batch := make([]*batchItem, k)
	copy(batch, l.queue)
	l.queue = append(l.queue[:0], l.queue[k:]...)
	return batch
}

// runBatches sends batch and then every batch that queued meanwhile, until
// the lane's queue is empty.
func (n *Node) runBatches(l *forwardLane, batch []*batchItem) {
	for batch != nil {
		n.sendBatch(l, batch)
		batch = n.takeBatch(l)
	}
}

// sendBatch sends one batch to l's leader and gives each item its answer.
// A failed round trip fails every item with the same error, which
// forwardToLeader then judges for each request on its own (retry-safe or
// not), as for a request that went alone.
func (n *Node) sendBatch(l *forwardLane, batch []*batchItem) {
	fail := func(err error) {
		for _, it := range batch {
			it.done <- batchAnswer{err: err}
		}
	}
	reqs := make([]batchedRequest, len(batch))
	for i, it := range batch {
		reqs[i] = batchedRequest{
			method: it.r.Method,
			uri:    it.r.URL.RequestURI(),
			header: n.forwardHeader(it.r),
			body:   it.body,
		}
	}
	payload := encodeForwardBatch(reqs)
	n.metrics.batchForwards.Observe(float64(len(batch)))

	// ForwardTimeout counts from the oldest request's arrival in the
	// queue: waiting for the batch uses up a request's time too, as
	// waiting for the leader's answer would.
	tctx, cancelTimeout := context.WithDeadline(context.Background(), batch[0].queued.Add(n.timing.ForwardTimeout))
	defer cancelTimeout()
	ctx, cancelCause := context.WithCancelCause(tctx)
	defer cancelCause(context.Canceled)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+ForwardBatchPath, bytes.NewReader(payload))
	if err != nil {
		fail(err)
		return
	}
	req.Header.Set(HopHeader, n.id)
	req.Header.Set("Content-Type", "application/octet-stream")
	// The leader writes all the answers at once, after all of them ran:
	// once its headers are in, a leader change must not cut them off.
	resp, err := n.doForward(ctx, cancelCause, l.id, l.client, req)
	if err != nil {
		fail(err)
		return
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardBatchAnswer+1))
	if err != nil {
		fail(err)
		return
	}
	if resp.StatusCode != http.StatusOK {
		// Refused before any request ran (serveForwardBatch).
		n.logger.Debug("leader refused a forward batch", "leader", l.id, "status", resp.StatusCode)
		fail(errBatchRefused)
		return
	}
	answers, err := decodeForwardAnswers(raw, len(batch))
	if err != nil {
		// The requests ran but their answers are lost: like a connection
		// broken after sending (io.ErrUnexpectedEOF), never retried
		// unless retry-safe.
		n.logger.Warn("malformed forward batch answer", "leader", l.id, "error", err)
		fail(fmt.Errorf("%w: %w", io.ErrUnexpectedEOF, err))
		return
	}
	for i, it := range batch {
		a := answers[i]
		it.done <- batchAnswer{resp: &http.Response{
			StatusCode:    a.status,
			Header:        a.header,
			Body:          io.NopCloser(bytes.NewReader(a.body)),
			ContentLength: int64(len(a.body)),
		}}
	}
}

// batchedRequest is one request of a forward batch.
type batchedRequest struct {
	method, uri string
	header      http.Header
	body        []byte
}

// batchedAnswer is the leader's answer to one batchedRequest.
type batchedAnswer struct {
	status int
	header http.Header
	body   []byte
}

// serveForwardBatch is the leader side of ForwardBatchPath: it serves
// every request of the batch concurrently through the API handler (so
// they meet in the group commit), each with the batch's connection
// properties, and answers all of them at once. It answers anything but
// 200 only before any request ran. peer is the authenticated sender
// (cluster TLS), "" without cluster TLS.
func (n *Node) serveForwardBatch(w http.ResponseWriter, r *http.Request, peer string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeInternalError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	h, ok := n.loadForwardHandler(w)
	if !ok {
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxForwardBatchBytes))
	if tooLarge := (*http.MaxBytesError)(nil); errors.As(err, &tooLarge) {
		writeInternalError(w, http.StatusRequestEntityTooLarge, "forward batch too large")
		return
	} else if err != nil {
		writeInternalError(w, http.StatusBadRequest, "cannot read request body")
		return
	}
	reqs, err := decodeForwardBatch(raw)
	if err != nil {
		writeInternalError(w, http.StatusBadRequest, "malformed forward batch")
		return
	}
	subs := make([]*http.Request, len(reqs))
	for i, q := range reqs {
		// A batch carries forwarded API requests only: no node-to-node
		// endpoint (no batch in a batch), and with cluster TLS each must
		// name the authenticated sender, as a request on its own must.
		if hop := q.header.Get(HopHeader); hop == "" || (peer != "" && hop != peer) {
			writeInternalError(w, http.StatusForbidden, "permission denied")
			return
		}
		sub, err := http.NewRequestWithContext(r.Context(), q.method, q.uri, bytes.NewReader(q.body))
		// Only a path (and query), as in the request line of a forward
		// on its own.
		if err != nil || sub.URL.Scheme != "" || sub.URL.Host != "" || !strings.HasPrefix(q.uri, "/") ||
			strings.HasPrefix(sub.URL.Path, InternalPathPrefix) {
			writeInternalError(w, http.StatusBadRequest, "malformed forward batch")
			return
		}
		sub.Header = q.header
		sub.ContentLength = int64(len(q.body))
		sub.RemoteAddr = r.RemoteAddr
		sub.Host = r.Host
		sub.TLS = r.TLS
		subs[i] = sub
	}
	answers := make([]batchedAnswer, len(subs))
	var wg sync.WaitGroup
	for i, sub := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := &answerRecorder{header: make(http.Header)}
			h.ServeHTTP(rec, sub)
			answers[i] = rec.answer()
		}()
	}
	wg.Wait()
	out := encodeForwardAnswers(answers)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// answerRecorder is the ResponseWriter one batched request is served with.
type answerRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

// Header implements http.ResponseWriter.
func (a *answerRecorder) Header() http.Header { return a.header }

// WriteHeader implements http.ResponseWriter.
func (a *answerRecorder) WriteHeader(code int) {
	if a.status == 0 {
		a.status = code
	}
}

// Write implements http.ResponseWriter.
func (a *answerRecorder) Write(p []byte) (int, error) {
	if a.status == 0 {
		a.status = http.StatusOK
	}
	return a.body.Write(p)
}

func (a *answerRecorder) answer() batchedAnswer {
	st := a.status
	if st == 0 {
		st = http.StatusOK
	}
	return batchedAnswer{status: st, header: a.header, body: a.body.Bytes()}
}

// The batch encodings: a version byte, a count, then per request method,
// URI, headers and body (per answer status, headers and body); strings
// and bodies are length-prefixed, counts and lengths are uvarints.

func encodeForwardBatch(reqs []batchedRequest) []byte {
	out := []byte{forwardBatchVersion}
	out = binary.AppendUvarint(out, uint64(len(reqs)))
	for _, q := range reqs {
		out = appendString(out, q.method)
		out = appendString(out, q.uri)
		out = appendHeader(out, q.header)
		out = appendBytes(out, q.body)
	}
	return out
}

func decodeForwardBatch(raw []byte) ([]batchedRequest, error) {
	d := batchDecoder{b: raw}
	n := d.start()
	if d.err == nil && (n == 0 || n > maxBatchForwards) {
		d.err = fmt.Errorf("batch of %d requests", n)
	}
	var reqs []batchedRequest
	for i := uint64(0); i < n && d.err == nil; i++ {
		q := batchedRequest{method: string(d.bytes()), uri: string(d.bytes())}
		q.header = d.header()
		q.body = d.bytes()
		reqs = append(reqs, q)
	}
	return reqs, d.finish()
}

func encodeForwardAnswers(answers []batchedAnswer) []byte {
	out := []byte{forwardBatchVersion}
	out = binary.AppendUvarint(out, uint64(len(answers)))
	for _, a := range answers {
		out = binary.AppendUvarint(out, uint64(a.status))
		out = appendHeader(out, a.header)
		out = appendBytes(out, a.body)
	}
	return out
}

func decodeForwardAnswers(raw []byte, want int) ([]batchedAnswer, error) {
	d := batchDecoder{b: raw}
	n := d.start()
	if d.err == nil && n != uint64(want) {
		d.err = fmt.Errorf("%d answers for %d requests", n, want)
	}
	var out []batchedAnswer
	for i := uint64(0); i < n && d.err == nil; i++ {
		st := d.uvarint()
		if d.err == nil && (st < 100 || st > 999) {
			d.err = fmt.Errorf("status %d", st)
		}
		a := batchedAnswer{status: int(st), header: d.header()}
		a.body = d.bytes()
		out = append(out, a)
	}
	return out, d.finish()
}

func appendBytes(out, b []byte) []byte {
	out = binary.AppendUvarint(out, uint64(len(b)))
	return append(out, b...)
}

func appendString(out []byte, s string) []byte {
	out = binary.AppendUvarint(out, uint64(len(s)))
	return append(out, s...)
}

func appendHeader(out []byte, h http.Header) []byte {
	out = binary.AppendUvarint(out, uint64(len(h)))
	for k, vs := range h {
		out = appendString(out, k)
		out = binary.AppendUvarint(out, uint64(len(vs)))
		for _, v := range vs {
			out = appendString(out, v)
		}
	}
	return out
}

// batchDecoder reads the batch encodings; the first error sticks and
// every later read returns zero values.
type batchDecoder struct {
	b   []byte
	err error
}

// maxBatchHeaderValues bounds the header values of one request or answer.
const maxBatchHeaderValues = 256

func (d *batchDecoder) start() uint64 {
	if len(d.b) == 0 || d.b[0] != forwardBatchVersion {
		d.err = errors.New("unknown forward batch version")
		return 0
	}
	d.b = d.b[1:]
	return d.uvarint()
}

func (d *batchDecoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, k := binary.Uvarint(d.b)
	if k <= 0 {
		d.err = errors.New("truncated forward batch")
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *batchDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errors.New("truncated forward batch")
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *batchDecoder) header() http.Header {
	n := d.uvarint()
	if d.err == nil && n > maxBatchHeaderValues {
		d.err = fmt.Errorf("%d header fields", n)
	}
	h := make(http.Header, min(n, maxBatchHeaderValues))
	total := uint64(0)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := string(d.bytes())
		m := d.uvarint()
		total += m
		if d.err == nil && total > maxBatchHeaderValues {
			d.err = fmt.Errorf("more than %d header values", maxBatchHeaderValues)
		}
		for j := uint64(0); j < m && d.err == nil; j++ {
			h[k] = append(h[k], string(d.bytes()))
		}
	}
	return h
}

func (d *batchDecoder) finish() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes in forward batch")
	}
	return d.err
}
