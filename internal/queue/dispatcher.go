// Package queue owns the asynchronous invocation path on the leader: the
// enqueuer that commits events in batches before they are acknowledged,
// and the dispatcher that leases queued events to itself (through Raft),
// runs each on a worker through placement, retries them with backoff,
// turns them into dead letters, and fires destinations. Workers never see
// the queue or hold a lease.
//
// Delivery is at least once: a lease outlives a dead dispatcher until the
// next leader finds its event running on no worker (recover.go), or at
// most until its deadline, then the event runs again; the request ID is
// the idempotency key, and a result that arrives after its lease was
// superseded is refused (lease epochs).
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/placement"
	"nimbus/internal/state"
	"nimbus/internal/worker"
)

// Defaults of asynchronous invocation, as on Lambda.
const (
	DefaultRetries     = 2
	DefaultRetryDelay  = time.Minute
	DefaultMaxEventAge = 6 * time.Hour
	// leaseGrace is added to a function's timeout for its lease: the
	// time a result may take to come back. An event whose dispatcher
	// never reports, and which the next leader did not find lost (see
	// recoverLeases), waits this long past its timeout before running
	// again.
	leaseGrace = 10 * time.Second
	tick       = 20 * time.Millisecond
	maxLeases  = 256 // per Lease command
	// minAhead is the fewest events a dispatcher leases beyond the free
	// slots it sees (see lookahead).
	minAhead = 4
	// rescanEvery is how often the dispatcher reads the whole queue
	// while it still has ready events in fair order from the last read
	// (or when new events arrive and it has none): reading it costs
	// O(queue), and a backlog of thousands read at every pass took most
	// of the leader's CPU. Lease expiry and event age are checked then.
	rescanEvery = 100 * time.Millisecond
	// maxReady bounds the ready events a read of the queue keeps, in fair
	// order, for the passes until the next read (at most maxLeases a
	// pass): a backlog of hundreds of thousands is not copied whole ten
	// times a second. A read that left ready events out is followed by
	// another as soon as the passes have used up those it kept.
	maxReady = 16 * maxLeases
	// holdLimit is how long a leased event waits here for a free slot
	// before it goes back to the queue (a Retry through Raft, refunded).
	// It is half of leaseGrace, so the lease outlives the wait and the
	// run.
	holdLimit = leaseGrace / 2
)

// Control is what the dispatcher needs of the Raft node.
type Control interface {
	Store() *state.Store
	fsm.Writer
}

// Invoker runs an invocation on some worker (the placer).
type Invoker interface {
	Invoke(ctx context.Context, req worker.Request) (worker.Result, error)
	// Room is how many queued events the workers could take now: their
	// free slots and one waiting at each worker for the next.
	Room() int
}

// Hooks let the server observe what the dispatcher does: the log of each
// run (to store and stream it) and each outcome (to deliver destinations
// and notifications).
type Hooks struct {
	Log     func(model.LogEntry)
	Outcome func(Outcome)
	// Admit, when set, admits a run within the function's concurrency
	// limits; an event it refuses stays queued (no Raft entry) and is
	// offered again on a later pass.
	Admit func(model.Function) (release func(), err error)
	// Observe, when set, is told of each attempt that ran or failed to
	// run (not of one sent back for want of capacity), with the trigger
	// its metrics are labelled with: the event's, or "redrive" for a
	// redriven event.
	Observe func(fn model.Function, trigger string, res worker.Result, err error)
}

// Outcome describes a finished attempt of an event.
type Outcome struct {
	Item     model.QueueItem
	Function model.Function
	Record   model.Invocation
	Result   json.RawMessage
	// Condition is Success, RetriesExhausted or EventAgeExceeded for a
	// final outcome, "" for an attempt that will be retried.
	Condition string
}

// Dispatcher runs queued events during one term of office of the leader:
// make a new one for each term (Run may be called once).
type Dispatcher struct {
	cp    Control
	inv   Invoker
	hooks Hooks
	log   *slog.Logger

	mu       sync.Mutex
	inflight map[string]uint64 // request id -> epoch this dispatcher holds or runs
	// held are the events leased and waiting for a free slot, in the
	// order they were leased (fair order: see fairOrder). They start in
	// that order as slots free.
	held []heldEvent
	// starting counts the runs started that have not yet reached the
	// Invoker, whose Room does not count them yet (it counts the others:
	// they hold slots).
	starting int
	// ending is set when Run returns: no held event starts after.
	ending bool
	wake   chan struct{}
	// fresh is set by Wake (new events were committed) until the next
	// read of the queue.
	fresh bool
	// ready are the ready events of the last read of the queue, in fair
	// order (the first maxReady: truncated says some were left out),
	// less those leased since; scanned is when it was read, and
	// rescanAfter how long until the next read. Only pass uses them.
	ready       []model.QueueItem
	truncated   bool
	scanned     time.Time
	rescanAfter time.Duration
	// ended counts the runs ended since rated; rate (runs ended per
	// second) and leaseRTT (how long a Lease takes to commit) are moving
	// averages, for lookahead.
	ended    int
	rated    time.Time
	rate     float64
	leaseRTT time.Duration
	// finisher is set once, by Run, before any run starts.
	finisher *finisher
	runs     sync.WaitGroup // the runs Run started
	// abandon ends the runs' invocations (Abandon).
	abandon  context.Context
	abandons context.CancelFunc
	// censusWait bounds recoverLeases' wait for the workers' reports
	// (censusWait; shorter in tests).
	censusWait time.Duration
}

// NewDispatcher returns a dispatcher.
func NewDispatcher(cp Control, inv Invoker, hooks Hooks, log *slog.Logger) *Dispatcher {
	d := &Dispatcher{cp: cp, inv: inv, hooks: hooks, log: log, inflight: map[string]uint64{}, wake: make(chan struct{}, 1), censusWait: censusWait,
		rescanAfter: rescanEvery}
	d.abandon, d.abandons = context.WithCancel(context.Background())
	return d
}

// Abandon cuts off the invocations of the runs in flight, for a node
// that stops and cannot wait for them: their outcomes are not committed,
// so their leases expire and their events run again (at least once), as
// when a leader dies. Run then returns without waiting for them to end on
// their own.
func (d *Dispatcher) Abandon() { d.abandons() }

// Wake makes the dispatcher look at the queue now (new events arrived).
func (d *Dispatcher) Wake() {
	d.mu.Lock()
	d.fresh = true
	d.mu.Unlock()
	d.kick()
}

// kick makes the dispatcher make a pass now.
func (d *Dispatcher) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run dispatches until ctx ends (the term of office ends), then waits
// for the runs it started and flushes their outcomes before it returns,
// so that nothing of this term is left running when the next starts.
//
// Outcomes are flushed, not dropped: the finisher commits them through
// Apply, which forwards them to the new leader when this node no longer
// leads. The FSM accepts an outcome only for the lease epoch it was
// leased under, so one whose event was leased again meanwhile is
// refused (and logged), never committed twice as a different result. An
// outcome that cannot be committed at all (no leader within the
// finisher's timeout) is logged; its lease then expires and the event
// runs again (at least once). Runs are bounded by their function's
// timeout plus leaseGrace, and so is the wait.
//
// Run may be called once: it panics if the Dispatcher ran before.
func (d *Dispatcher) Run(ctx context.Context) {
	d.mu.Lock()
	if d.finisher != nil {
		d.mu.Unlock()
		panic("queue: Dispatcher.Run called twice; make a new Dispatcher for each term")
	}
	d.finisher = newFinisher(d.cp, d.log)
	d.finisher.onDone = func(o *Outcome) {
		if d.hooks.Outcome != nil {
			d.hooks.Outcome(*o)
		}
	}
	d.mu.Unlock()
	// No run starts once the term has ended, even before the loop below
	// sees it: a deposed leader must not start what the next term may
	// find running nowhere and run again (see recoverLeases).
	stopEnding := context.AfterFunc(ctx, d.end)
	defer func() {
		stopEnding()
		d.end()
		d.runs.Wait()
		d.refundHeld(func(heldEvent) bool { return true }) // they never ran: no need to wait for their leases
		d.finisher.close()
	}()
	if ct, ok := d.inv.(censusTaker); ok {
		start := time.Now()
		if earlier := d.earlierLeases(start.UTC()); len(earlier) > 0 {
			d.runs.Add(1)
			go func() {
				defer d.runs.Done()
				d.recoverLeases(ctx, start, earlier, ct)
				d.kick()
			}()
		}
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		d.pass(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

// end stops held events from starting (Run's term ended).
func (d *Dispatcher) end() {
	d.mu.Lock()
	d.ending = true
	d.mu.Unlock()
}

// pass leases ready events in fair order (see fairOrder), as far as the
// workers have room (Invoker.Room) and a lookahead more, and starts them
// as room frees. It reads the whole queue (see scan) every rescanEvery, or sooner
// when new events arrived and none of the last read are left.
func (d *Dispatcher) pass(ctx context.Context) {
	now := time.Now().UTC()
	fns := functionsOf(d.cp.Store())
	d.mu.Lock()
	rescan := now.Sub(d.scanned) >= d.rescanAfter || ((d.fresh || d.truncated) && len(d.ready) == 0)
	if rescan {
		d.fresh = false
	}
	d.mu.Unlock()
	if rescan {
		d.scan(now, fns)
	}
	d.mu.Lock()
	budget := d.inv.Room() + d.lookaheadLocked(now) - d.starting - len(d.held)
	d.mu.Unlock()
	d.refundHeld(func(h heldEvent) bool { return now.Sub(h.leased) > holdLimit })
	d.startHeld()
	if budget <= 0 || len(d.ready) == 0 {
		return
	}
	ready, releases, examined := d.admit(d.ready, min(budget, maxLeases), fns)
	clear(d.ready[:examined])
	d.ready = d.ready[examined:]
	if len(ready) == 0 {
		return
	}
	leases := make([]fsm.LeaseRequest, len(ready))
	for i, q := range ready {
		fn, _ := fns.of(q)
		leases[i] = fsm.LeaseRequest{RequestID: q.RequestID, Until: now.Add(time.Duration(fn.Timeout) + leaseGrace)}
	}
	res, err := fsm.Apply(ctx, d.cp, fsm.Lease{Leases: leases, Now: now})
	d.mu.Lock()
	d.leaseRTT = (d.leaseRTT + time.Since(now)) / 2
	d.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			d.log.Warn("leasing queued events", "err", err)
		}
		for _, rel := range releases {
			rel()
		}
		return
	}
	epochs := res.Epochs
	d.mu.Lock()
	for i, q := range ready {
		epoch, ok := epochs[q.RequestID]
		if !ok {
			releases[i]()
			continue
		}
		q.Epoch, q.Attempts = epoch, q.Attempts+1
		d.inflight[q.RequestID] = epoch
		d.held = append(d.held, heldEvent{item: q, release: releases[i], leased: now})
	}
	d.mu.Unlock()
	d.startHeld()
}

// heldEvent is an event leased and waiting for a free slot.
type heldEvent struct {
	item    model.QueueItem
	release func() // its admission
	leased  time.Time
}

// startHeld starts held events, first leased first, while the workers
// have room (Invoker.Room).
func (d *Dispatcher) startHeld() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ending || len(d.held) == 0 {
		return // (Room reads every worker: not for nothing after each run)
	}
	free := d.inv.Room() - d.starting
	for ; free > 0 && len(d.held) > 0; free-- {
		h := d.held[0]
		d.held = d.held[1:]
		d.starting++
		d.runs.Add(1)
		go func() {
			defer d.runs.Done()
			d.run(h)
		}()
	}
}

// refundHeld sends the held events that match back to the queue, as
// never run (their attempt refunded), to be leased again shortly.
func (d *Dispatcher) refundHeld(match func(heldEvent) bool) {
	now := time.Now().UTC()
	d.mu.Lock()
	kept := d.held[:0]
	var back []heldEvent
	for _, h := range d.held {
		if match(h) {
			back = append(back, h)
			delete(d.inflight, h.item.RequestID)
		} else {
			kept = append(kept, h)
		}
	}
	clear(d.held[len(kept):])
	d.held = kept
	d.mu.Unlock()
	for _, h := range back {
		h.release()
		d.finisher.add(notRun(h.item, now), nil)
	}
}

// notRun is the outcome of a leased event that never ran (no slot, no
// worker): back to the queue shortly, its attempt not counted.
func notRun(q model.QueueItem, now time.Time) fsm.Outcome {
	return fsm.Outcome{RequestID: q.RequestID, Epoch: q.Epoch, Kind: fsm.OutcomeRetry,
		NotBefore: now.Add(250 * time.Millisecond), Refund: true, LastError: q.LastError}
}

// hold puts a started event that found no free slot back at the head of
// the held events, unless it has waited holdLimit since its lease; it
// reports whether it did.
func (d *Dispatcher) hold(h heldEvent) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ending || time.Since(h.leased) > holdLimit {
		return false
	}
	d.held = append([]heldEvent{h}, d.held...)
	return true
}

// lookaheadLocked is how many events to lease beyond the workers' room, so
// that a slot that frees finds an event already leased instead of
// waiting for the next Lease to commit: the runs expected to end during
// four Lease round trips at the rate runs have been ending, at least
// minAhead. With a fixed 8, a queue of no-op events drained at 1,000/s,
// with 64 at 1,600/s (bench/drain); a fixed large number would have slow
// functions' events wait here past holdLimit. Needs d.mu.
func (d *Dispatcher) lookaheadLocked(now time.Time) int {
	if el := now.Sub(d.rated); el >= 100*time.Millisecond {
		d.rate = (d.rate + float64(d.ended)/el.Seconds()) / 2
		d.ended, d.rated = 0, now
	}
	return min(max(minAhead, int(4*d.rate*d.leaseRTT.Seconds())+1), maxLeases)
}

// scan reads the whole queue: expired leases and too-old events become
// retries or dead letters (committed by the finisher), and the first
// maxReady ready events, in fair order, replace d.ready. The next read
// comes rescanEvery later, or four times as long as this one took if
// that is longer: reading a backlog of hundreds of thousands takes tens
// of milliseconds, which must not be most of what the leader does.
func (d *Dispatcher) scan(now time.Time, fns functions) {
	started := time.Now()
	store := d.cp.Store()
	var expired []fsm.Outcome
	var notes []*Outcome // final outcomes that have destinations to serve
	var ready []*model.QueueItem
	// giveUp records an outcome decided here (not after a run): a dead
	// letter goes with its on_failure destination when the function
	// still exists.
	giveUp := func(o fsm.Outcome, q model.QueueItem, fn model.Function, exists bool) {
		note := deadLetterNote(&o, q, fn, exists, now)
		expired = append(expired, o)
		notes = append(notes, note)
	}
	d.mu.Lock()
	for _, q := range store.QueueItems() {
		if _, mine := d.inflight[q.RequestID]; mine {
			continue
		}
		l := fns.lookup(q)
		switch {
		case !q.LeaseUntil.IsZero() && now.After(q.LeaseUntil):
			// Its dispatcher (perhaps an earlier leader) never reported.
			o, note := d.lostOutcome(*q, l.fn, l.err == nil, now, "Sandbox.LeaseExpired", 0)
			expired = append(expired, o)
			notes = append(notes, note)
		case q.Leased(now):
		case now.Sub(q.EnqueuedAt) > l.async.maxAge:
			giveUp(fsm.Outcome{RequestID: q.RequestID, Kind: fsm.OutcomeDeadLetter,
				Reason: model.ReasonEventAgeExceeded, LastError: q.LastError}, *q, l.fn, l.err == nil)
		case l.err != nil:
			giveUp(fsm.Outcome{RequestID: q.RequestID, Kind: fsm.OutcomeDeadLetter,
				Reason: model.ReasonRetriesExhausted, LastError: "Runtime.FunctionNotFound"}, *q, l.fn, false)
		case !now.Before(q.NotBefore):
			ready = append(ready, q)
		}
	}
	d.mu.Unlock()
	order := fairOrder(ready)
	kept := make([]model.QueueItem, min(len(order), maxReady))
	for i := range kept {
		kept[i] = *order[i]
	}
	d.ready, d.truncated, d.scanned = kept, len(kept) < len(order), now
	d.rescanAfter = max(rescanEvery, 4*time.Since(started))
	for i, o := range expired {
		d.finisher.add(o, notes[i])
	}
}

// admit picks, in the order given, up to n events whose functions' limits
// admit a run now, with the releases of what they hold, and says how many
// of ready it examined (those refused wait for the next read of the
// queue).
func (d *Dispatcher) admit(ready []model.QueueItem, n int, fns functions) ([]model.QueueItem, []func(), int) {
	var out []model.QueueItem
	var releases []func()
	examined := 0
	for _, q := range ready {
		if len(out) == n {
			break
		}
		examined++
		release := func() {}
		if d.hooks.Admit != nil {
			fn, err := fns.of(q)
			if err == nil {
				if release, err = d.hooks.Admit(fn); err != nil {
					continue // at its limit: it waits in the queue
				}
			} else {
				release = func() {}
			}
		}
		out = append(out, q)
		releases = append(releases, release)
	}
	return out, releases, examined
}

// functions looks up the functions of queued events, each once per pass
// (a backlog holds many events of few functions).
type functions struct {
	store *state.Store
	seen  map[functionKey]*functionLookup
}

// functionKey is an event's namespace and function, as the event names
// them.
type functionKey struct{ namespace, function string }

type functionLookup struct {
	fn    model.Function
	err   error
	async asyncSettings
}

func functionsOf(store *state.Store) functions {
	return functions{store: store, seen: map[functionKey]*functionLookup{}}
}

func (f functions) of(q model.QueueItem) (model.Function, error) {
	l := f.lookup(&q)
	return l.fn, l.err
}

// lookup is q's function and its async settings, looked up once a pass
// for each function (read, not changed, by the caller).
func (f functions) lookup(q *model.QueueItem) *functionLookup {
	if _, qual := model.SplitQualifier(q.Function); qual != "" {
		// An alias may route each event elsewhere: resolve each.
		l := &functionLookup{}
		l.fn, l.err = f.store.Resolve(model.QualifiedName(q.Namespace, q.Function), rand.Float64())
		l.async = asyncConfig(l.fn.FunctionConfig)
		return l
	}
	k := functionKey{q.Namespace, q.Function}
	l := f.seen[k]
	if l == nil {
		l = &functionLookup{}
		l.fn, l.err = f.store.Function(model.QualifiedName(q.Namespace, q.Function))
		l.async = asyncConfig(l.fn.FunctionConfig)
		f.seen[k] = l
	}
	return l
}

// asyncSettings are a function's asynchronous settings with defaults.
type asyncSettings struct {
	retries int
	delay   time.Duration
	maxAge  time.Duration
}

func asyncConfig(c model.FunctionConfig) asyncSettings {
	s := asyncSettings{retries: DefaultRetries, delay: DefaultRetryDelay, maxAge: DefaultMaxEventAge}
	if c.Retries != nil {
		s.retries = *c.Retries
	}
	if c.RetryDelay > 0 {
		s.delay = time.Duration(c.RetryDelay)
	}
	if c.MaxEventAge > 0 {
		s.maxAge = time.Duration(c.MaxEventAge)
	}
	return s
}

// failOutcome is what a failed attempt becomes: a retry after the
// doubling delay, or a dead letter once the retries are spent.
func (d *Dispatcher) failOutcome(q model.QueueItem, fn model.Function, cfg asyncSettings, now time.Time, errType string, epoch uint64) fsm.Outcome {
	if q.Attempts > cfg.retries {
		return fsm.Outcome{RequestID: q.RequestID, Epoch: epoch, Kind: fsm.OutcomeDeadLetter,
			Reason: model.ReasonRetriesExhausted, LastError: errType}
	}
	delay := cfg.delay << max(q.Attempts-1, 0)
	return fsm.Outcome{RequestID: q.RequestID, Epoch: epoch, Kind: fsm.OutcomeRetry, NotBefore: now.Add(delay), LastError: errType}
}

// run invokes one leased event and reports its outcome. One that finds
// no free slot after all goes back to the held events (see hold).
func (d *Dispatcher) run(h heldEvent) {
	q := h.item
	requeued := false
	defer func() {
		if requeued {
			return // it starts again when a slot frees (or the next pass)
		}
		h.release()
		d.mu.Lock()
		delete(d.inflight, q.RequestID)
		d.ended++
		d.mu.Unlock()
		d.startHeld() // a slot is free: start the next held event,
		d.kick()      // and lease another
	}()
	started := func() {
		d.mu.Lock()
		d.starting--
		d.mu.Unlock()
	}
	store := d.cp.Store()
	fn, err := store.Resolve(model.QualifiedName(q.Namespace, q.Function), rand.Float64())
	if err != nil {
		started()
		d.finisher.add(fsm.Outcome{RequestID: q.RequestID, Epoch: q.Epoch, Kind: fsm.OutcomeDeadLetter,
			Reason: model.ReasonRetriesExhausted, LastError: "Runtime.FunctionNotFound"}, nil)
		return
	}
	cfg := asyncConfig(fn.FunctionConfig)
	ctx, cancel := context.WithTimeout(d.abandon, time.Duration(fn.Timeout)+leaseGrace)
	defer cancel()
	started()
	d.mu.Lock()
	ending := d.ending
	d.mu.Unlock()
	if ending {
		// The term ended as it was starting: it never reaches a worker.
		d.finisher.add(notRun(q, time.Now().UTC()), nil)
		return
	}
	res, err := d.inv.Invoke(ctx, worker.Request{RequestID: q.RequestID, Function: fn, Payload: q.Event, Queued: true})
	if errors.Is(err, worker.ErrNoCapacity) && d.hold(h) {
		// Another server's invocation took the slot first: wait for the
		// next (a synchronous one waiting at the worker goes first).
		requeued = true
		return
	}
	if d.abandon.Err() != nil {
		d.log.Info("async run abandoned as the node stops: it runs again when its lease expires", "request_id", q.RequestID, "function", fn.Name)
		return
	}
	now := time.Now().UTC()
	if errors.Is(err, worker.ErrNoCapacity) || errors.Is(err, placement.ErrNoWorkers) || errors.Is(err, worker.ErrClosed) {
		// It never ran: back to the queue shortly, without counting.
		d.finisher.add(notRun(q, now), nil)
		return
	}
	if d.hooks.Observe != nil {
		trigger := q.Trigger
		if q.Redriven {
			trigger = "redrive"
		}
		d.hooks.Observe(fn, trigger, res, err)
	}
	if err != nil {
		d.log.Warn("async invocation failed to run", "request_id", q.RequestID, "function", fn.Name, "err", err)
		o := d.failOutcome(q, fn, cfg, now, "Sandbox.Crashed", q.Epoch)
		out := &Outcome{Item: q, Function: fn, Condition: o.Reason, // Reason: "" for a retry
			Record: model.Invocation{ID: q.RequestID, Namespace: fn.Namespace, Function: fn.Name, Status: model.StatusFailed, ErrorType: o.LastError}}
		// A dead letter goes to its on_failure destination, however its
		// last attempt failed.
		if dest := functionDestination(*out, now); dest != nil {
			o.Enqueue = []model.QueueItem{*dest}
		}
		d.finisher.add(o, out)
		return
	}
	rec := worker.NewRecord(worker.Request{RequestID: q.RequestID, Function: fn}, q.Trigger, res)
	rec.Status = model.StatusSuccess // until the outcome says otherwise (below)
	rec.Result, rec.Attempts, rec.EnqueuedAt = json.RawMessage(res.Payload), q.Attempts, q.EnqueuedAt
	if len(rec.Result) > 64<<10 || !json.Valid(rec.Result) {
		rec.Result = nil // records keep results up to 64 KB
	}
	if d.hooks.Log != nil {
		d.hooks.Log(model.LogEntry{RequestID: q.RequestID, Namespace: fn.Namespace, Function: fn.Name, Time: rec.Start, Log: string(res.Log)})
	}
	out := Outcome{Item: q, Function: fn, Record: rec, Result: json.RawMessage(res.Payload)}
	var o fsm.Outcome
	if res.ErrorType == "" {
		o = fsm.Outcome{RequestID: q.RequestID, Epoch: q.Epoch, Kind: fsm.OutcomeComplete, Record: rec}
		out.Condition = "Success"
	} else {
		o = d.failOutcome(q, fn, cfg, now, res.ErrorType, q.Epoch)
		if o.Kind == fsm.OutcomeDeadLetter {
			out.Condition = o.Reason
		}
		out.Record.Status = model.StatusFailed
		o.Record = out.Record // the retried or dead-lettered record shows this attempt
	}
	// A function destination's event commits with the outcome itself.
	if dest := functionDestination(out, now); dest != nil {
		o.Enqueue = []model.QueueItem{*dest}
	}
	d.finisher.add(o, &out)
}
