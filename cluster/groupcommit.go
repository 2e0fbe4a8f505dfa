package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/tokend/tokend/fsm"
)

// Group commit: the leader gathers the batchable commands (fsm.Batchable:
// creates and renewals) proposed concurrently into one raft entry, an
// fsm.Batch. One such entry is in raft at a time; commands proposed
// meanwhile wait in the queue and go together in the next entry, up to
// groupCommitMaxCommands and groupCommitMaxBytes. A command proposed while
// no entry is in flight goes at once, alone: group commit adds no wait
// when there is no queue.
//
// Under load this divides raft's per-entry work on every node (log store
// records and their encoding, AppendEntries encoding and decoding, a
// future and a channel hand-off per entry) by the commands per entry, and
// the log writes of the three nodes (which share the disk in a local
// cluster) by the same. Two entries in flight made entries of half the
// size and fewer creates/s (README, "Write path").
const (
	// groupCommitMaxCommands is fsm.MaxBatchCommands: one entry's apply,
	// during which other writes wait, stays short.
	groupCommitMaxCommands = fsm.MaxBatchCommands
	// groupCommitMaxBytes keeps an entry far below what raft sends in one
	// AppendEntries and what a follower's log store writes in one go.
	groupCommitMaxBytes = 256 << 10
)

// groupCommit is the queue of the group commit. Its goroutine lives only
// while an entry is in flight: the proposal that finds none in flight
// starts one, which commits entries until the queue is empty.
type groupCommit struct {
	apply   func(entry []byte, timeout time.Duration) raft.ApplyFuture
	timeout time.Duration
	// observe, when set, is given the commands of each entry sent.
	observe func(commands int)

	mu         sync.Mutex
	queue      []*groupProposal
	committing bool
}

// groupProposal is one command waiting in the group commit. res, index
// and err are set before done is closed.
type groupProposal struct {
	entry []byte
	done  chan struct{}
	taken bool // under groupCommit.mu: it left the queue for an entry

	res   fsm.Result
	index uint64
	err   error
}

// propose queues entry (one encoded batchable command) and waits until
// raft applied the entry that carried it, or ctx ends. A proposal still
// queued when ctx ends is withdrawn: it is never applied. One already
// sent may still be applied after propose returned ctx's error.
func (g *groupCommit) propose(ctx context.Context, entry []byte) (fsm.Result, uint64, error) {
	p := &groupProposal{entry: entry, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, p)
	var first []*groupProposal
	if !g.committing {
		g.committing = true
		first = g.takeLocked()
	}
	g.mu.Unlock()
	if first != nil {
		go g.commitLoop(first)
	}
	select {
	case <-p.done:
		return p.res, p.index, p.err
	case <-ctx.Done():
		g.withdraw(p)
		return fsm.Result{}, 0, ctx.Err()
	}
}

// withdraw takes p out of the queue if no entry took it yet.
func (g *groupCommit) withdraw(p *groupProposal) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p.taken {
		return
	}
	for i, q := range g.queue {
		if q == p {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			return
		}
	}
}

// takeLocked removes the next entry's proposals from the head of the
// queue: at least one, then as many as the bounds allow.
func (g *groupCommit) takeLocked() []*groupProposal {
	n, size := 0, 0
	for n < len(g.queue) && n < groupCommitMaxCommands {
		size += len(g.queue[n].entry)
		if n > 0 && size > groupCommitMaxBytes {
			break
		}
		n++
	}
	batch := make([]*groupProposal, n)
	copy(batch, g.queue[:n])
	for _, p := range batch {
		p.taken = true
	}
	// Clear the moved slots so the queue's array holds no stale pointers.
	rest := copy(g.queue, g.queue[n:])
	clear(g.queue[rest:])
	g.queue = g.queue[:rest]
	return batch
}

// commitLoop commits batch, then the queue's next entries, until the
// queue is empty.
func (g *groupCommit) commitLoop(batch []*groupProposal) {
	for batch != nil {
		g.commit(batch)
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.committing = false
			batch = nil
		} else {
			batch = g.takeLocked()
		}
		g.mu.Unlock()
	}
}

// commit sends batch as one entry (the command's own entry for a single
// one, else an fsm.Batch), waits for raft to apply it and hands each
// proposal its result.
func (g *groupCommit) commit(batch []*groupProposal) {
	entry := batch[0].entry
	if len(batch) > 1 {
		entries := make([][]byte, len(batch))
		for i, p := range batch {
			entries[i] = p.entry
		}
		var err error
		if entry, err = fsm.EncodeBatch(entries); err != nil {
			finish(batch, nil, 0, err)
			return
		}
	}
	if g.observe != nil {
		g.observe(len(batch))
	}
	fut := g.apply(entry, g.timeout)
	if err := fut.Error(); err != nil {
		finish(batch, nil, 0, err)
		return
	}
	res, ok := fut.Response().(fsm.Result)
	if !ok {
		finish(batch, nil, 0, fmt.Errorf("unexpected apply response %T", fut.Response()))
		return
	}
	results := []fsm.Result{res}
	if len(batch) > 1 {
		results = res.Batch
	}
	if len(results) != len(batch) {
		finish(batch, nil, 0, fmt.Errorf("a batch of %d commands gave %d results", len(batch), len(results)))
		return
	}
	finish(batch, results, fut.Index(), nil)
}

// finish hands out the results (or err to every proposal).
func finish(batch []*groupProposal, results []fsm.Result, index uint64, err error) {
	for i, p := range batch {
		if err == nil {
			p.res, p.index = results[i], index
		}
		p.err = err
		close(p.done)
	}
}
