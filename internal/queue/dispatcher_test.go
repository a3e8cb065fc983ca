package queue

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"nimbus/internal/fsm"
	"nimbus/internal/runtime/python"
	"nimbus/internal/state"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// memControl applies commands to the real FSM in memory, one at a time,
// as the Raft leader of a cluster of one would.
type memControl struct {
	store *state.Store
	fsm   *fsm.FSM

	mu    sync.Mutex
	index uint64
}

func newMemControl() *memControl {
	s := state.New()
	return &memControl{store: s, fsm: fsm.New(s, slog.New(slog.NewTextHandler(io.Discard, nil)))}
}

func (c *memControl) Store() *state.Store { return c.store }

func (c *memControl) Apply(_ context.Context, t fsm.CommandType, cmd any) (any, error) {
	data, err := fsm.Encode(t, cmd)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.index++
	res := c.fsm.Apply(&raft.Log{Index: c.index, Type: raft.LogCommand, Data: data})
	c.mu.Unlock()
	if err, ok := res.(error); ok {
		return nil, err
	}
	return res, nil
}

// heldWorker runs each invocation until the test releases it.
type heldWorker struct {
	started chan string
	release chan struct{}
}

func (w *heldWorker) Invoke(ctx context.Context, req worker.Request) (worker.Result, error) {
	w.started <- req.RequestID
	select {
	case <-w.release:
	case <-ctx.Done():
		return worker.Result{}, ctx.Err()
	}
	return worker.Result{Response: python.Response{Payload: []byte(`"done"`)}, WorkerID: "w", Start: time.Now()}, nil
}

func (w *heldWorker) FreeSlots() int { return 1 }

// A term that ends while one of its runs is in flight ends only once that
// run has returned and its outcome is committed: the next term starts
// with nothing of the last one still running, and no outcome is left to
// wait for its lease to expire.
// queueOne returns a control plane with one function and one event
// queued for it, e1.
func queueOne(t *testing.T) *memControl {
	t.Helper()
	cp := newMemControl()
	ctx := t.Context()
	if _, err := cp.Apply(ctx, fsm.UpsertFunctionType, fsm.UpsertFunction{
		Function: client.Function{FunctionConfig: client.FunctionConfig{Name: "f", Timeout: client.Duration(time.Minute)}},
		Now:      time.Now().UTC(),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Apply(ctx, fsm.EnqueueType, fsm.Enqueue{Items: []state.QueueItem{
		{RequestID: "e1", Function: "f", Event: json.RawMessage(`{}`), Trigger: "async", EnqueuedAt: time.Now().UTC()},
	}}); err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestATermEndsOnlyOnceItsRunsAreCommitted(t *testing.T) {
	cp := queueOne(t)
	w := &heldWorker{started: make(chan string, 1), release: make(chan struct{})}
	d := NewDispatcher(cp, w, Hooks{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	term, endTerm := context.WithCancel(t.Context())
	ended := make(chan struct{})
	go func() { d.Run(term); close(ended) }()
	select {
	case <-w.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the queued event was not run")
	}

	endTerm()
	// Proving that Run does not return early needs a wait: it may not
	// return while the run is in flight.
	select {
	case <-ended:
		t.Fatal("the term ended while one of its runs was still in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(w.release)
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the term did not end after its last run returned")
	}
	rec, err := cp.Store().Record("e1")
	if err != nil || rec.Status != client.StatusSuccess {
		t.Fatalf("record after the term ended: %+v, %v; want success, committed before Run returned", rec, err)
	}
	if len(cp.Store().QueueItems()) != 0 {
		t.Fatalf("queue after the term ended: %+v; want empty", cp.Store().QueueItems())
	}
}

func TestADispatcherServesOneTerm(t *testing.T) {
	d := NewDispatcher(newMemControl(), &heldWorker{}, Hooks{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	d.Run(ctx)
	defer func() {
		if recover() == nil {
			t.Fatal("a second Run of the same Dispatcher did not panic")
		}
	}()
	d.Run(ctx)
}

// A node that stops and cannot wait abandons its runs: Run returns, and
// the event stays leased, to run again once its lease expires; no outcome
// is made up for it.
func TestAnAbandonedRunLeavesItsEventLeased(t *testing.T) {
	cp := queueOne(t)
	w := &heldWorker{started: make(chan string, 1), release: make(chan struct{})}
	d := NewDispatcher(cp, w, Hooks{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	term, endTerm := context.WithCancel(t.Context())
	ended := make(chan struct{})
	go func() { d.Run(term); close(ended) }()
	select {
	case <-w.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the queued event was not run")
	}
	endTerm()
	d.Abandon()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the term did not end once its runs were abandoned")
	}
	items := cp.Store().QueueItems()
	if len(items) != 1 || !items[0].Leased(time.Now()) || items[0].Attempts != 1 {
		t.Fatalf("queue after abandoning: %+v; want e1, still leased, its attempt not counted again", items)
	}
	if rec, err := cp.Store().Record("e1"); err != nil || rec.Status == client.StatusSuccess || rec.Status == client.StatusFailed {
		t.Fatalf("record after abandoning: %+v, %v; want no outcome", rec, err)
	}
}
