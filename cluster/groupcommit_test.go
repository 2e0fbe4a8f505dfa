package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/fsm"
)

// stubLog is a raft stand-in for the group commit: it applies each entry
// to a real fsm.FSM at the next index. While held, an entry's future does
// not resolve until release is called, as if raft were still committing it.
type stubLog struct {
	f   *fsm.FSM
	err error // set: every future fails with it

	mu      sync.Mutex
	index   uint64
	entries [][]byte
	hold    chan struct{}
	started chan struct{} // gets a value when an entry is sent
}

func newStubLog() *stubLog {
	return &stubLog{f: fsm.New(), started: make(chan struct{}, 1024)}
}

type stubFuture struct {
	wait  chan struct{}
	err   error
	res   interface{}
	index uint64
}

func (s *stubFuture) Error() error          { <-s.wait; return s.err }
func (s *stubFuture) Response() interface{} { return s.res }
func (s *stubFuture) Index() uint64         { return s.index }

func (l *stubLog) apply(entry []byte, _ time.Duration) raft.ApplyFuture {
	l.mu.Lock()
	l.index++
	l.entries = append(l.entries, entry)
	fut := &stubFuture{wait: make(chan struct{}), index: l.index, err: l.err}
	if l.err == nil {
		fut.res = l.f.Apply(l.index, entry)
	}
	hold := l.hold
	l.mu.Unlock()
	l.started <- struct{}{}
	go func() {
		if hold != nil {
			<-hold
		}
		close(fut.wait)
	}()
	return fut
}

func (l *stubLog) group() *groupCommit {
	return &groupCommit{apply: l.apply, timeout: time.Second}
}

func createEntry(t *testing.T, name string) []byte {
	t.Helper()
	e, err := fsm.Encode(fsm.CreateToken{Token: fsm.Token{
		Hash: fmt.Sprintf("%064x", name), Accessor: "acc-" + name, Policies: []string{"default"}, Type: fsm.TokenTypeService,
	}, Now: 1})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// waitQueued waits until g holds n queued proposals.
func waitQueued(t *testing.T, g *groupCommit, n int) {
	t.Helper()
	waitFor(t, 5*time.Second, fmt.Sprintf("%d queued proposals", n), func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.queue) == n
	})
}

type proposeResult struct {
	res   fsm.Result
	index uint64
	err   error
}

func TestGroupCommitSharesAnEntryWhileOneIsInFlight(t *testing.T) {
	l := newStubLog()
	l.hold = make(chan struct{})
	g := l.group()

	// Alone, a command goes at once in its own entry.
	first := make(chan proposeResult, 1)
	go func() {
		r, i, err := g.propose(context.Background(), createEntry(t, "first"))
		first <- proposeResult{r, i, err}
	}()
	<-l.started

	// While it is in flight, the next ones (a duplicate among them) wait
	// and then share one entry.
	const n = 20
	results := make([]chan proposeResult, n)
	for i := range results {
		results[i] = make(chan proposeResult, 1)
		name := fmt.Sprintf("c%d", i)
		if i == 7 {
			name = "first"
		}
		go func(e []byte, out chan proposeResult) {
			r, idx, err := g.propose(context.Background(), e)
			out <- proposeResult{r, idx, err}
		}(createEntry(t, name), results[i])
		waitQueued(t, g, i+1)
	}
	close(l.hold)

	if r := <-first; r.err != nil || r.index != 1 || r.res.Err != nil || r.res.Token == nil {
		t.Fatalf("first: %+v", r)
	}
	for i, ch := range results {
		r := <-ch
		if r.err != nil || r.index != 2 {
			t.Fatalf("proposal %d: index %d, err %v", i, r.index, r.err)
		}
		if i == 7 {
			if !errors.Is(r.res.Err, fsm.ErrTokenExists) {
				t.Errorf("the duplicate: %v", r.res.Err)
			}
			continue
		}
		if r.res.Err != nil || r.res.Token == nil || r.res.Token.Accessor != fmt.Sprintf("acc-c%d", i) {
			t.Errorf("proposal %d got %+v", i, r.res)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) != 2 || fsm.Type(l.entries[0][0]) != fsm.TypeCreateToken || fsm.Type(l.entries[1][0]) != fsm.TypeBatch {
		t.Fatalf("%d entries, want a create then a batch", len(l.entries))
	}
	if got := l.f.LastApplied(); got != 2 {
		t.Errorf("applied %d", got)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.committing || len(g.queue) != 0 {
		t.Error("the group commit did not settle")
	}
}

func TestGroupCommitSplitsAtItsBounds(t *testing.T) {
	l := newStubLog()
	l.hold = make(chan struct{})
	g := l.group()
	var wg sync.WaitGroup
	errs := make(chan error, 2*groupCommitMaxCommands)
	propose := func(name string) {
		defer wg.Done()
		if _, _, err := g.propose(context.Background(), createEntry(t, name)); err != nil {
			errs <- err
		}
	}
	wg.Add(1)
	go propose("head")
	<-l.started
	total := groupCommitMaxCommands + 10
	wg.Add(total)
	for i := 0; i < total; i++ {
		go propose(fmt.Sprintf("q%d", i))
	}
	waitQueued(t, g, total)
	close(l.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	// head alone, then the bound, then the rest.
	if len(l.entries) != 3 {
		t.Fatalf("%d entries, want 3", len(l.entries))
	}
	for i, want := range []int{groupCommitMaxCommands, 10} {
		c, err := fsm.Decode(l.entries[i+1])
		if err != nil {
			t.Fatal(err)
		}
		if got := len(c.(fsm.Batch).Commands); got != want {
			t.Errorf("entry %d holds %d commands, want %d", i+2, got, want)
		}
	}
	if got := l.f.Len(); got != total+1 {
		t.Errorf("%d tokens stored, want %d", got, total+1)
	}
}

func TestGroupCommitWithdrawsWhatNoEntryTook(t *testing.T) {
	l := newStubLog()
	l.hold = make(chan struct{})
	g := l.group()
	go func() { _, _, _ = g.propose(context.Background(), createEntry(t, "head")) }()
	<-l.started

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, _, err := g.propose(ctx, createEntry(t, "gives-up"))
		done <- err
	}()
	waitQueued(t, g, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	waitQueued(t, g, 0)
	close(l.hold)
	waitFor(t, 5*time.Second, "the group commit to settle", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return !g.committing
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.entries) != 1 {
		t.Fatalf("%d entries: the withdrawn command was sent", len(l.entries))
	}
}

func TestGroupCommitGivesEveryProposalTheEntrysError(t *testing.T) {
	l := newStubLog()
	l.err = raft.ErrLeadershipLost
	l.hold = make(chan struct{})
	g := l.group()
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for i := 0; i < 5; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, _, err := g.propose(context.Background(), createEntry(t, fmt.Sprintf("e%d", i)))
			errs <- err
		}(i)
		if i == 0 {
			<-l.started
		} else {
			waitQueued(t, g, i)
		}
	}
	close(l.hold)
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, raft.ErrLeadershipLost) {
			t.Errorf("err %v", err)
		}
	}
}
