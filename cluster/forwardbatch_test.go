package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// fillLanes sends forwardBatchesInFlight /hold requests through f to the
// holding leader, so that every later write through f waits for a batch.
// The returned release lets them go (their clients give up), which frees
// the slots and sends the queued batch.
func fillLanes(t *testing.T, f, leader *tnode) (release func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < forwardBatchesInFlight; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+f.httpAddr+"/hold", strings.NewReader("x"))
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	for i := 0; i < forwardBatchesInFlight; i++ {
		select {
		case <-leader.held:
		case <-time.After(10 * time.Second):
			t.Fatal("the leader never received the held writes")
		}
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// queued reports how many forwards wait in n's lanes.
func queued(n *Node) int {
	n.batcher.mu.Lock()
	defer n.batcher.mu.Unlock()
	total := 0
	for _, l := range n.batcher.lanes {
		total += len(l.queue)
	}
	return total
}

type forwardAnswer struct {
	code int
	by   string
	body string
}

func sendWrite(url, body string, retrySafe bool) forwardAnswer {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if retrySafe {
		req.Header.Set("X-Test-Retry-Safe", "1")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return forwardAnswer{body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return forwardAnswer{code: resp.StatusCode, by: resp.Header.Get("X-Served-By"), body: string(b)}
}

// TestForwardBatch: writes that reach a follower while its round trips to
// the leader are busy travel in one batch, and each gets its own answer
// (status, headers, body, query, hop marker) exactly as if it had gone
// alone; a leader that refuses the batch unread gets them one by one.
func TestForwardBatch(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tls    bool
		refuse bool
	}{{"plain", false, false}, {"tls", true, false}, {"refused", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var ca *CA
			if tc.tls {
				ca = newTestCA(t)
			}
			c := newClusterWith(t, 3, nil, ca)
			leader := c.waitLeader()
			f := c.followers(leader)[0]
			fn := f.node.Load()
			leader.hold.Store(true)
			release := fillLanes(t, f, leader)
			if tc.refuse {
				leader.blockLeases.Store(true) // the leader's internal endpoints answer 503
			}

			const writes = 20
			answers := make([]forwardAnswer, writes)
			var wg sync.WaitGroup
			for i := range writes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					answers[i] = sendWrite(fmt.Sprintf("http://%s/write?i=%d", f.httpAddr, i), fmt.Sprintf("body-%d", i), false)
				}()
			}
			waitFor(t, 10*time.Second, "the writes to queue", func() bool { return queued(fn) == writes })
			release()
			wg.Wait()

			for i, a := range answers {
				want := fmt.Sprintf("id=%s hop=%s query=i=%d body=body-%d", leader.id, f.id, i, i)
				if a.code != http.StatusCreated || a.by != leader.id || a.body != want {
					t.Errorf("write %d: %d by %q %q, want 201 by %s %q", i, a.code, a.by, a.body, leader.id, want)
				}
			}
			var m dto.Metric
			if err := fn.metrics.batchForwards.Write(&m); err != nil {
				t.Fatal(err)
			}
			h := m.GetHistogram()
			t.Logf("%d forward batches, %v requests in all", h.GetSampleCount(), h.GetSampleSum())
			if h.GetSampleCount() == 0 || h.GetSampleSum() != writes {
				t.Errorf("%d batches of %v requests, want the %d writes batched", h.GetSampleCount(), h.GetSampleSum(), writes)
			}
		})
	}
}

// TestForwardBatchCutOffWhenLeaderChanges: a batch that an isolated leader
// holds is cut off when raft elects another; each request of it is then
// judged on its own, as if it had gone alone: the retry-safe one goes to
// the new leader, the other gets 503 "leader changed".
func TestForwardBatchCutOffWhenLeaderChanges(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"tls", true}, {"plain", false}} {
		t.Run(tc.name, func(t *testing.T) {
			lf := &linkFaults{}
			var ca *CA
			if tc.tls {
				ca = newTestCA(t)
			}
			c := newClusterWith(t, 3, nil, ca, func(c *tcluster) { c.wrap = lf.wrap })
			t.Cleanup(lf.heal)
			leader := c.waitLeader()
			f := c.followers(leader)[0]
			fn := f.node.Load()
			leader.hold.Store(true)
			release := fillLanes(t, f, leader)
			defer release()

			safeCh, unsafeCh := make(chan forwardAnswer, 1), make(chan forwardAnswer, 1)
			go func() { safeCh <- sendWrite("http://"+f.httpAddr+"/hold", "x", true) }()
			go func() { unsafeCh <- sendWrite("http://"+f.httpAddr+"/hold", "x", false) }()
			waitFor(t, 10*time.Second, "two writes to queue", func() bool { return queued(fn) == 2 })
			// Free the slots: the two queued writes leave in one batch,
			// which the leader holds too.
			release()
			for i := 0; i < 2; i++ {
				select {
				case <-leader.held:
				case <-time.After(10 * time.Second):
					t.Fatal("the leader never received the batched writes")
				}
			}
			lf.isolate(leader)

			checkCutOff(t, leader, <-safeCh, <-unsafeCh)
		})
	}
}

// TestForwardBatchCodec: answers and requests survive their encodings,
// and the decoders refuse what is out of bounds.
func TestForwardBatchCodec(t *testing.T) {
	reqs := []batchedRequest{
		{method: "POST", uri: "/v1/auth/token/create?x=1", header: http.Header{"X-Vault-Token": {"s.x"}, "A": {"1", "2"}}, body: []byte(`{"ttl":"1h"}`)},
		{method: "DELETE", uri: "/v1/auth/token/x", header: http.Header{}, body: []byte{}},
	}
	got, err := decodeForwardBatch(encodeForwardBatch(reqs))
	if err != nil || !reflect.DeepEqual(got, reqs) {
		t.Fatalf("requests: %v %+v, want %+v", err, got, reqs)
	}
	answers := []batchedAnswer{{status: 200, header: http.Header{"Content-Type": {"application/json"}}, body: []byte("{}")}}
	gotA, err := decodeForwardAnswers(encodeForwardAnswers(answers), 1)
	if err != nil || !reflect.DeepEqual(gotA, answers) {
		t.Fatalf("answers: %v %+v", err, gotA)
	}
	if _, err := decodeForwardAnswers(encodeForwardAnswers(answers), 2); err == nil {
		t.Error("one answer for two requests accepted")
	}
	tooMany := make([]batchedRequest, maxBatchForwards+1)
	for i := range tooMany {
		tooMany[i] = batchedRequest{method: "POST", uri: "/", header: http.Header{}}
	}
	for name, raw := range map[string][]byte{
		"empty":     nil,
		"version":   {2, 0},
		"no items":  {forwardBatchVersion, 0},
		"too many":  encodeForwardBatch(tooMany),
		"truncated": encodeForwardBatch(reqs)[:20],
		"trailing":  append(encodeForwardBatch(reqs), 0),
		"huge len":  {forwardBatchVersion, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		if _, err := decodeForwardBatch(raw); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzForwardBatchDecode: the leader's decoder never panics, and what it
// accepts encodes back to the same bytes' meaning.
func FuzzForwardBatchDecode(f *testing.F) {
	f.Add(encodeForwardBatch([]batchedRequest{{method: "POST", uri: "/v1/x", header: http.Header{"A": {"b"}}, body: []byte("c")}}))
	f.Add([]byte{forwardBatchVersion, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		reqs, err := decodeForwardBatch(raw)
		if err != nil {
			return
		}
		again, err := decodeForwardBatch(encodeForwardBatch(reqs))
		if err != nil || !reflect.DeepEqual(again, reqs) {
			t.Fatalf("re-encoded batch: %v %+v, want %+v", err, again, reqs)
		}
	})
}

// TestServeForwardBatchRefuses: the leader serves a batch only when every
// request of it is a forwarded API request (hop marker set, naming the
// authenticated peer with cluster TLS; no node-to-node path); otherwise
// none of it runs.
func TestServeForwardBatchRefuses(t *testing.T) {
	var served atomic.Int32
	n := &Node{}
	n.SetForwardHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.Header().Set("X-Path", r.URL.Path)
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "ok")
	}))
	good := batchedRequest{method: "POST", uri: "/v1/auth/token/create", header: http.Header{HopHeader: {"node2"}}, body: []byte("{}")}
	noHop := good
	noHop.header = http.Header{}
	internal := good
	internal.uri = ForwardBatchPath
	absolute := good
	absolute.uri = "//elsewhere/v1/auth/token/create"
	for _, tc := range []struct {
		name   string
		method string
		peer   string
		body   []byte
		want   int
	}{
		{"get", http.MethodGet, "", encodeForwardBatch([]batchedRequest{good}), http.StatusMethodNotAllowed},
		{"garbage", http.MethodPost, "", []byte("{}"), http.StatusBadRequest},
		{"too large", http.MethodPost, "", make([]byte, maxForwardBatchBytes+1), http.StatusRequestEntityTooLarge},
		{"no hop marker", http.MethodPost, "", encodeForwardBatch([]batchedRequest{good, noHop}), http.StatusForbidden},
		{"another peer's", http.MethodPost, "node3", encodeForwardBatch([]batchedRequest{good}), http.StatusForbidden},
		{"batch in a batch", http.MethodPost, "", encodeForwardBatch([]batchedRequest{good, internal}), http.StatusBadRequest},
		{"absolute URI", http.MethodPost, "", encodeForwardBatch([]batchedRequest{absolute}), http.StatusBadRequest},
		{"served", http.MethodPost, "node2", encodeForwardBatch([]batchedRequest{good, good}), http.StatusOK},
	} {
		served.Store(0)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(tc.method, ForwardBatchPath, bytes.NewReader(tc.body))
		n.serveForwardBatch(rec, req, tc.peer)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, rec.Code, tc.want, rec.Body)
			continue
		}
		if tc.want != http.StatusOK {
			if served.Load() != 0 {
				t.Errorf("%s: %d requests of a refused batch ran", tc.name, served.Load())
			}
			continue
		}
		answers, err := decodeForwardAnswers(rec.Body.Bytes(), 2)
		if err != nil || served.Load() != 2 {
			t.Fatalf("%s: %v, %d served", tc.name, err, served.Load())
		}
		for _, a := range answers {
			if a.status != http.StatusAccepted || string(a.body) != "ok" || a.header.Get("X-Path") != "/v1/auth/token/create" {
				t.Errorf("%s: answer %+v", tc.name, a)
			}
		}
	}
}
