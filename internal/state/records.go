package state

import (
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"nimbus/internal/model"
)

// recordIndex keeps records per function, by ID, and per namespace in a
// timeList (recordtime.go), which finds a namespace's newest records
// without reading every one. Its methods need Store.mu held. A record's
// *storedRecord is the same in the three for as long as it is stored: an
// update overwrites it in place.
//
// A function's list is ordered by compareOldestFirst (start, then ID) at
// all times, whatever order its records arrived or were restored in, so
// that retention, which drops from its front, removes the same records
// on every server: one that replayed the log and one that restored a
// snapshot alike.
type recordIndex struct {
	byFunction map[string][]*storedRecord // by qualified name, oldest first
	byID       map[string]*storedRecord
	byTime     map[string]*timeList // by namespace
	// grown are the functions whose lists may hold more than the
	// retention cap: those a record was inserted into since the last
	// prune, and those a prune left over the cap (records of queued
	// events kept). Every other function is within the cap of sweptRet,
	// so prune looks at these only, not at every function (5-6 ms a
	// batch under the store's lock with 100,000 functions holding
	// records). A restore inserts every record, so after one every
	// function is here: pruning a function within the cap removes
	// nothing, so that server removes what one that replayed the log
	// does.
	grown map[string]bool
	// sweptMinute and sweptRet are the batch minute (Unix minutes) and
	// the retention of the last prune that looked at every function
	// (see prune); kept in snapshots, so that every server sweeps at the
	// same batches.
	sweptMinute int64
	sweptRet    model.Retention
	observe     func(model.Invocation) // called with each added record; must not block
	// outcome is called with each added record whose status differs
	// from the one of the record it replaces (or that is new); must not
	// block.
	outcome func(model.Invocation)
	// scratch is where records are packed (under Store.mu, for writing).
	scratch []byte
	// epoch counts the captures (all, under the store's lock for reading:
	// read and added to atomically): a record stored before the last one
	// may be read by it, and is replaced by a copy to be changed.
	epoch uint32
}

func newRecordIndex() recordIndex {
	return recordIndex{byFunction: map[string][]*storedRecord{}, byID: map[string]*storedRecord{}, byTime: map[string]*timeList{}, grown: map[string]bool{}}
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
	if ok && old.epoch != atomic.LoadUint32(&x.epoch) {
		old = x.copyShared(old)
	}
	if ok {
		// In place: byFunction keeps it where it was unless its start or
		// its function changes, byTime too unless it must move.
		move := !old.Start.Equal(r.Start) || old.Namespace != r.Namespace || old.Function != r.Function
		if move {
			x.unindexFunction(old)
		}
		again := x.reindexTime(old, &r)
		x.scratch = old.set(r, x.scratch)
		if move {
			x.indexFunction(old)
		}
		if again {
			x.indexTime(old)
		}
		return
	}
	stored := &storedRecord{epoch: atomic.LoadUint32(&x.epoch)}
	x.scratch = stored.set(r, x.scratch)
	x.byID[r.ID] = stored
	x.indexFunction(stored)
	x.indexTime(stored)
}

// copyShared puts a copy of r, a record a capture may hold, in its
// place in every index and returns it: the copy can be changed.
func (x *recordIndex) copyShared(r *storedRecord) *storedRecord {
	c := *r
	c.epoch = atomic.LoadUint32(&x.epoch)
	x.byID[c.ID] = &c
	list := x.byFunction[model.QualifiedName(r.Namespace, r.Function)]
	i, _ := slices.BinarySearchFunc(list, r, compareOldestFirst) // found: the list is in order
	list[i] = &c
	l := x.byTime[r.Namespace]
	l.entries[r.at-l.base].r = &c
	return &c
}

// compareOldestFirst orders records by start, then by ID: the order of a
// function's list and of a snapshot's records. IDs are unique, so it is
// a total order on the records stored.
func compareOldestFirst(a, b *storedRecord) int {
	if c := a.Start.Compare(b.Start); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// indexFunction inserts r in its function's list at its place by
// compareOldestFirst: nearly always the end, as records mostly arrive
// in start order.
func (x *recordIndex) indexFunction(r *storedRecord) {
	qn := model.QualifiedName(r.Namespace, r.Function)
	list := x.byFunction[qn]
	i := len(list)
	if i > 0 && compareOldestFirst(list[i-1], r) > 0 {
		i, _ = slices.BinarySearchFunc(list, r, compareOldestFirst)
	}
	x.byFunction[qn] = slices.Insert(list, i, r)
	x.grown[qn] = true
}

// unindexFunction removes r from its function's list (as r was indexed:
// call it before r changes), and drops the list once it is empty.
func (x *recordIndex) unindexFunction(r *storedRecord) {
	qn := model.QualifiedName(r.Namespace, r.Function)
	list := x.byFunction[qn]
	i, _ := slices.BinarySearchFunc(list, r, compareOldestFirst) // found: the list is in order
	if len(list) == 1 {
		delete(x.byFunction, qn)
		return
	}
	x.byFunction[qn] = slices.Delete(list, i, i+1)
}

// prune applies retention as of now and returns the IDs it removed,
// sorted. Of each function's records, it removes the oldest (by
// compareOldestFirst) beyond ret.PerFunction, then those that started
// before now less ret.MaxAge. A record for which keep reports true (an
// event still queued) stays, where it is in its list (and still counts
// toward ret.PerFunction). The records removed depend only on the
// records stored, ret, now, keep and the last sweep (sweptMinute,
// sweptRet): not on the order they came in.
//
// Ages are applied by a sweep over every function, in the first batch of
// each minute (of now) and whenever ret changes; the cap in between only
// to the functions that grew (see grown). So a record older than MaxAge
// may stay up to a minute of batches longer, alike on every server.
func (x *recordIndex) prune(ret model.Retention, now time.Time, keep func(id string) bool) []string {
	var removed []string
	minute := now.Unix() / 60
	sweep := minute != x.sweptMinute || ret != x.sweptRet
	fns := x.grown
	if sweep {
		x.sweptMinute, x.sweptRet = minute, ret
		fns = make(map[string]bool, len(x.byFunction))
		for fn := range x.byFunction {
			fns[fn] = true
		}
	}
	x.grown = map[string]bool{}
	cutoff := now.Add(-ret.MaxAge)
	for fn := range fns {
		list := x.byFunction[fn]
		drop := 0
		if ret.PerFunction > 0 && len(list) > ret.PerFunction {
			drop = len(list) - ret.PerFunction
		}
		for sweep && drop < len(list) && ret.MaxAge > 0 && list[drop].Start.Before(cutoff) {
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
		// The kept records precede list[drop:] as they did: still in order.
		x.byFunction[fn] = append(kept, list[drop:]...)
		if len(kept) > 0 && ret.PerFunction > 0 && len(x.byFunction[fn]) > ret.PerFunction {
			x.grown[fn] = true // over the cap still: look again next time
		}
	}
	slices.Sort(removed)
	return removed
}

// all returns every stored record, in no order, and starts a new epoch:
// the index no longer changes these records but copies one to change it
// (copyShared), so the caller may read them without the store's lock.
// It sorts them (Snapshot.order) once that lock is released (a sort of
// 1,000,000 records takes about a second). A copy of every record (136
// bytes each) held the lock ten times as long as these pointers.
func (x *recordIndex) all() []*storedRecord {
	out := make([]*storedRecord, 0, len(x.byID))
	for _, r := range x.byID {
		out = append(out, r)
	}
	atomic.AddUint32(&x.epoch, 1)
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
	return r.record(), nil
}

// RecordQuery selects invocation records. Zero fields match everything.
type RecordQuery struct {
	Namespace string
	Function  string
	Status    string
	Trigger   string    // "" for any; a kind ("source") also matches "source:NAME"
	Since     time.Time // records that started at or after it
	Before    time.Time // and before it (zero: no bound); a page of older records
	// BeforeID, with Before, also admits the records that started at
	// Before exactly whose ID is less: the page after one that ended
	// with the record (Before, BeforeID), in the newest-first order
	// (start, then ID, descending), so that records sharing a start are
	// neither skipped nor shown twice.
	BeforeID string
	Limit    int // 0 for no limit
}

// Matches reports whether r is one q asks for (q.Function aside).
func (q RecordQuery) Matches(r *model.Invocation) bool {
	return q.match(r.ID, r.Namespace, r.Trigger, r.Status, r.Start)
}

// match is Matches on a record's ID, namespace, trigger, status and
// start.
func (q RecordQuery) match(id, namespace, trigger, status string, start time.Time) bool {
	if q.Status != "" && status != q.Status || start.Before(q.Since) || q.Namespace != "" && namespace != q.Namespace {
		return false
	}
	if !q.Before.IsZero() && !start.Before(q.Before) && !(q.BeforeID != "" && start.Equal(q.Before) && id < q.BeforeID) {
		return false
	}
	if q.Trigger != "" && trigger != q.Trigger {
		kind, _, _ := strings.Cut(trigger, ":")
		return kind == q.Trigger
	}
	return true
}

// Records returns the records matching q, newest first: by start, and
// records that started at the same instant by ID, the greatest first.
// With q.Function, it reads the function's list from its end (the
// newest), until the page is full or records start before q.Since.
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
	if q.Function != "" {
		list := s.records.byFunction[model.QualifiedName(q.Namespace, q.Function)]
		for i := len(list) - 1; i >= 0 && !list[i].Start.Before(q.Since); i-- {
			if r := list[i]; q.match(r.ID, r.Namespace, r.Trigger, r.Status, r.Start) {
				found = append(found, list[i])
				if len(found) == q.Limit {
					break
				}
			}
		}
	} else {
		top := newestFirst{limit: q.Limit}
		take := func(r *storedRecord) {
			if q.Limit > 0 {
				top.offer(r)
			} else {
				found = append(found, r)
			}
		}
		if q.Namespace != "" {
			s.records.byTime[q.Namespace].scan(q, &top, take)
		} else {
			for _, l := range s.records.byTime {
				l.scan(q, &top, take)
			}
		}
		if q.Limit > 0 {
			found = top.list
		}
		slices.SortFunc(found, compareNewestFirst)
	}
	var out []model.Invocation
	if len(found) > 0 {
		out = make([]model.Invocation, len(found))
		for i, r := range found {
			out[i] = r.record()
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
