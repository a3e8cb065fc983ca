package queue

// The dispatcher runs against a real FSM and store (fsm.Direct); the
// worker is fakeWorker, which plays the answers a worker gives. The real
// worker needs a sandbox and is covered by the end-to-end tests (e2e/).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/placement"
	"nimbus/internal/worker"
)

func TestASuccessfulEventCompletesWithOneRecordOfItsRun(t *testing.T) {
	cp, sink, h := newControl(t), newLogSink(t), &hookLog{}
	fn := deploy(t, cp, newFunction("f"))
	res := okResult(`{"ok":true}`)
	w := newWorker(4, always(res))
	startDispatcher(t, cp, w, h.hooks(), sink)
	ev := newEvent("r1", "f")
	enqueue(t, cp, ev)

	waitFor(t, "r1 to succeed", func() bool { r, _ := recordOf(cp, "r1"); return r.Status == statusSuccess })
	got, _ := recordOf(cp, "r1")
	want := worker.NewRecord(worker.Request{RequestID: "r1", Function: fn}, "async", res)
	want.Result, want.Attempts, want.EnqueuedAt = json.RawMessage(res.Payload), 1, ev.EnqueuedAt
	if !got.Start.Equal(want.Start) || !got.EnqueuedAt.Equal(want.EnqueuedAt) {
		t.Fatalf("start %v, enqueued at %v; want %v, %v", got.Start, got.EnqueuedAt, want.Start, want.EnqueuedAt)
	}
	got.Start, got.EnqueuedAt, want.Start, want.EnqueuedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("record\n got %+v\nwant %+v", got, want)
	}
	if want.Revision != 1 || want.InitMS == 0 || want.LogTail == "" {
		t.Fatalf("the expected record lacks the fields under test: %+v", want)
	}
	if recs := recordsOfFunction(cp, "f"); len(recs) != 1 {
		t.Fatalf("%d records of f; want 1", len(recs))
	}
	if n := len(cp.Store().QueueItems()); n != 0 {
		t.Fatalf("%d events still queued", n)
	}
	calls := w.callsOf("r1")
	if len(calls) != 1 || string(calls[0].req.Payload) != string(ev.Event) || calls[0].req.Function.Revision != fn.Revision {
		t.Fatalf("the worker received %+v", calls)
	}

	waitFor(t, "the outcome hook", func() bool { return len(h.outcomesOf("r1")) == 1 })
	h.mu.Lock()
	defer h.mu.Unlock()
	if o := h.outcomes[0]; o.Condition != "Success" || string(o.Result) != `{"ok":true}` || o.Record.Status != statusSuccess {
		t.Fatalf("outcome %+v", o)
	}
	if len(h.logs) != 1 || h.logs[0].RequestID != "r1" || h.logs[0].Log != string(res.Log) {
		t.Fatalf("logs %+v", h.logs)
	}
	if len(h.observed) != 1 || h.observed[0].trigger != "async" || h.observed[0].err != nil {
		t.Fatalf("observed %+v", h.observed)
	}
}

// failing answers each attempt with a function error of its own
// (KeyError1, KeyError2, ...), from worker "wN".
func failing(ctx context.Context, _ <-chan struct{}, req worker.Request, attempt int) (worker.Result, error) {
	res := errResult(fmt.Sprintf("KeyError%d", attempt), fmt.Sprintf("attempt %d", attempt))
	res.WorkerID, res.Duration = fmt.Sprintf("w%d", attempt), time.Duration(attempt)*time.Millisecond
	return res, nil
}

func TestAFailingEventIsRetriedAfterItsRetryDelayDoublingThenDeadLetteredWithItsLastAttempt(t *testing.T) {
	const delay = 200 * time.Millisecond
	cp, sink, h := newControl(t), newLogSink(t), &hookLog{}
	deploy(t, cp, newFunction("f", withRetries(2), withRetryDelay(delay)))
	w := newWorker(4, failing)
	startDispatcher(t, cp, w, h.hooks(), sink)
	enqueue(t, cp, newEvent("r1", "f"))

	waitFor(t, "r1 to be dead-lettered", func() bool { _, ok := deadLetterOf(cp, "r1"); return ok })
	calls := w.callsOf("r1")
	if len(calls) != 3 {
		t.Fatalf("%d attempts; want 3 (1 + 2 retries)", len(calls))
	}
	// Lower bounds only: a busy machine may take longer.
	for i, wait := range []time.Duration{delay, 2 * delay} {
		if gap := calls[i+1].at.Sub(calls[i].done); gap < wait {
			t.Errorf("attempt %d began %v after attempt %d ended; want at least %v", i+2, gap, i+1, wait)
		}
	}
	dl, _ := deadLetterOf(cp, "r1")
	if dl.Reason != retriesExhausted || dl.Attempts != 3 || dl.LastError != "KeyError3" || string(dl.Event) != `{"n":1}` {
		t.Fatalf("dead letter %+v", dl)
	}
	r, _ := recordOf(cp, "r1")
	if r.Status != statusDeadLetter || r.Attempts != 3 || r.ErrorType != "KeyError3" || r.Worker != "w3" ||
		r.DurationMS != 3 || string(r.Result) != `{"errorType":"KeyError3","errorMessage":"attempt 3"}` {
		t.Fatalf("the dead letter's record does not show its last attempt: %+v", r)
	}
	waitFor(t, "three outcomes", func() bool { return len(h.outcomesOf("r1")) == 3 })
	var conds []string
	for _, o := range h.outcomesOf("r1") {
		conds = append(conds, o.Condition)
	}
	if fmt.Sprint(conds) != fmt.Sprint([]string{"", "", retriesExhausted}) {
		t.Fatalf("outcome conditions %q", conds)
	}
}

func TestAFailingEventRunsOnceMoreThanItsFunctionsRetries(t *testing.T) {
	for _, retries := range []int{0, 1} {
		t.Run(fmt.Sprintf("retries %d", retries), func(t *testing.T) {
			cp, sink := newControl(t), newLogSink(t)
			deploy(t, cp, newFunction("f", withRetries(retries), withRetryDelay(time.Millisecond)))
			w := newWorker(4, failing)
			startDispatcher(t, cp, w, Hooks{}, sink)
			enqueue(t, cp, newEvent("r1", "f"))
			waitFor(t, "r1 to be dead-lettered", func() bool { _, ok := deadLetterOf(cp, "r1"); return ok })
			if n := len(w.callsOf("r1")); n != retries+1 {
				t.Fatalf("%d attempts; want %d", n, retries+1)
			}
		})
	}
}

func TestAnEventThatNeverRanGoesBackWithoutCountingAnAttempt(t *testing.T) {
	cp, sink, h := newControl(t), newLogSink(t), &hookLog{}
	// No retries: a counted attempt would dead-letter the event.
	deploy(t, cp, newFunction("f", withRetries(0)))
	refusals := []error{worker.ErrNoCapacity, fmt.Errorf("placing: %w", placement.ErrNoWorkers), worker.ErrClosed}
	w := newWorker(4, func(_ context.Context, _ <-chan struct{}, _ worker.Request, attempt int) (worker.Result, error) {
		if attempt <= len(refusals) {
			return worker.Result{}, refusals[attempt-1]
		}
		return okResult(`"done"`), nil
	})
	startDispatcher(t, cp, w, h.hooks(), sink)
	enqueue(t, cp, newEvent("r1", "f"))

	waitFor(t, "r1 to succeed", func() bool { r, _ := recordOf(cp, "r1"); return r.Status == statusSuccess })
	if n := len(w.callsOf("r1")); n != 4 {
		t.Fatalf("the worker got %d calls; want 4", n)
	}
	if r, _ := recordOf(cp, "r1"); r.Attempts != 1 {
		t.Fatalf("the record counts %d attempts; want 1", r.Attempts)
	}
	if _, ok := deadLetterOf(cp, "r1"); ok {
		t.Fatal("an event that never ran was dead-lettered")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.observed) != 1 || h.observed[0].err != nil {
		t.Fatalf("observed %+v; want the one run only", h.observed)
	}
}

func TestAnEventOlderThanItsMaxEventAgeIsDeadLetteredUnrunAndGoesToItsFailureDestination(t *testing.T) {
	cp, sink, h := newControl(t), newLogSink(t), &hookLog{}
	deploy(t, cp, newFunction("f", withMaxEventAge(time.Minute), withDestinations("", "function:g")))
	deploy(t, cp, newFunction("g"))
	w := newWorker(4, always(okResult(`null`)))
	ev := newEvent("old", "f")
	ev.EnqueuedAt = time.Now().UTC().Add(-2 * time.Minute)
	enqueue(t, cp, ev)
	startDispatcher(t, cp, w, h.hooks(), sink)

	waitFor(t, "old to be dead-lettered", func() bool { _, ok := deadLetterOf(cp, "old"); return ok })
	if dl, _ := deadLetterOf(cp, "old"); dl.Reason != eventAgeExceeded || dl.Attempts != 0 {
		t.Fatalf("dead letter %+v", dl)
	}
	if n := len(w.callsOf("old")); n != 0 {
		t.Fatalf("an event past its max age ran %d times", n)
	}
	finish, _, _ := finishOf(t, cp, "old", fsm.OutcomeDeadLetter)
	if dest := destinationIn(finish, "old-eventageexceeded"); dest == nil || dest.Function != "g" {
		t.Fatalf("the dead letter's Finish does not queue its destination: %+v", finish)
	}
	waitFor(t, "the outcome hook", func() bool { return len(h.outcomesOf("old")) == 1 })
	if o := h.outcomesOf("old")[0]; o.Condition != eventAgeExceeded {
		t.Fatalf("outcome condition %q", o.Condition)
	}
}

func TestAnEventWhoseFunctionWasRemovedIsDeadLetteredAsFunctionNotFound(t *testing.T) {
	check := func(t *testing.T, cp *testControl, w *fakeWorker) {
		waitFor(t, "r1 to be dead-lettered", func() bool { _, ok := deadLetterOf(cp, "r1"); return ok })
		if dl, _ := deadLetterOf(cp, "r1"); dl.Reason != retriesExhausted || dl.LastError != "Runtime.FunctionNotFound" {
			t.Fatalf("dead letter %+v", dl)
		}
		if n := len(w.callsOf("r1")); n != 0 {
			t.Fatalf("the event of a removed function ran %d times", n)
		}
		if r, _ := recordOf(cp, "r1"); r.Status != statusDeadLetter || r.ErrorType != "Runtime.FunctionNotFound" {
			t.Fatalf("record %+v", r)
		}
	}
	t.Run("before it was leased", func(t *testing.T) {
		cp, sink := newControl(t), newLogSink(t)
		deploy(t, cp, newFunction("f", withDestinations("", "function:f")))
		enqueue(t, cp, newEvent("r1", "f"))
		remove(t, cp, "f")
		w := newWorker(4, always(okResult(`null`)))
		startDispatcher(t, cp, w, Hooks{}, sink)
		check(t, cp, w)
		if _, o, _ := finishOf(t, cp, "r1", fsm.OutcomeDeadLetter); len(o.Enqueue) != 0 {
			t.Fatalf("the dead letter of a removed function queued a destination: %+v", o)
		}
	})
	t.Run("after it was leased", func(t *testing.T) {
		cp, sink := newControl(t), newLogSink(t)
		deploy(t, cp, newFunction("f"))
		enqueue(t, cp, newEvent("r1", "f"))
		w := newWorker(4, always(okResult(`null`)))
		// Admission is the last step before the lease: removing the
		// function there removes it after the dispatcher looked it up,
		// before its run.
		var once sync.Once
		hooks := Hooks{Admit: func(function) (func(), error) {
			once.Do(func() {
				if _, err := fsm.Apply(context.Background(), cp, fsm.DeleteFunction{Namespace: testNamespace, Name: "f"}); err != nil {
					t.Errorf("removing f: %v", err)
				}
			})
			return func() {}, nil
		}}
		startDispatcher(t, cp, w, hooks, sink)
		check(t, cp, w)
		if _, o, _ := finishOf(t, cp, "r1", fsm.OutcomeDeadLetter); o.Epoch == 0 {
			t.Fatal("the dead letter was not decided by the run of the leased event")
		}
	})
}

func TestAnEventThatAdmissionRefusesStaysQueuedUntilAdmitted(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("f"))
	enqueue(t, cp, newEvent("r1", "f"))
	w := newWorker(4, always(okResult(`1`)))
	var admitted atomic.Bool
	var asked, released atomic.Int32
	hooks := Hooks{Admit: func(fn function) (func(), error) {
		asked.Add(1)
		if !admitted.Load() {
			return nil, errors.New("at its concurrency limit")
		}
		return func() { released.Add(1) }, nil
	}}
	startDispatcher(t, cp, w, hooks, sink)

	waitFor(t, "admission to be asked on several passes", func() bool { return asked.Load() >= 5 })
	q, ok := cp.Store().QueueItem("r1")
	if !ok || q.Attempts != 0 || !q.LeaseUntil.IsZero() {
		t.Fatalf("a refused event changed in the queue: %+v", q)
	}
	if r, _ := recordOf(cp, "r1"); r.Status != statusQueued {
		t.Fatalf("a refused event's record is %q", r.Status)
	}
	if n := len(commands[fsm.Lease](t, cp, fsm.LeaseType)); n != 0 {
		t.Fatalf("%d Lease commands for an event admission refused", n)
	}
	if n := len(w.callsOf("r1")); n != 0 {
		t.Fatalf("a refused event ran %d times", n)
	}

	admitted.Store(true)
	waitFor(t, "r1 to succeed", func() bool { r, _ := recordOf(cp, "r1"); return r.Status == statusSuccess })
	waitFor(t, "what admission held to be released", func() bool { return released.Load() == 1 })
	if r, _ := recordOf(cp, "r1"); r.Attempts != 1 {
		t.Fatalf("%d attempts; want 1", r.Attempts)
	}
}

func TestTheDispatcherKeepsEveryFreeSlotBusy(t *testing.T) {
	const slots, events = 4, 8
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("f"))
	var mu sync.Mutex
	finish := map[string]chan struct{}{}
	for i := range events {
		finish[fmt.Sprintf("r%d", i)] = make(chan struct{})
	}
	w := newWorker(slots, func(_ context.Context, stop <-chan struct{}, req worker.Request, _ int) (worker.Result, error) {
		mu.Lock()
		ch := finish[req.RequestID]
		mu.Unlock()
		select {
		case <-ch:
		case <-stop:
		}
		return okResult(`1`), nil
	})
	var items []queueItem
	for i := range events {
		items = append(items, newEvent(fmt.Sprintf("r%d", i), "f"))
	}
	enqueue(t, cp, items...)
	startDispatcher(t, cp, w, Hooks{}, sink)

	waitFor(t, "every slot to be busy", func() bool { return w.running() == slots })
	// Two runs end: two more events take their slots.
	ended := 0
	for i := range events {
		if ended < 2 && len(w.callsOf(fmt.Sprintf("r%d", i))) > 0 {
			close(finish[fmt.Sprintf("r%d", i)])
			ended++
		}
	}
	waitFor(t, "two runs to succeed", func() bool { return len(cp.Store().QueueItems()) == events-2 })
	waitFor(t, "the freed slots to be taken", func() bool { return w.running() == slots })

	for _, ch := range finish {
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
	waitFor(t, "every event to succeed", func() bool { return len(cp.Store().QueueItems()) == 0 })
	for id := range finish {
		if r, _ := recordOf(cp, id); r.Status != statusSuccess || r.Attempts != 1 {
			t.Fatalf("record of %s: %+v", id, r)
		}
	}
}

// destinationIn returns the event that Finish f queues with request id.
func destinationIn(f fsm.Finish, id string) *queueItem {
	for _, o := range f.Outcomes {
		for _, q := range o.Enqueue {
			if q.RequestID == id {
				return &q
			}
		}
	}
	return nil
}

func TestAFunctionDestinationIsQueuedInTheSameFinishAsTheOutcome(t *testing.T) {
	cases := []struct {
		name   string
		answer answerFunc
		kind   string // of the source event's outcome
		cond   string
		dest   string // the destination event's request id
		target string
	}{
		{"on success", always(okResult(`{"sum":3}`)), fsm.OutcomeComplete, "Success", "r1-success", "ok"},
		{"on failure, once the retries are spent", failing, fsm.OutcomeDeadLetter, retriesExhausted, "r1-retriesexhausted", "bad"},
		{"on failure, when the last attempt could not run", func(context.Context, <-chan struct{}, worker.Request, int) (worker.Result, error) {
			return worker.Result{}, errors.New("connection reset by worker")
		}, fsm.OutcomeDeadLetter, retriesExhausted, "r1-retriesexhausted", "bad"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cp, sink, h := newControl(t), newLogSink(t), &hookLog{}
			deploy(t, cp, newFunction("f", withRetries(0), withDestinations("function:ok", "function:bad")))
			deploy(t, cp, newFunction("ok"))
			deploy(t, cp, newFunction("bad"))
			w := newWorker(4, func(ctx context.Context, stop <-chan struct{}, req worker.Request, attempt int) (worker.Result, error) {
				if req.Function.Name != "f" {
					return okResult(`null`), nil
				}
				return tc.answer(ctx, stop, req, attempt)
			})
			startDispatcher(t, cp, w, h.hooks(), sink)
			enqueue(t, cp, newEvent("r1", "f"))

			waitFor(t, "r1's destination to run", func() bool { r, _ := recordOf(cp, tc.dest); return r.Status == statusSuccess })
			finish, _, ok := finishOf(t, cp, "r1", tc.kind)
			if !ok {
				t.Fatalf("no %s outcome of r1 was committed", tc.kind)
			}
			dest := destinationIn(finish, tc.dest)
			if dest == nil {
				t.Fatalf("the Finish of r1 does not queue %s: %+v", tc.dest, finish)
			}
			if dest.Function != tc.target || dest.Namespace != testNamespace || dest.Trigger != "destination:f" {
				t.Fatalf("destination event %+v", dest)
			}
			var rec struct {
				RequestContext struct {
					RequestID string `json:"requestId"`
					Condition string `json:"condition"`
				} `json:"requestContext"`
			}
			if err := json.Unmarshal(dest.Event, &rec); err != nil || rec.RequestContext.RequestID != "r1" || rec.RequestContext.Condition != tc.cond {
				t.Fatalf("destination record %s (%v)", dest.Event, err)
			}
			calls := w.callsOf(tc.dest)
			if len(calls) != 1 || string(calls[0].req.Payload) != string(dest.Event) {
				t.Fatalf("the destination function got %+v", calls)
			}
			waitFor(t, "the final outcome hook", func() bool {
				os := h.outcomesOf("r1")
				return len(os) > 0 && os[len(os)-1].Condition == tc.cond
			})
		})
	}
}

func TestAURLDestinationIsLeftToTheOutcomeHook(t *testing.T) {
	cp, sink, h := newControl(t), newLogSink(t), &hookLog{}
	deploy(t, cp, newFunction("f", withDestinations("https://example.com/hook", "")))
	w := newWorker(4, always(okResult(`1`)))
	startDispatcher(t, cp, w, h.hooks(), sink)
	enqueue(t, cp, newEvent("r1", "f"))
	waitFor(t, "the outcome hook", func() bool { return len(h.outcomesOf("r1")) == 1 })
	if u := URLDestination(h.outcomesOf("r1")[0]); u != "https://example.com/hook" {
		t.Fatalf("URLDestination %q", u)
	}
	if _, o, _ := finishOf(t, cp, "r1", fsm.OutcomeComplete); len(o.Enqueue) != 0 {
		t.Fatalf("a URL destination queued an event: %+v", o.Enqueue)
	}
}

func TestAResultForASupersededLeaseIsRefused(t *testing.T) {
	cp, sink, h := newControl(t), newLogSink(t), &hookLog{}
	deploy(t, cp, newFunction("f"))
	running, finish := make(chan struct{}), make(chan struct{})
	var once sync.Once
	w := newWorker(4, func(_ context.Context, stop <-chan struct{}, _ worker.Request, _ int) (worker.Result, error) {
		once.Do(func() { close(running) })
		select {
		case <-finish:
		case <-stop:
		}
		return okResult(`"late"`), nil
	})
	startDispatcher(t, cp, w, h.hooks(), sink)
	enqueue(t, cp, newEvent("r1", "f"))

	<-running
	// As a later leader would once the lease expired: lease it again.
	if epoch := lease(t, cp, "r1", time.Now().UTC().Add(time.Hour)); epoch != 2 {
		t.Fatalf("the second lease has epoch %d; want 2", epoch)
	}
	close(finish)
	waitFor(t, "the late result to be refused", func() bool { return sink.has("async outcome refused", "r1") })
	if r, _ := recordOf(cp, "r1"); r.Status != statusRunning {
		t.Fatalf("a refused result changed the record: %+v", r)
	}
	if q, ok := cp.Store().QueueItem("r1"); !ok || q.Epoch != 2 {
		t.Fatalf("queue item %+v (%v); want it leased by epoch 2", q, ok)
	}
	if os := h.outcomesOf("r1"); len(os) != 0 {
		t.Fatalf("the outcome hook was told of a refused result: %+v", os)
	}
}

func TestAnEventWhoseLeaseExpiredCountsAFailedAttempt(t *testing.T) {
	// leaseExpired leases r1 as a dispatcher that never reported would
	// have (an earlier leader): its lease ended an hour ago.
	leaseExpired := func(t *testing.T, cp Control) {
		lease(t, cp, "r1", time.Now().UTC().Add(-2*time.Hour))
	}
	t.Run("and runs again while retries are left", func(t *testing.T) {
		cp, sink := newControl(t), newLogSink(t)
		// The wait for the lease was its retry delay: it runs again at
		// once, not an hour later.
		deploy(t, cp, newFunction("f", withRetries(1), withRetryDelay(time.Hour)))
		enqueue(t, cp, newEvent("r1", "f"))
		leaseExpired(t, cp)
		w := newWorker(4, always(okResult(`1`)))
		startDispatcher(t, cp, w, Hooks{}, sink)
		waitFor(t, "r1 to succeed", func() bool { r, _ := recordOf(cp, "r1"); return r.Status == statusSuccess })
		if r, _ := recordOf(cp, "r1"); r.Attempts != 2 {
			t.Fatalf("%d attempts; want 2 (the expired lease and the run)", r.Attempts)
		}
		if n := len(w.callsOf("r1")); n != 1 {
			t.Fatalf("%d runs; want 1", n)
		}
		if _, o, ok := finishOf(t, cp, "r1", fsm.OutcomeRetry); !ok || o.LastError != "Sandbox.LeaseExpired" {
			t.Fatalf("retry outcome %+v (%v)", o, ok)
		}
	})
	t.Run("and is dead-lettered to its failure destination once they are spent", func(t *testing.T) {
		cp, sink := newControl(t), newLogSink(t)
		deploy(t, cp, newFunction("f", withRetries(0), withDestinations("", "function:g")))
		deploy(t, cp, newFunction("g"))
		enqueue(t, cp, newEvent("r1", "f"))
		leaseExpired(t, cp)
		w := newWorker(4, always(okResult(`1`)))
		startDispatcher(t, cp, w, Hooks{}, sink)
		waitFor(t, "r1 to be dead-lettered", func() bool { _, ok := deadLetterOf(cp, "r1"); return ok })
		if dl, _ := deadLetterOf(cp, "r1"); dl.Reason != retriesExhausted || dl.LastError != "Sandbox.LeaseExpired" || dl.Attempts != 1 {
			t.Fatalf("dead letter %+v", dl)
		}
		if n := len(w.callsOf("r1")); n != 0 {
			t.Fatalf("%d runs; want none", n)
		}
		finish, _, _ := finishOf(t, cp, "r1", fsm.OutcomeDeadLetter)
		if dest := destinationIn(finish, "r1-retriesexhausted"); dest == nil || dest.Function != "g" {
			t.Fatalf("the dead letter's Finish does not queue its destination: %+v", finish)
		}
	})
}

func TestAnEventLeasedMeanwhileIsNotRunAndItsAdmissionIsReleased(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("f"))
	enqueue(t, cp, newEvent("r1", "f"))
	// Between the dispatcher's look at the queue and its Lease, another
	// lease takes the event.
	var once sync.Once
	cp.setBefore(func(ct fsm.CommandType, _ []byte) error {
		if ct == fsm.LeaseType {
			once.Do(func() {
				now := time.Now().UTC()
				if _, err := fsm.Apply(context.Background(), cp.w, fsm.Lease{Leases: []fsm.LeaseRequest{{RequestID: "r1", Until: now.Add(time.Hour)}}, Now: now}); err != nil {
					t.Errorf("leasing r1: %v", err)
				}
			})
		}
		return nil
	})
	var asked, released atomic.Int32
	hooks := Hooks{Admit: func(function) (func(), error) {
		asked.Add(1)
		return func() { released.Add(1) }, nil
	}}
	w := newWorker(4, always(okResult(`1`)))
	startDispatcher(t, cp, w, hooks, sink)
	waitFor(t, "the admission to be released", func() bool { return released.Load() == 1 })
	if a := asked.Load(); a != 1 {
		t.Fatalf("admission asked %d times; want once (the event is leased elsewhere since)", a)
	}
	if n := len(w.callsOf("r1")); n != 0 {
		t.Fatalf("an event leased elsewhere ran %d times", n)
	}
}

func TestALeaseThatFailsToCommitRunsNothingAndReleasesItsAdmission(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("f"))
	enqueue(t, cp, newEvent("r1", "f"))
	var failing atomic.Bool
	var failed atomic.Int32
	failing.Store(true)
	cp.setBefore(func(ct fsm.CommandType, _ []byte) error {
		if ct == fsm.LeaseType && failing.Load() {
			failed.Add(1)
			return errors.New("no quorum")
		}
		return nil
	})
	var asked, released atomic.Int32
	hooks := Hooks{Admit: func(function) (func(), error) {
		asked.Add(1)
		return func() { released.Add(1) }, nil
	}}
	w := newWorker(4, always(okResult(`1`)))
	startDispatcher(t, cp, w, hooks, sink)
	waitFor(t, "leases to fail on several passes", func() bool { return failed.Load() >= 3 })
	if n := len(w.callsOf("r1")); n != 0 {
		t.Fatalf("an event whose lease failed ran %d times", n)
	}
	failing.Store(false)
	waitFor(t, "r1 to succeed", func() bool { r, _ := recordOf(cp, "r1"); return r.Status == statusSuccess })
	waitFor(t, "every admission to be released", func() bool { return released.Load() == asked.Load() })
	if r, _ := recordOf(cp, "r1"); r.Attempts != 1 {
		t.Fatalf("%d attempts; want 1 (a lease that failed is none)", r.Attempts)
	}
	if !sink.has("leasing queued events", "") {
		t.Fatal("the failed leases were not logged")
	}
}

func TestEventsEnqueuedAsAServerWiresTheQueueRunOnceEach(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("f"))
	w := newWorker(4, always(okResult(`1`)))
	d := startDispatcher(t, cp, w, Hooks{}, sink)
	e := newEnqueuer(t, cp)
	e.Committed = d.Wake
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := e.Enqueue(withDefaultTimeout(t), newEvent(fmt.Sprintf("r%d", i), "f")); err != nil {
				t.Errorf("enqueueing: %v", err)
			}
		})
	}
	wg.Wait()
	waitFor(t, "every event to succeed", func() bool { return len(recordsOfFunction(cp, "f")) == n && len(cp.Store().QueueItems()) == 0 })
	for i := range n {
		id := fmt.Sprintf("r%d", i)
		if r, _ := recordOf(cp, id); r.Status != statusSuccess || len(w.callsOf(id)) != 1 {
			t.Fatalf("%s: record %+v, %d runs", id, r, len(w.callsOf(id)))
		}
	}
}

// A backlog of one function does not hold back another's event: with one
// slot and 40 events of "flood" queued before one of "late", the first
// Lease already holds "late", and it runs before the flood is through.
func TestAnotherFunctionsEventIsLeasedAheadOfAFlood(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("flood"))
	deploy(t, cp, newFunction("late"))
	var items []queueItem
	for i := range 40 {
		items = append(items, newEvent(fmt.Sprintf("f%02d", i), "flood"))
	}
	enqueue(t, cp, append(items, newEvent("late", "late"))...)
	w := newWorker(1, func(context.Context, <-chan struct{}, worker.Request, int) (worker.Result, error) {
		return okResult(`1`), nil
	})
	startDispatcher(t, cp, w, Hooks{}, sink)

	waitFor(t, "every event to succeed", func() bool { return len(cp.Store().QueueItems()) == 0 })
	leases := commands[fsm.Lease](t, cp, fsm.LeaseType)
	var first []string
	for _, l := range leases[0].Leases {
		first = append(first, l.RequestID)
	}
	if !slices.Contains(first, "late") {
		t.Fatalf("the first Lease holds %v; want late among them", first)
	}
	if len(first) > 1+minAhead {
		t.Fatalf("the first Lease holds %d events; want at most the free slot and %d ahead (no run has ended yet)", len(first), minAhead)
	}
	late := w.callsOf("late")[0].at
	after := 0
	for i := range 40 {
		if c := w.callsOf(fmt.Sprintf("f%02d", i)); c[0].at.After(late) {
			after++
		}
	}
	if after < 40-1-minAhead {
		t.Fatalf("only %d of the flood's 40 events ran after late; want at least %d", after, 40-1-minAhead)
	}
}

// Events leased ahead that never started go back to the queue when the
// term ends, their attempt refunded, instead of waiting for their leases
// to expire (a restarted or deposed leader's successor runs them at
// once).
func TestHeldEventsGoBackToTheQueueWhenTheTermEnds(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("f"))
	enqueue(t, cp, newEvent("r0", "f"), newEvent("r1", "f"), newEvent("r2", "f"))
	w := newWorker(1, func(_ context.Context, stop <-chan struct{}, _ worker.Request, _ int) (worker.Result, error) {
		<-stop
		return okResult(`1`), nil
	})
	d := NewDispatcher(cp, w, Hooks{}, sink.logger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	leased := func(id string) bool { q, _ := cp.Store().QueueItem(id); return q.Epoch > 0 && !q.LeaseUntil.IsZero() }
	waitFor(t, "one run and two held events", func() bool {
		return w.running() == 1 && leased("r0") && leased("r1") && leased("r2")
	})
	cancel()
	close(w.stop)
	<-done

	ran := ""
	for _, id := range []string{"r0", "r1", "r2"} {
		if len(w.callsOf(id)) > 0 {
			ran = id
			if r, _ := recordOf(cp, id); r.Status != statusSuccess {
				t.Fatalf("the event that ran: record %+v", r)
			}
			continue
		}
		q, ok := cp.Store().QueueItem(id)
		if !ok || !q.LeaseUntil.IsZero() || q.Attempts != 0 {
			t.Fatalf("held event %s after the term: %+v (queued %v); want queued again, unleased, no attempt counted", id, q, ok)
		}
	}
	if ran == "" {
		t.Fatal("no event ran")
	}
}

// A backlog larger than one read of the queue keeps (maxReady) runs
// through, each event once: the reads that left events out are followed
// by others.
func TestABacklogLargerThanOneReadRunsOnceEach(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("f"))
	n := maxReady + 300
	var items []queueItem
	for i := range n {
		items = append(items, newEvent(fmt.Sprintf("r%05d", i), "f"))
	}
	enqueue(t, cp, items...)
	w := newWorker(64, always(okResult(`1`)))
	startDispatcher(t, cp, w, Hooks{}, sink)
	waitFor(t, "every event to succeed", func() bool { return len(cp.Store().QueueItems()) == 0 })
	for i := range n {
		id := fmt.Sprintf("r%05d", i)
		if r, _ := recordOf(cp, id); r.Status != statusSuccess || len(w.callsOf(id)) != 1 {
			t.Fatalf("%s: record %+v, %d runs", id, r, len(w.callsOf(id)))
		}
	}
}
