package queue

import (
	"context"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/placement"
)

// What a new term does with the leases of earlier terms.
//
// A leader that dies takes its dispatcher's runs with it: each run's
// invocation rides an RPC from that leader to a worker, and a worker cuts
// off an invocation whose caller went away (its instance killed). Their
// leases would hold their events for the function's timeout and
// leaseGrace more (15 minutes and 10 s for a 15-minute function). So a
// new term asks the workers, through their heartbeats, which queued
// events they hold (worker.Worker.RunningQueued), and for every live
// lease of an earlier term:
//
//   - a worker holds it: the lease is adopted, left alone. Its run's
//     outcome comes as it ends (its dispatcher's node is alive, deposed:
//     it commits through this leader), or the lease expires as before.
//   - no live worker holds it: it is lost, and finished now as a failed
//     attempt (ErrorWorkerLost) to run again at once, as an expired lease
//     is (lostOutcome), under its lease epoch, so a later lease is never
//     touched.
//
// An event is never run twice at once on this account: a lost event was
// in no heartbeat taken after the term began, and no dispatcher of an
// earlier term starts a run after that term ended (Run stops starting
// runs as its context ends). What remains is a run whose RPC the network
// held for longer than the census took, at least a second.
const (
	// censusWait bounds the wait for a heartbeat from every live worker:
	// a worker's dead-after time (5 s by default), past which a silent
	// worker is dead anyway. One that sends none by then is taken as
	// running nothing.
	censusWait = 5 * time.Second
	censusPoll = 50 * time.Millisecond
)

// censusTaker is an Invoker that can tell which queued events its
// workers hold (placement.Placer). A dispatcher whose Invoker cannot
// leaves earlier terms' leases to expire.
type censusTaker interface {
	RunningQueued(since time.Time) placement.Census
}

// leaseFate is what a new term does with a queue item's lease.
type leaseFate int

const (
	// leaseUntouched: not a live lease of an earlier term (none, this
	// term's own, or expired, which scan handles).
	leaseUntouched leaseFate = iota
	// leaseAdopted: an earlier term's live lease on an event a worker
	// holds (or may hold: a Partial census).
	leaseAdopted
	// leaseLost: an earlier term's live lease on an event no live worker
	// holds.
	leaseLost
)

// fateOf decides what becomes of q's lease, given the live leases of
// earlier terms as the term began (earlier: request ID → lease epoch) and
// the workers' census since.
func fateOf(q model.QueueItem, earlier map[string]uint64, c placement.Census, now time.Time) leaseFate {
	epoch, ok := earlier[q.RequestID]
	switch {
	case !ok || q.Epoch != epoch || !q.Leased(now):
		// Leased since (by this term), finished or retried since, or
		// expired.
		return leaseUntouched
	case c.Partial || c.Running[q.RequestID]:
		return leaseAdopted
	}
	return leaseLost
}

// earlierLeases returns the live leases in the queue at the start of a
// term, before it leases anything: every one is an earlier term's.
func (d *Dispatcher) earlierLeases(now time.Time) map[string]uint64 {
	out := map[string]uint64{}
	for _, q := range d.cp.Store().QueueItems() {
		if q.Leased(now) {
			out[q.RequestID] = q.Epoch
		}
	}
	return out
}

// recoverLeases adopts the earlier terms' leases that workers hold and
// sends the others back to run at once (see above). It waits for the
// census until every live worker has reported since the term began, or
// censusWait has passed, or ctx ends.
func (d *Dispatcher) recoverLeases(ctx context.Context, since time.Time, earlier map[string]uint64, ct censusTaker) {
	t := time.NewTicker(censusPoll)
	defer t.Stop()
	var c placement.Census
	for {
		c = ct.RunningQueued(since)
		if (len(c.Pending) == 0 && !c.Listening) || time.Since(since) >= d.censusWait {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	if c.Listening {
		// This server has not listened long enough to know every live
		// worker: any event may be running.
		c.Partial = true
	}
	if len(c.Pending) > 0 {
		d.log.Warn("workers sent no heartbeat since the term began: taken as running no queued event", "workers", c.Pending)
	}
	now := time.Now().UTC()
	fns := functionsOf(d.cp.Store())
	adopted, lost := 0, 0
	for _, qp := range d.cp.Store().QueueItems() {
		q := *qp
		switch fateOf(q, earlier, c, now) {
		case leaseAdopted:
			adopted++
		case leaseLost:
			lost++
			fn, ferr := fns.of(q)
			o, note := d.lostOutcome(q, fn, ferr == nil, now, placement.ErrorWorkerLost, q.Epoch)
			d.log.Info("an earlier term's event runs on no worker: it runs again now", "request_id", q.RequestID, "function", q.Function)
			d.finisher.add(o, note)
		}
	}
	d.log.Info("earlier terms' leases", "adopted", adopted, "lost", lost, "partial", c.Partial)
}

// lostOutcome is the outcome of an event whose lease was lost: it expired
// (its dispatcher never reported), or a new term found it running on no
// worker. Whether it ran is unknown, so the attempt counts, but it runs
// again at once (the wait for the lease was its retry delay), or is
// dead-lettered, with its failure destination, once its retries are
// spent. exists says fn is the event's function (not removed). epoch is
// the lease's (0: any).
func (d *Dispatcher) lostOutcome(q model.QueueItem, fn model.Function, exists bool, now time.Time, errType string, epoch uint64) (fsm.Outcome, *Outcome) {
	o := d.failOutcome(q, fn, asyncConfig(fn.FunctionConfig), now, errType, epoch)
	if o.Kind == fsm.OutcomeRetry {
		o.NotBefore = now
	}
	return o, deadLetterNote(&o, q, fn, exists, now)
}

// deadLetterNote is, for a dead letter decided without a run (o, whose
// Enqueue it sets to the on_failure destination's event), the outcome
// the hooks hear of; nil for any other outcome, or when the function no
// longer exists.
func deadLetterNote(o *fsm.Outcome, q model.QueueItem, fn model.Function, exists bool, now time.Time) *Outcome {
	if o.Kind != fsm.OutcomeDeadLetter || !exists {
		return nil
	}
	note := &Outcome{Item: q, Function: fn, Condition: o.Reason,
		Record: model.Invocation{ID: q.RequestID, Namespace: fn.Namespace, Function: fn.Name, Status: model.StatusDeadLetter, ErrorType: o.LastError}}
	if dest := functionDestination(*note, now); dest != nil {
		o.Enqueue = []model.QueueItem{*dest}
	}
	return note
}
