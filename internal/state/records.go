package state

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"nimbus/internal/model"
)

// recordIndex keeps records per function in insertion order (oldest first)
// and by ID. Its methods need Store.mu held.
type recordIndex struct {
	byFunction map[string][]*model.Invocation
	byID       map[string]*model.Invocation
	observe    func(model.Invocation) // called with each added record; must not block
	// outcome is called with each added record whose status differs
	// from the one of the record it replaces (or that is new); must not
	// block.
	outcome func(model.Invocation)
}

func newRecordIndex() recordIndex {
	return recordIndex{byFunction: map[string][]*model.Invocation{}, byID: map[string]*model.Invocation{}}
}

func (x *recordIndex) add(r model.Invocation) {
	if x.observe != nil {
		x.observe(r)
	}
	old, ok := x.byID[r.ID]
	if x.outcome != nil && (!ok || old.Status != r.Status) {
		x.outcome(r)
	}
	r.Namespace = model.NamespaceOf(r.Namespace)
	stored := &r
	if ok {
		// Newest last, and the records updated are the recent ones (an
		// async event's, as it moves from queued to its outcome): look
		// from the end.
		list := x.byFunction[model.QualifiedName(old.Namespace, old.Function)]
		for i := len(list) - 1; i >= 0; i-- {
			if list[i] == old {
				list[i] = stored
				break
			}
		}
		x.byID[r.ID] = stored
		return
	}
	x.byID[r.ID] = stored
	qn := model.QualifiedName(r.Namespace, r.Function)
	x.byFunction[qn] = append(x.byFunction[qn], stored)
}

// prune applies retention as of now and returns the IDs it removed. A
// record for which keep reports true (an event still queued) stays.
func (x *recordIndex) prune(ret model.Retention, now time.Time, keep func(id string) bool) []string {
	var removed []string
	cutoff := now.Add(-ret.MaxAge)
	for fn, list := range x.byFunction {
		drop := 0
		if ret.PerFunction > 0 && len(list) > ret.PerFunction {
			drop = len(list) - ret.PerFunction
		}
		for drop < len(list) && ret.MaxAge > 0 && list[drop].Start.Before(cutoff) {
			drop++
		}
		if drop == 0 {
			continue
		}
		var kept []*model.Invocation
		for _, r := range list[:drop] {
			if keep(r.ID) {
				kept = append(kept, r)
				continue
			}
			delete(x.byID, r.ID)
			removed = append(removed, r.ID)
		}
		if len(kept) == 0 && drop == len(list) {
			delete(x.byFunction, fn)
			continue
		}
		// Copy so the dropped records' backing array can be collected.
		x.byFunction[fn] = append(kept, list[drop:]...)
	}
	return removed
}

func (x *recordIndex) all() []model.Invocation {
	out := make([]model.Invocation, 0, len(x.byID))
	for _, list := range x.byFunction {
		for _, r := range list {
			out = append(out, *r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// AddRecords stores a batch of records (a record with a known ID replaces
// the old one) and applies retention as of now. It counts in the metric
// history the invocations whose records reach a final status, and the
// throttles, and moves the history's window to now (see metrics.go). It
// returns the IDs of the records that retention removed.
func (s *Store) AddRecords(records []model.Invocation, throttles []model.ThrottleCount, ret model.Retention, now time.Time) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics.setKeep(ret)
	s.metrics.advance(now)
	s.meterProvisionedLocked(now)
	for _, r := range records {
		s.addRecordLocked(r)
	}
	for _, t := range throttles {
		s.metrics.throttled(t)
	}
	return s.records.prune(ret, now, func(id string) bool { _, queued := s.queue[id]; return queued })
}

// Record returns the invocation record with the given request ID.
func (s *Store) Record(id string) (model.Invocation, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.records.byID[id]
	if !ok {
		return model.Invocation{}, fmt.Errorf("invocation %q: %w", id, ErrNotFound)
	}
	return *r, nil
}

// RecordQuery selects invocation records. Zero fields match everything.
type RecordQuery struct {
	Namespace string
	Function  string
	Status    string
	Trigger   string    // "" for any; a kind ("source") also matches "source:NAME"
	Since     time.Time // records that started at or after it
	Before    time.Time // and before it (zero: no bound); a page of older records
	Limit     int       // 0 for no limit
}

// Matches reports whether r is one q asks for (q.Function aside).
func (q RecordQuery) Matches(r *model.Invocation) bool {
	if q.Status != "" && r.Status != q.Status || r.Start.Before(q.Since) || q.Namespace != "" && r.Namespace != q.Namespace {
		return false
	}
	if !q.Before.IsZero() && !r.Start.Before(q.Before) {
		return false
	}
	if q.Trigger != "" && r.Trigger != q.Trigger {
		kind, _, _ := strings.Cut(r.Trigger, ":")
		return kind == q.Trigger
	}
	return true
}

// Records returns the records matching q, newest first.
func (s *Store) Records(q RecordQuery) []model.Invocation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// Pointers are gathered, and only the page is copied: a namespace may
	// hold 100,000 records. With a limit, only the newest limit are kept
	// as they are found (a heap whose root is the oldest kept), not all
	// of them sorted.
	var found []*model.Invocation
	top := newestFirst{limit: q.Limit}
	collect := func(list []*model.Invocation) {
		for _, r := range list {
			if !q.Matches(r) {
				continue
			}
			if q.Limit > 0 {
				top.offer(r)
			} else {
				found = append(found, r)
			}
		}
	}
	if q.Function != "" {
		collect(s.records.byFunction[model.QualifiedName(q.Namespace, q.Function)])
	} else {
		for _, list := range s.records.byFunction {
			collect(list)
		}
	}
	if q.Limit > 0 {
		found = top.list
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].Start.After(found[j].Start) })
	if q.Limit > 0 && len(found) > q.Limit {
		found = found[:q.Limit]
	}
	var out []model.Invocation
	if len(found) > 0 {
		out = make([]model.Invocation, len(found))
		for i, r := range found {
			out[i] = *r
		}
	}
	return out
}

// newestFirst keeps the limit newest records offered: a min-heap by start
// time, whose root is the oldest kept.
type newestFirst struct {
	limit int
	list  []*model.Invocation
}

func (h *newestFirst) offer(r *model.Invocation) {
	if len(h.list) < h.limit {
		h.list = append(h.list, r)
		for i := len(h.list) - 1; i > 0; { // sift up
			p := (i - 1) / 2
			if !h.list[i].Start.Before(h.list[p].Start) {
				break
			}
			h.list[i], h.list[p] = h.list[p], h.list[i]
			i = p
		}
		return
	}
	if !r.Start.After(h.list[0].Start) {
		return // older than every record kept
	}
	h.list[0] = r
	for i := 0; ; { // sift down
		l, m := 2*i+1, i
		if l < len(h.list) && h.list[l].Start.Before(h.list[m].Start) {
			m = l
		}
		if l+1 < len(h.list) && h.list[l+1].Start.Before(h.list[m].Start) {
			m = l + 1
		}
		if m == i {
			return
		}
		h.list[i], h.list[m] = h.list[m], h.list[i]
		i = m
	}
}

// ObserveRecordOutcomes registers f to be called as ObserveRecords' are,
// but only with a record whose status changed (or a new one): a record
// updated in place, such as one noting its destination's delivery, is not
// passed again. f runs under the store's lock and must not block or call
// the store.
func (s *Store) ObserveRecordOutcomes(f func(model.Invocation)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.records.outcome
	if prev == nil {
		s.records.outcome = f
		return
	}
	s.records.outcome = func(r model.Invocation) { prev(r); f(r) }
}

// ObserveRecords registers f to be called with every record as it is
// stored (by Apply, on every server: the source of the event stream). f
// runs under the store's lock and must not block or call the store.
func (s *Store) ObserveRecords(f func(model.Invocation)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.records.observe
	if prev == nil {
		s.records.observe = f
		return
	}
	s.records.observe = func(r model.Invocation) { prev(r); f(r) }
}
