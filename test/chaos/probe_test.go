package chaos

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"
)

// probeCluster returns a cluster whose nodes are the given handlers; a nil
// handler is a node whose process is down (its address refuses
// connections).
func probeCluster(t *testing.T, handlers ...http.HandlerFunc) *Prober {
	t.Helper()
	c := &Cluster{RootToken: "root"}
	for _, h := range handlers {
		if h == nil {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			c.Nodes = append(c.Nodes, &Proc{HTTPAddr: addr})
			continue
		}
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		c.Nodes = append(c.Nodes, &Proc{HTTPAddr: srv.Listener.Addr().String()})
	}
	rec, err := NewRecorder(filepath.Join(t.TempDir(), "history.jsonl"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close() })
	return NewProber(c, rec, "test")
}

func draining(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Retry-After", "0")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte(`{"errors":["node is shutting down"]}`))
}

func serving(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{}`)) }

// TestProbeRetriesOnTheNextNode is the T9 case a 5-node run failed on: the
// probe's node answered 503 while draining and its process was gone by the
// retry. The retry must go to another node.
func TestProbeRetriesOnTheNextNode(t *testing.T) {
	for name, first := range map[string]http.HandlerFunc{"503 while draining": draining, "process down": nil} {
		t.Run(name, func(t *testing.T) {
			p := probeCluster(t, first, serving, serving)
			next, ok := p.op(context.Background(), 0, 0, "create", http.MethodPost, "/v1/auth/token/create", "root", `{}`)
			if !ok || next != 1 {
				t.Fatalf("op succeeded %v, next node %d: want success on node 1", ok, next)
			}
			op := p.Ops()[0]
			if op.First == "" || op.Final != "" {
				t.Fatalf("first %q final %q: want a first-attempt error and success after the retry", op.First, op.Final)
			}
			// The client stays on the node that answered.
			if next, ok := p.op(context.Background(), 0, next, "create", http.MethodPost, "/v1/auth/token/create", "root", `{}`); !ok || next != 1 {
				t.Fatalf("second op succeeded %v on next node %d: want node 1 again", ok, next)
			}
		})
	}
}

// TestProbeFailsAfterOneRetry keeps the check honest: two failing nodes in
// a row are an error after the one retry, and a non-retryable answer is not
// retried at all.
func TestProbeFailsAfterOneRetry(t *testing.T) {
	p := probeCluster(t, draining, nil, serving)
	next, ok := p.op(context.Background(), 0, 0, "create", http.MethodPost, "/v1/auth/token/create", "root", `{}`)
	if ok || next != 2 {
		t.Fatalf("op succeeded %v, next node %d: want failure, then node 2 (node 1 refused)", ok, next)
	}
	if op := p.Ops()[0]; op.First != "503" || op.Final != "transport" {
		t.Fatalf("first %q final %q: want 503 then transport", op.First, op.Final)
	}

	forbidden := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusForbidden) }
	p = probeCluster(t, forbidden, serving)
	if next, ok := p.op(context.Background(), 0, 0, "lookup", http.MethodGet, "/v1/auth/token/lookup-self", "x", ""); ok || next != 0 {
		t.Fatalf("403: succeeded %v, next node %d: want failure without a retry, staying on node 0", ok, next)
	}
	if op := p.Ops()[0]; op.First != "403" || op.Final != "403" {
		t.Fatalf("first %q final %q: want 403 both", op.First, op.Final)
	}
}
