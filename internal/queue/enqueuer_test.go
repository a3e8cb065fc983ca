package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"nimbus/internal/fsm"
)

// holdFirstEnqueue makes cp's first Enqueue command wait, once it has
// begun, until the returned release is called; entered closes when it
// has begun.
func holdFirstEnqueue(cp *testControl) (entered <-chan struct{}, release func()) {
	in, out := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cp.setBefore(func(t fsm.CommandType, _ []byte) error {
		if t != fsm.EnqueueType {
			return nil
		}
		first := false
		once.Do(func() { first = true })
		if first {
			close(in)
			<-out
		}
		return nil
	})
	var rel sync.Once
	return in, func() { rel.Do(func() { close(out) }) }
}

// pendingEvents is how many events wait for the enqueuer's next batch.
func pendingEvents(e *Enqueuer) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.pending)
}

func newEnqueuer(t *testing.T, cp Control) *Enqueuer {
	e := NewEnqueuer(cp)
	t.Cleanup(e.Close)
	return e
}

func TestConcurrentEnqueuesCommitInBatchesAndAreAcknowledgedOnlyOnceCommitted(t *testing.T) {
	cp := newControl(t)
	entered, release := holdFirstEnqueue(cp)
	defer release()
	e := newEnqueuer(t, cp)
	var commits atomic.Int32
	e.Committed = func() { commits.Add(1) }

	// The first event's commit is held: the 50 that arrive meanwhile
	// gather into the next batch.
	first := make(chan error, 1)
	go func() { first <- e.Enqueue(context.Background(), newEvent("first", "f")) }()
	<-entered
	const n = 50
	var acked atomic.Int32
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := fmt.Sprintf("e%d", i)
			err := e.Enqueue(context.Background(), newEvent(id, "f"))
			if err == nil {
				acked.Add(1)
				if _, ok := cp.Store().QueueItem(id); !ok {
					err = fmt.Errorf("%s was acknowledged but is not in the store", id)
				}
			}
			errs <- err
		}()
	}
	waitFor(t, "the events to wait for the next batch", func() bool { return pendingEvents(e) == n })
	if a := acked.Load(); a != 0 {
		t.Fatalf("%d events were acknowledged before any was committed", a)
	}
	if len(cp.Store().QueueItems()) != 0 {
		t.Fatal("an event is in the store while its commit is held")
	}

	release()
	if err := <-first; err != nil {
		t.Fatalf("first event: %v", err)
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	var sizes []int
	for _, c := range commands[fsm.Enqueue](t, cp, fsm.EnqueueType) {
		sizes = append(sizes, len(c.Items))
	}
	if fmt.Sprint(sizes) != fmt.Sprint([]int{1, n}) {
		t.Fatalf("batches of %v events; want [1 %d]", sizes, n)
	}
	if got := len(cp.Store().QueueItems()); got != n+1 {
		t.Fatalf("%d events queued; want %d", got, n+1)
	}
	waitFor(t, "the Committed hook to fire once per batch", func() bool { return commits.Load() == 2 })
}

func TestAnEventWithARequestIDAlreadyQueuedOrRecordedIsNotQueuedTwice(t *testing.T) {
	cp := newControl(t)
	e := newEnqueuer(t, cp)
	ctx := withDefaultTimeout(t)

	// Twice in one batch, then again in a batch of its own.
	entered, release := holdFirstEnqueue(cp)
	go e.Enqueue(ctx, newEvent("hold", "f"))
	<-entered
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := e.Enqueue(ctx, newEvent("dup", "f")); err != nil {
				t.Errorf("enqueueing dup: %v", err)
			}
		})
	}
	waitFor(t, "both copies to wait for the next batch", func() bool { return pendingEvents(e) == 2 })
	release()
	wg.Wait()
	if err := e.Enqueue(ctx, newEvent("dup", "f")); err != nil {
		t.Fatalf("enqueueing dup again: %v", err)
	}
	n := 0
	for _, q := range cp.Store().QueueItems() {
		if q.RequestID == "dup" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("dup is queued %d times; want once", n)
	}

	// Once it has run, its record keeps it from being queued again.
	epoch := lease(t, cp, "dup", time.Now().UTC())
	if _, err := fsm.Apply(ctx, cp, fsm.Finish{Outcomes: []fsm.Outcome{{RequestID: "dup", Epoch: epoch, Kind: fsm.OutcomeComplete,
		Record: record{Status: statusSuccess}}}}); err != nil {
		t.Fatal(err)
	}
	if err := e.Enqueue(ctx, newEvent("dup", "f")); err != nil {
		t.Fatalf("enqueueing dup after it ran: %v", err)
	}
	if _, queued := cp.Store().QueueItem("dup"); queued {
		t.Fatal("an event that already ran was queued again")
	}
	if r, _ := recordOf(cp, "dup"); r.Status != statusSuccess {
		t.Fatalf("the record of dup is %q; want %q", r.Status, statusSuccess)
	}
}

func TestAnEnqueueWhoseCommitFailsReturnsTheErrorAndIsNotAcknowledged(t *testing.T) {
	cp := newControl(t)
	errNoLeader := errors.New("no leader")
	cp.setBefore(func(fsm.CommandType, []byte) error { return errNoLeader })
	e := newEnqueuer(t, cp)
	var commits atomic.Int32
	e.Committed = func() { commits.Add(1) }
	ctx := withDefaultTimeout(t)

	if err := e.Enqueue(ctx, newEvent("lost", "f")); !errors.Is(err, errNoLeader) {
		t.Fatalf("Enqueue returned %v; want %v", err, errNoLeader)
	}
	if _, ok := cp.Store().QueueItem("lost"); ok {
		t.Fatal("an event whose commit failed is queued")
	}
	if _, ok := recordOf(cp, "lost"); ok {
		t.Fatal("an event whose commit failed has a record")
	}

	// The next commit goes through.
	cp.setBefore(nil)
	if err := e.Enqueue(ctx, newEvent("kept", "f")); err != nil {
		t.Fatalf("Enqueue after the failure: %v", err)
	}
	if _, ok := cp.Store().QueueItem("kept"); !ok {
		t.Fatal("the event committed after the failure is not queued")
	}
	waitFor(t, "the Committed hook", func() bool { return commits.Load() == 1 })
}

func TestABatchHoldsAtMostFourMegabytesOfEvents(t *testing.T) {
	cp := newControl(t)
	entered, release := holdFirstEnqueue(cp)
	defer release()
	e := newEnqueuer(t, cp)
	ctx := withDefaultTimeout(t)
	go e.Enqueue(ctx, newEvent("hold", "f"))
	<-entered

	// 1.5 MB each: two fit in a batch, the third does not; an event of
	// 5 MB goes alone.
	big := func(id string, mb float64) {
		q := newEvent(id, "f")
		q.Event = []byte(`"` + strings.Repeat("x", int(mb*(1<<20))-2) + `"`)
		if err := e.Enqueue(ctx, q); err != nil {
			t.Errorf("enqueueing %s: %v", id, err)
		}
	}
	var wg sync.WaitGroup
	for i, mb := range []float64{1.5, 1.5, 1.5, 5} {
		// One at a time into the pending list, so their order is known.
		wg.Go(func() { big(fmt.Sprintf("big%d", i), mb) })
		waitFor(t, "the event to be pending", func() bool { return pendingEvents(e) == i+1 })
	}
	release()
	wg.Wait()
	var batches []string
	for _, c := range commands[fsm.Enqueue](t, cp, fsm.EnqueueType)[1:] {
		var ids []string
		for _, q := range c.Items {
			ids = append(ids, q.RequestID)
		}
		batches = append(batches, strings.Join(ids, ","))
	}
	if want := "[big0,big1 big2 big3]"; fmt.Sprint(batches) != want {
		t.Fatalf("batches %v; want %s", batches, want)
	}
}

func TestCloseCommitsWhatIsPending(t *testing.T) {
	cp := newControl(t)
	entered, release := holdFirstEnqueue(cp)
	e := NewEnqueuer(cp)
	ctx := withDefaultTimeout(t)
	go e.Enqueue(ctx, newEvent("hold", "f"))
	<-entered
	const n = 10
	errs := make(chan error, n)
	for i := range n {
		go func() { errs <- e.Enqueue(ctx, newEvent(fmt.Sprintf("p%d", i), "f")) }()
	}
	waitFor(t, "the events to be pending", func() bool { return pendingEvents(e) == n })
	closed := make(chan struct{})
	go func() {
		e.Close()
		close(closed)
	}()
	release()
	<-closed
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := len(cp.Store().QueueItems()); got != n+1 {
		t.Fatalf("%d events queued after Close; want %d", got, n+1)
	}
}

// An Enqueue whose caller gives up returns at once; its event, already
// handed to the enqueuer, may still commit (delivery is at least once,
// and the request ID keeps a retry of the call from queuing it twice).
func TestAnEnqueueWhoseCallerGivesUpReturnsTheContextsError(t *testing.T) {
	cp := newControl(t)
	entered, release := holdFirstEnqueue(cp)
	defer release()
	e := newEnqueuer(t, cp)
	go e.Enqueue(withDefaultTimeout(t), newEvent("hold", "f"))
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Enqueue(ctx, newEvent("abandoned", "f")) }()
	waitFor(t, "the event to be pending", func() bool { return pendingEvents(e) == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Enqueue returned %v; want %v", err, context.Canceled)
	}
}
