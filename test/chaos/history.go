package chaos

import (
	"bufio"
	"encoding/json"
	"os"
	"sync"
	"time"
)

// Operation kinds of the workload.
const (
	OpCreate             = "create"              // root creates a family parent (index 0)
	OpChildCreate        = "child-create"        // the parent creates a child
	OpValidate           = "validate"            // lookup-self, default (local) read
	OpValidateConsistent = "validate-consistent" // lookup-self?consistent
	OpRenew              = "renew"
	OpRevoke             = "revoke" // revoke by token (a parent's cascades)
	OpRevokeAccessor     = "revoke-accessor"
)

// Outcomes, as Jepsen names them.
const (
	Ok   = "ok"   // definitely happened (2xx; for validates also a 403 answer)
	Fail = "fail" // definitely did not happen (4xx)
	Info = "info" // indeterminate: timeout, reset, 5xx, 429
)

// Op is one operation of the history: an invoke and its completion.
type Op struct {
	ID       int64  `json:"id"`
	Process  int    `json:"process"`
	Node     int    `json:"node"`
	Kind     string `json:"f"`
	Family   int    `json:"family"`
	Index    int    `json:"index"` // token's position in its family; 0 is the parent
	Token    string `json:"token"` // client-chosen test ID (the test ledger keeps it, RELIABILITY S1)
	Accessor string `json:"accessor,omitempty"`
	// Invoke and Complete are monotonic ns since the run started.
	Invoke       int64     `json:"invoke_ns"`
	Complete     int64     `json:"complete_ns"`
	InvokeWall   time.Time `json:"invoke_wall"`
	CompleteWall time.Time `json:"complete_wall"`
	Status       int       `json:"status"`
	Outcome      string    `json:"type"`
	// Valid is a validate's answer (200 = true, 403 = false).
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"`
	// RetryAfter is the answer's Retry-After header (RELIABILITY T1: the
	// only errors a client may see are 503 and 429 carrying it).
	RetryAfter string `json:"retry_after,omitempty"`
}

// Recorder collects the history and streams it to history.jsonl as invoke
// and completion events.
type Recorder struct {
	start time.Time

	mu   sync.Mutex
	ops  []*Op
	next int64
	f    *os.File
	w    *bufio.Writer
	enc  *json.Encoder
}

// NewRecorder writes events to path.
func NewRecorder(path string, start time.Time) (*Recorder, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	return &Recorder{start: start, f: f, w: w, enc: json.NewEncoder(w)}, nil
}

// Now is the monotonic time of the run.
func (r *Recorder) Now() int64 { return int64(time.Since(r.start)) }

type event struct {
	Event string `json:"event"` // invoke | complete
	*Op
}

// Invoke records the start of op and assigns its ID.
func (r *Recorder) Invoke(op *Op) {
	op.Invoke, op.InvokeWall = r.Now(), time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	op.ID = r.next
	r.ops = append(r.ops, op)
	cp := *op
	_ = r.enc.Encode(event{"invoke", &cp})
}

// Complete records op's completion.
func (r *Recorder) Complete(op *Op) {
	op.Complete, op.CompleteWall = r.Now(), time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := *op
	_ = r.enc.Encode(event{"complete", &cp})
}

// Ops returns the operations recorded so far (completed or not).
func (r *Recorder) Ops() []*Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Op(nil), r.ops...)
}

// Close flushes the file.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.w.Flush(); err != nil {
		return err
	}
	return r.f.Close()
}
