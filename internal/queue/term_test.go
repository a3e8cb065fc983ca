package queue

import (
	"context"
	"testing"
	"time"

	"nimbus/internal/worker"
)

// held answers each invocation once the test releases it, or with the
// invocation's context's error; started hears of each invocation.
func held(started chan<- string, release <-chan struct{}) answerFunc {
	return func(ctx context.Context, _ <-chan struct{}, req worker.Request, _ int) (worker.Result, error) {
		started <- req.RequestID
		select {
		case <-release:
			return okResult(`"done"`), nil
		case <-ctx.Done():
			return worker.Result{}, ctx.Err()
		}
	}
}

// runTerm runs d for one term until the test ends it; ended closes when
// Run returns.
func runTerm(t *testing.T, d *Dispatcher) (end context.CancelFunc, ended chan struct{}) {
	term, end := context.WithCancel(t.Context())
	ended = make(chan struct{})
	go func() { d.Run(term); close(ended) }()
	return end, ended
}

// termWithARunHeld starts a term over one queued event of function f and
// returns once its run has started; the run returns when release closes
// (nil: never).
func termWithARunHeld(t *testing.T, release chan struct{}) (*testControl, *Dispatcher, context.CancelFunc, chan struct{}) {
	t.Helper()
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("f"))
	enqueue(t, cp, newEvent("e1", "f"))
	started := make(chan string, 1)
	d := NewDispatcher(cp, newWorker(1, held(started, release)), Hooks{}, sink.logger())
	end, ended := runTerm(t, d)
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the queued event was not run")
	}
	return cp, d, end, ended
}

func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting until %s", what)
	}
}

// A term that ends while one of its runs is in flight ends only once that
// run has returned and its outcome is committed: the next term starts
// with nothing of the last one still running, and no outcome is left to
// wait for its lease to expire.
func TestATermEndsOnlyOnceItsRunsAreCommitted(t *testing.T) {
	release := make(chan struct{})
	cp, _, end, ended := termWithARunHeld(t, release)

	end()
	// Proving that Run does not return early needs a wait: it may not
	// return while the run is in flight.
	select {
	case <-ended:
		t.Fatal("the term ended while one of its runs was still in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	waitClosed(t, "the term ends after its last run returned", ended)
	if r, _ := recordOf(cp, "e1"); r.Status != statusSuccess {
		t.Fatalf("record after the term ended: %+v; want success, committed before Run returned", r)
	}
	if n := len(cp.Store().QueueItems()); n != 0 {
		t.Fatalf("%d events queued after the term ended; want none", n)
	}
}

func TestADispatcherServesOneTerm(t *testing.T) {
	d := NewDispatcher(newControl(t), newWorker(1, always(okResult(`"done"`))), Hooks{}, newLogSink(t).logger())
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
	cp, d, end, ended := termWithARunHeld(t, nil)
	end()
	d.Abandon()
	waitClosed(t, "the term ends once its runs were abandoned", ended)
	items := cp.Store().QueueItems()
	if len(items) != 1 || !items[0].Leased(time.Now()) || items[0].Attempts != 1 {
		t.Fatalf("queue after abandoning: %+v; want e1, still leased, its attempt not counted again", items)
	}
	if r, _ := recordOf(cp, "e1"); r.Status == statusSuccess || r.Status == statusDeadLetter {
		t.Fatalf("record after abandoning: %+v; want no outcome", r)
	}
}
