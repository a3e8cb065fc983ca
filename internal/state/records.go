package state

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"nimbus/internal/model"
)

// recordIndex keeps records per function in insertion order (oldest
// first), by ID, and per namespace in a timeList (recordtime.go), which
// finds a namespace's newest records without reading every one. Its
// methods need Store.mu held. A record's *storedRecord is the same in
// the three for as long as it is stored: an update overwrites it in place.
type recordIndex struct {
	byFunction map[string][]*storedRecord
	byID       map[string]*storedRecord
	byTime     map[string]*timeList   // by namespace
	observe    func(model.Invocation) // called with each added record; must not block
	// outcome is called with each added record whose status differs
	// from the one of the record it replaces (or that is new); must not
	// block.
	outcome func(model.Invocation)
}

func newRecordIndex() recordIndex {
	return recordIndex{byFunction: map[string][]*storedRecord{}, byID: map[string]*storedRecord{}, byTime: map[string]*timeList{}}
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
	if ok {
		// In place: byFunction keeps it where it was (under its old
		// function, should that change), byTime too unless it must move.
		again := x.reindexTime(old, &r)
		old.Invocation = r
		if again {
			x.indexTime(old)
		}
		return
	}
	stored := &storedRecord{Invocation: r}
	x.byID[r.ID] = stored
	qn := model.QualifiedName(r.Namespace, r.Function)
	x.byFunction[qn] = append(x.byFunction[qn], stored)
	x.indexTime(stored)
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
		var kept []*storedRecord
		for _, r := range list[:drop] {
			if keep(r.ID) {
				kept = append(kept, r)
				continue
			}
			delete(x.byID, r.ID)
			x.unindexTime(r)
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
			out = append(out, r.Invocation)
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
	return r.Invocation, nil
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

// Records returns the records matching q, newest first: by start, and
// records that started at the same instant by ID, the greatest first.
// Without q.Function, it reads a namespace's (or with no q.Namespace,
// each namespace's) records from the most recently indexed back, only
// until no earlier one can be in the answer: with a limit, about the
// page and the newer records the filters skip, not every record.
func (s *Store) Records(q RecordQuery) []model.Invocation {
	s.mu.RLock()
	defer s.mu.RUnlock()
	// Pointers are gathered, and only the page is copied: a namespace may
	// hold 100,000 records. With a limit, only the newest limit are kept
	// as they are found (a heap whose root is the oldest kept), not all
	// of them sorted.
	var found []*storedRecord
	top := newestFirst{limit: q.Limit}
	take := func(r *storedRecord) {
		if q.Limit > 0 {
			top.offer(r)
		} else {
			found = append(found, r)
		}
	}
	switch {
	case q.Function != "":
		for _, r := range s.records.byFunction[model.QualifiedName(q.Namespace, q.Function)] {
			if q.Matches(&r.Invocation) {
				take(r)
			}
		}
	case q.Namespace != "":
		s.records.byTime[q.Namespace].scan(q, &top, take)
	default:
		for _, l := range s.records.byTime {
			l.scan(q, &top, take)
		}
	}
	if q.Limit > 0 {
		found = top.list
	}
	slices.SortFunc(found, compareNewestFirst)
	var out []model.Invocation
	if len(found) > 0 {
		out = make([]model.Invocation, len(found))
		for i, r := range found {
			out[i] = r.Invocation
		}
	}
	return out
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
