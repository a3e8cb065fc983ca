package queue

// The helpers of every test of this package. They are the only place
// that names the types the state store keeps (functions, queue items,
// records, dead letters), so that a rename of those types is a few lines
// to fix here.
//
// The tests run the queue against a real FSM and state store applied
// directly (fsm.Direct: a one-server cluster once committed). The worker
// is played by fakeWorker, an Invoker that answers as the test scripts
// it: the real worker needs a sandbox and is covered by the end-to-end
// tests (e2e/).

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
	"nimbus/internal/waitfor"
	"nimbus/internal/worker"
)

// Stored types and values, named once.
type (
	function   = model.Function
	queueItem  = model.QueueItem
	record     = model.Invocation
	deadLetter = model.DeadLetter
)

const (
	statusQueued     = model.StatusQueued
	statusRunning    = model.StatusRunning
	statusSuccess    = model.StatusSuccess
	statusDeadLetter = model.StatusDeadLetter
	retriesExhausted = model.ReasonRetriesExhausted
	eventAgeExceeded = model.ReasonEventAgeExceeded
	testNamespace    = "team"
)

// fnOpt sets one of a test function's settings.
type fnOpt func(*function)

// newFunction is a function of testNamespace with a 30 s timeout and the
// given settings.
func newFunction(name string, opts ...fnOpt) function {
	f := function{Namespace: testNamespace}
	f.Name, f.Runtime, f.Handler, f.MemoryMB = name, "python3.12", "main.handler", 256
	f.Timeout = model.Duration(30 * time.Second)
	for _, o := range opts {
		o(&f)
	}
	return f
}

func withRetries(n int) fnOpt { return func(f *function) { f.Retries = &n } }

func withRetryDelay(d time.Duration) fnOpt {
	return func(f *function) { f.RetryDelay = model.Duration(d) }
}

func withMaxEventAge(d time.Duration) fnOpt {
	return func(f *function) { f.MaxEventAge = model.Duration(d) }
}

func withDestinations(onSuccess, onFailure string) fnOpt {
	return func(f *function) { f.Destinations = &model.Destinations{OnSuccess: onSuccess, OnFailure: onFailure} }
}

// newEvent is an asynchronous event for function fn of testNamespace,
// enqueued a second ago.
func newEvent(id, fn string) queueItem {
	return queueItem{RequestID: id, Namespace: testNamespace, Function: fn, Event: json.RawMessage(`{"n":1}`),
		Trigger: "async", EnqueuedAt: time.Now().UTC().Add(-time.Second)}
}

// outcomeOf is an Outcome of function fn's event id with condition cond.
func outcomeOf(fn function, id, cond string) Outcome {
	q := newEvent(id, fn.Name)
	q.Attempts = 1
	return Outcome{Item: q, Function: fn, Condition: cond}
}

// withDefaultTimeout is a context for a test's own writes.
func withDefaultTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// deploy stores fn and returns it as stored (with its revision).
func deploy(t *testing.T, cp Control, fn function) function {
	t.Helper()
	res, err := fsm.Apply(withDefaultTimeout(t), cp, fsm.UpsertFunction{Function: fn, Now: time.Now().UTC()})
	if err != nil {
		t.Fatalf("deploying %s: %v", fn.Name, err)
	}
	return res.Function
}

// remove deletes function name of testNamespace.
func remove(t *testing.T, cp Control, name string) {
	t.Helper()
	if _, err := fsm.Apply(withDefaultTimeout(t), cp, fsm.DeleteFunction{Namespace: testNamespace, Name: name}); err != nil {
		t.Fatalf("removing %s: %v", name, err)
	}
}

// enqueue commits events straight through the FSM (not the enqueuer).
func enqueue(t *testing.T, cp Control, items ...queueItem) {
	t.Helper()
	if _, err := fsm.Apply(withDefaultTimeout(t), cp, fsm.Enqueue{Items: items}); err != nil {
		t.Fatalf("enqueueing: %v", err)
	}
}

// lease leases event id as of now, as a dispatcher would, and returns its
// epoch.
func lease(t *testing.T, cp Control, id string, now time.Time) uint64 {
	t.Helper()
	res, err := fsm.Apply(withDefaultTimeout(t), cp, fsm.Lease{Leases: []fsm.LeaseRequest{{RequestID: id, Until: now.Add(time.Hour)}}, Now: now})
	if err != nil {
		t.Fatalf("leasing %s: %v", id, err)
	}
	epoch, ok := res.Epochs[id]
	if !ok {
		t.Fatalf("leasing %s: refused", id)
	}
	return epoch
}

// recordOf returns the record of request id, if any.
func recordOf(cp Control, id string) (record, bool) {
	r, err := cp.Store().Record(id)
	return r, err == nil
}

// deadLetterOf returns the dead letter of request id, if any.
func deadLetterOf(cp Control, id string) (deadLetter, bool) {
	for _, dl := range cp.Store().DeadLetters("", "") {
		if dl.RequestID == id {
			return dl, true
		}
	}
	return deadLetter{}, false
}

// recordsOfFunction returns every record of function fn of testNamespace.
func recordsOfFunction(cp Control, fn string) []record {
	return cp.Store().Records(state.RecordQuery{Namespace: testNamespace, Function: fn})
}

// okResult is what a worker answers for a run that succeeded.
func okResult(payload string) worker.Result {
	var r worker.Result
	r.Payload, r.Log, r.Duration, r.BilledMS = []byte(payload), []byte("START\nhello\nEND\n"), 12*time.Millisecond, 13
	r.MaxMemoryMB, r.InitDuration, r.Cold, r.WorkerID, r.Start = 40, 5*time.Millisecond, true, "w1", time.Now().UTC()
	return r
}

// errResult is what a worker answers for a run whose handler raised
// errorType.
func errResult(errorType, message string) worker.Result {
	r := okResult(`{"errorType":"` + errorType + `","errorMessage":"` + message + `"}`)
	r.ErrorType = errorType
	return r
}

// --- The control plane ---

// testControl is a Control over a real FSM and store. It records every
// command written, and lets a test hold or fail writes.
type testControl struct {
	store *state.Store
	w     fsm.Writer

	mu      sync.Mutex
	before  func(t fsm.CommandType, body []byte) error // called before each write; an error fails it
	written []written
}

type written struct {
	t    fsm.CommandType
	body []byte
}

func newControl(t *testing.T) *testControl {
	s := state.New()
	return &testControl{store: s, w: fsm.Direct(fsm.New(s, newLogSink(t).logger()))}
}

func (c *testControl) Store() *state.Store { return c.store }

func (c *testControl) Write(ctx context.Context, t fsm.CommandType, data []byte) (any, error) {
	c.mu.Lock()
	before := c.before
	c.mu.Unlock()
	if before != nil {
		if err := before(t, data[1:]); err != nil {
			return nil, err
		}
	}
	res, err := c.w.Write(ctx, t, data)
	if err == nil {
		c.mu.Lock()
		c.written = append(c.written, written{t: t, body: append([]byte(nil), data[1:]...)})
		c.mu.Unlock()
	}
	return res, err
}

// setBefore sets the function called before each write.
func (c *testControl) setBefore(f func(t fsm.CommandType, body []byte) error) {
	c.mu.Lock()
	c.before = f
	c.mu.Unlock()
}

// commands decodes the commands of type t written so far, in order.
func commands[C any](t *testing.T, c *testControl, ct fsm.CommandType) []C {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []C
	for _, w := range c.written {
		if w.t != ct {
			continue
		}
		var cmd C
		if err := json.Unmarshal(w.body, &cmd); err != nil {
			t.Fatalf("decoding a %s: %v", ct, err)
		}
		out = append(out, cmd)
	}
	return out
}

// finishOf returns the committed Finish command that holds an outcome of
// request id of the given kind, and that outcome.
func finishOf(t *testing.T, c *testControl, id, kind string) (fsm.Finish, fsm.Outcome, bool) {
	t.Helper()
	for _, f := range commands[fsm.Finish](t, c, fsm.FinishType) {
		for _, o := range f.Outcomes {
			if o.RequestID == id && o.Kind == kind {
				return f, o, true
			}
		}
	}
	return fsm.Finish{}, fsm.Outcome{}, false
}

// --- The worker ---

// answerFunc scripts a worker: it answers the attempt-th call (from 1)
// for request req. It may block until ctx ends or stop closes.
type answerFunc func(ctx context.Context, stop <-chan struct{}, req worker.Request, attempt int) (worker.Result, error)

// fakeWorker is an Invoker that plays a worker's answers. Like a placer,
// its free slots are its slots less the invocations it is running, and
// it refuses an invocation when every slot is taken.
type fakeWorker struct {
	slots  int
	answer answerFunc
	stop   chan struct{}

	mu     sync.Mutex
	calls  []call
	active int
}

// call is one invocation the worker received.
type call struct {
	req      worker.Request
	attempt  int
	at, done time.Time // wall clock (no monotonic reading), as the queue's times
	err      error
}

func newWorker(slots int, answer answerFunc) *fakeWorker {
	return &fakeWorker{slots: slots, answer: answer, stop: make(chan struct{})}
}

func (w *fakeWorker) Invoke(ctx context.Context, req worker.Request) (worker.Result, error) {
	w.mu.Lock()
	if w.active >= w.slots {
		w.mu.Unlock()
		return worker.Result{}, worker.ErrNoCapacity
	}
	w.active++
	attempt := 1
	for _, c := range w.calls {
		if c.req.RequestID == req.RequestID {
			attempt++
		}
	}
	i := len(w.calls)
	w.calls = append(w.calls, call{req: req, attempt: attempt, at: time.Now().Round(0)})
	w.mu.Unlock()

	res, err := w.answer(ctx, w.stop, req, attempt)

	w.mu.Lock()
	w.active--
	w.calls[i].done, w.calls[i].err = time.Now().Round(0), err
	w.mu.Unlock()
	return res, err
}

func (w *fakeWorker) Room() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.slots - w.active
}

// callsOf returns the invocations of request id so far.
func (w *fakeWorker) callsOf(id string) []call {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []call
	for _, c := range w.calls {
		if c.req.RequestID == id {
			out = append(out, c)
		}
	}
	return out
}

func (w *fakeWorker) running() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.active
}

// always answers every invocation with res.
func always(res worker.Result) answerFunc {
	return func(context.Context, <-chan struct{}, worker.Request, int) (worker.Result, error) { return res, nil }
}

// --- The dispatcher ---

// hookLog records what the dispatcher's hooks were told.
type hookLog struct {
	mu       sync.Mutex
	outcomes []Outcome
	logs     []model.LogEntry
	observed []observed
}

type observed struct {
	fn      function
	trigger string
	res     worker.Result
	err     error
}

// hooks returns Hooks that record into h.
func (h *hookLog) hooks() Hooks {
	return Hooks{
		Log: func(e model.LogEntry) { h.mu.Lock(); h.logs = append(h.logs, e); h.mu.Unlock() },
		Outcome: func(o Outcome) {
			h.mu.Lock()
			h.outcomes = append(h.outcomes, o)
			h.mu.Unlock()
		},
		Observe: func(fn function, trigger string, res worker.Result, err error) {
			h.mu.Lock()
			h.observed = append(h.observed, observed{fn, trigger, res, err})
			h.mu.Unlock()
		},
	}
}

// outcomesOf returns the outcomes of request id the hook was given.
func (h *hookLog) outcomesOf(id string) []Outcome {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Outcome
	for _, o := range h.outcomes {
		if o.Item.RequestID == id {
			out = append(out, o)
		}
	}
	return out
}

// startDispatcher runs a dispatcher until the test ends; then it stops
// it, lets the worker's blocked answers return, and waits for them.
func startDispatcher(t *testing.T, cp Control, w *fakeWorker, hooks Hooks, sink *logSink) *Dispatcher {
	d := NewDispatcher(cp, w, hooks, sink.logger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	t.Cleanup(func() {
		// Run waits for its runs: the worker's blocked answers end first.
		cancel()
		close(w.stop)
		<-done
		waitFor(t, "the worker's invocations to return", func() bool { return w.running() == 0 })
	})
	return d
}

// --- Polling and logs ---

// waitFor polls cond until it holds, failing the test after a generous
// deadline (the machine may be busy).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitfor.Until(t, 30*time.Second, what, cond)
}

// logSink keeps the log records of a test, and prints them if it fails.
type logSink struct {
	mu   sync.Mutex
	recs []slog.Record
}

func newLogSink(t *testing.T) *logSink {
	s := &logSink{}
	t.Cleanup(func() {
		if t.Failed() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, r := range s.recs {
				var b strings.Builder
				r.Attrs(func(a slog.Attr) bool { b.WriteString(" " + a.String()); return true })
				t.Logf("log: %s %s%s", r.Level, r.Message, b.String())
			}
		}
	})
	return s
}

func (s *logSink) logger() *slog.Logger { return slog.New(sinkHandler{s}) }

// has reports whether a record with message msg and attribute
// request_id=id was logged.
func (s *logSink) has(msg, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recs {
		if r.Message != msg {
			continue
		}
		found := id == ""
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "request_id" && a.Value.String() == id {
				found = true
			}
			return !found
		})
		if found {
			return true
		}
	}
	return false
}

type sinkHandler struct{ s *logSink }

func (h sinkHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h sinkHandler) Handle(_ context.Context, r slog.Record) error {
	h.s.mu.Lock()
	h.s.recs = append(h.s.recs, r.Clone())
	h.s.mu.Unlock()
	return nil
}

func (h sinkHandler) WithAttrs([]slog.Attr) slog.Handler { return h } // the queue adds none
func (h sinkHandler) WithGroup(string) slog.Handler      { return h }
