package state

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"nimbus/internal/model"
)

// ErrStaleLease is returned for a result or retry whose lease epoch is not
// the item's current one: the lease expired and the item moved on.
var ErrStaleLease = errors.New("stale lease")

// maxDeadLetters bounds the dead-letter list; the oldest go first.
const maxDeadLetters = 10000

// queueRecordLocked writes the record that mirrors a queue item's state.
// Needs s.mu.
func (s *Store) queueRecordLocked(q *model.QueueItem, status string, update func(*model.Invocation)) {
	rec := model.Invocation{ID: q.RequestID, Namespace: model.NamespaceOf(q.Namespace), Function: q.Function, Trigger: q.Trigger, Status: status,
		Start: q.EnqueuedAt, EnqueuedAt: q.EnqueuedAt, Attempts: q.Attempts}
	if old, ok := s.records.byID[q.RequestID]; ok {
		rec = old.record()
		rec.Status, rec.Attempts = status, q.Attempts
	}
	if update != nil {
		update(&rec)
	}
	s.addRecordLocked(rec)
}

// withAttempt copies into r the figures of the attempt a (what ran, for
// how long, in how much memory, and what it returned): a record that is
// retried or dead-lettered shows its last attempt. An a that never
// started (zero Start) leaves r as it is.
func withAttempt(r *model.Invocation, a model.Invocation) {
	if a.Start.IsZero() {
		return
	}
	r.Revision, r.Start, r.DurationMS, r.BilledMS = a.Revision, a.Start, a.DurationMS, a.BilledMS
	r.MemoryMB, r.MaxMemoryMB, r.InitMS, r.ColdStart = a.MemoryMB, a.MaxMemoryMB, a.InitMS, a.ColdStart
	r.Result, r.LogTail, r.Worker, r.CPUMS = a.Result, a.LogTail, a.Worker, a.CPUMS
}

// Enqueue queues events. An event whose request ID is already queued or
// recorded is skipped (the request ID is the idempotency key). It
// returns how many were queued.
func (s *Store) Enqueue(items []model.QueueItem) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, it := range items {
		if _, queued := s.queue[it.RequestID]; queued {
			continue
		}
		if _, recorded := s.records.byID[it.RequestID]; recorded {
			continue
		}
		s.queueSeq++
		it.Seq = s.queueSeq
		it.Attempts, it.Epoch, it.LeaseUntil = 0, 0, time.Time{}
		q := it
		s.queue[q.RequestID] = &q
		s.queueRecordLocked(&q, model.StatusQueued, nil)
		n++
	}
	return n
}

// Lease leases a queued item until the given time, counting an attempt.
// It returns the lease's epoch.
func (s *Store) Lease(id string, until, now time.Time) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queue[id]
	if !ok {
		return 0, fmt.Errorf("queued event %q: %w", id, ErrNotFound)
	}
	if q.Leased(now) {
		return 0, fmt.Errorf("queued event %q is leased until %v: %w", id, q.LeaseUntil, ErrStaleLease)
	}
	nq := *q
	nq.Epoch++
	nq.Attempts++
	nq.LeaseUntil = until
	s.queue[id] = &nq
	s.queueRecordLocked(&nq, model.StatusRunning, nil)
	return nq.Epoch, nil
}

func (s *Store) leasedLocked(id string, epoch uint64) (*model.QueueItem, error) {
	q, ok := s.queue[id]
	if !ok {
		return nil, fmt.Errorf("queued event %q: %w", id, ErrNotFound)
	}
	if q.Epoch != epoch {
		return nil, fmt.Errorf("queued event %q: epoch %d, not %d: %w", id, q.Epoch, epoch, ErrStaleLease)
	}
	return q, nil
}

// Complete ends a leased item with its final record (success, or a
// failure that is not retried).
func (s *Store) Complete(id string, epoch uint64, rec model.Invocation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.leasedLocked(id, epoch)
	if err != nil {
		return err
	}
	delete(s.queue, id)
	rec.ID, rec.Function, rec.Trigger, rec.Attempts, rec.EnqueuedAt = q.RequestID, q.Function, q.Trigger, q.Attempts, q.EnqueuedAt
	s.addRecordLocked(rec)
	return nil
}

// Retry puts a leased item back in the queue, not to run before
// notBefore. epoch 0 matches any epoch (an expired lease). refund undoes
// the lease's attempt count, for an event that never ran. attempt is the
// record of the attempt that failed (zero when none ran): its record
// takes its figures.
func (s *Store) Retry(id string, epoch uint64, notBefore time.Time, lastErr string, refund bool, attempt model.Invocation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queue[id]
	if !ok {
		return fmt.Errorf("queued event %q: %w", id, ErrNotFound)
	}
	if epoch != 0 && q.Epoch != epoch {
		return fmt.Errorf("queued event %q: %w", id, ErrStaleLease)
	}
	nq := *q
	nq.LeaseUntil, nq.NotBefore, nq.LastError = time.Time{}, notBefore, lastErr
	if refund && nq.Attempts > 0 {
		nq.Attempts-- // the event never ran (no capacity): not an attempt
	}
	s.queue[id] = &nq
	s.queueRecordLocked(&nq, model.StatusQueued, func(r *model.Invocation) {
		withAttempt(r, attempt)
		r.ErrorType = lastErr
	})
	return nil
}

// DeadLetter gives up on an item. epoch 0 matches any epoch. attempt is
// the record of the last attempt when it is what gave up (zero
// otherwise): the record takes its figures, or keeps those of the last
// attempt it was given.
func (s *Store) DeadLetter(id string, epoch uint64, reason, lastErr string, now time.Time, attempt model.Invocation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, ok := s.queue[id]
	if !ok {
		return fmt.Errorf("queued event %q: %w", id, ErrNotFound)
	}
	if epoch != 0 && q.Epoch != epoch {
		return fmt.Errorf("queued event %q: %w", id, ErrStaleLease)
	}
	delete(s.queue, id)
	s.deadLetters[id] = &model.DeadLetter{RequestID: id, Namespace: model.NamespaceOf(q.Namespace), Function: q.Function, Event: q.Event, Reason: reason,
		Attempts: q.Attempts, LastError: lastErr, At: now, Trigger: q.Trigger}
	s.dlOrder = append(s.dlOrder, id)
	s.trimDeadLettersLocked()
	s.queueRecordLocked(q, model.StatusDeadLetter, func(r *model.Invocation) {
		withAttempt(r, attempt)
		if lastErr != "" {
			r.ErrorType = lastErr
		}
	})
	return nil
}

// trimDeadLettersLocked drops the oldest dead letters beyond
// maxDeadLetters. Needs s.mu held for writing.
func (s *Store) trimDeadLettersLocked() {
	for len(s.dlOrder) > maxDeadLetters {
		delete(s.deadLetters, s.dlOrder[0])
		s.dlOrder = s.dlOrder[1:]
	}
}

// Redrive moves dead letters back to the queue under their request IDs,
// with their attempts reset. It returns how many moved.
func (s *Store) Redrive(ids []string, now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, id := range ids {
		dl, ok := s.deadLetters[id]
		if !ok {
			continue
		}
		delete(s.deadLetters, id)
		for i, x := range s.dlOrder {
			if x == id {
				s.dlOrder = append(s.dlOrder[:i:i], s.dlOrder[i+1:]...)
				break
			}
		}
		s.queueSeq++
		q := &model.QueueItem{RequestID: id, Namespace: dl.Namespace, Function: dl.Function, Event: dl.Event, Trigger: dl.Trigger, EnqueuedAt: now, Seq: s.queueSeq, Redriven: true}
		s.queue[id] = q
		s.queueRecordLocked(q, model.StatusQueued, func(r *model.Invocation) { r.EnqueuedAt, r.ErrorType = now, "" })
		n++
	}
	return n
}

// QueueItems returns every queued or leased item in arrival order,
// shared with the store: a queued item is never changed in place, only
// replaced (Lease, Retry), so the caller reads them without the store's
// lock, and must not change them. Under the lock it copies a pointer an
// item, not the item: the dispatcher reads the queue up to ten times a
// second, and a backlog may be hundreds of thousands of events.
func (s *Store) QueueItems() []*model.QueueItem {
	s.mu.RLock()
	keyed := make([]queuedBySeq, 0, len(s.queue))
	for _, q := range s.queue {
		keyed = append(keyed, queuedBySeq{q.Seq, q})
	}
	s.mu.RUnlock()
	slices.SortFunc(keyed, func(a, b queuedBySeq) int { return cmp.Compare(a.seq, b.seq) })
	out := make([]*model.QueueItem, len(keyed))
	for i := range keyed {
		out[i] = keyed[i].item
	}
	return out
}

// queuedBySeq is a queued event with its Seq beside it, so that sorting
// compares without reading the events.
type queuedBySeq struct {
	seq  uint64
	item *model.QueueItem
}

// QueueItem returns one queued item.
func (s *Store) QueueItem(id string) (model.QueueItem, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	q, ok := s.queue[id]
	if !ok {
		return model.QueueItem{}, false
	}
	return *q, true
}

// DeadLetters returns the dead letters of namespace ns ("" for every
// namespace) and function ("" for all), oldest first.
func (s *Store) DeadLetters(ns, function string) []model.DeadLetter {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := []model.DeadLetter{}
	for _, id := range s.dlOrder {
		dl := s.deadLetters[id]
		if dl == nil || (ns != "" && model.NamespaceOf(dl.Namespace) != ns) {
			continue
		}
		if function == "" || dl.Function == function {
			out = append(out, *dl)
		}
	}
	return out
}
