package queue

import (
	"context"
	"sync"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
)

// Enqueuer commits asynchronous events through Raft before they are
// acknowledged, many per Raft entry: while one batch commits, the next
// gathers (group commit), so throughput grows with load and an idle
// request waits for one commit only.
type Enqueuer struct {
	cp Control

	mu      sync.Mutex
	pending []model.QueueItem
	waiters []chan error
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	// Committed, when set, is called after each batch commits.
	Committed func()
}

// NewEnqueuer starts an enqueuer; Close stops it.
func NewEnqueuer(cp Control) *Enqueuer {
	e := &Enqueuer{cp: cp, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go e.run()
	return e
}

// Enqueue returns once item is committed (nil) or could not be.
func (e *Enqueuer) Enqueue(ctx context.Context, item model.QueueItem) error {
	ch := make(chan error, 1)
	e.mu.Lock()
	e.pending = append(e.pending, item)
	e.waiters = append(e.waiters, ch)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *Enqueuer) run() {
	defer close(e.done)
	for {
		select {
		case <-e.stop:
			e.flush()
			return
		case <-e.wake:
			e.flush()
		}
	}
}

func (e *Enqueuer) flush() {
	for {
		// A batch holds up to 4 MB of events (at least one), so that a Raft
		// entry stays small however many arrive.
		e.mu.Lock()
		n, size := 0, 0
		for n < len(e.pending) && (n == 0 || size+len(e.pending[n].Event) <= 4<<20) {
			size += len(e.pending[n].Event)
			n++
		}
		items, waiters := e.pending[:n:n], e.waiters[:n:n]
		e.pending, e.waiters = e.pending[n:], e.waiters[n:]
		e.mu.Unlock()
		if len(items) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15e9)
		_, err := fsm.Apply(ctx, e.cp, fsm.Enqueue{Items: items})
		cancel()
		for _, w := range waiters {
			w <- err
		}
		if err == nil && e.Committed != nil {
			e.Committed()
		}
	}
}

// Close stops the enqueuer after committing what is pending.
func (e *Enqueuer) Close() {
	close(e.stop)
	<-e.done
}
