package state

import (
	"math"
	"strings"
	"time"

	"nimbus/internal/model"
)

// storedRecord is a record as recordIndex holds it: the fields the
// indexes and queries read, and the rest packed (recordpack.go), its log
// tail without the lines frame names (recordframe.go). at is its
// position in its namespace's timeList (see timeList.base); it is kept
// current by that list and means nothing once the record is removed.
// epoch is the recordIndex's epoch when it was stored: one older than the
// index's is held by a capture as well, and is copied before it changes
// (see recordIndex.all).
type storedRecord struct {
	ID, Namespace, Function, Trigger, Status string
	Start                                    time.Time
	at                                       int
	frame                                    logFrame
	epoch                                    uint32
	rest                                     string
}

// set makes s hold r (whose Namespace is set), with scratch for packing.
func (s *storedRecord) set(r model.Invocation, scratch []byte) []byte {
	s.frame = elideFrame(&r)
	s.ID, s.Namespace, s.Function, s.Trigger, s.Status, s.Start = r.ID, r.Namespace, r.Function, r.Trigger, r.Status, r.Start
	scratch = packRest(scratch[:0], &r)
	s.rest = string(scratch)
	return scratch
}

// record is the record s holds as it was added, its log tail whole.
func (s *storedRecord) record() model.Invocation { return withFrame(s.unpacked(), s.frame) }

// unpacked is the record s holds, its log tail as stored.
func (s *storedRecord) unpacked() model.Invocation {
	r := model.Invocation{ID: s.ID, Namespace: s.Namespace, Function: s.Function, Trigger: s.Trigger, Status: s.Status, Start: s.Start}
	unpackRest(s.rest, &r)
	return r
}

// timeList is one namespace's records in the order they were indexed
// (append-only), each position with the greatest start (startKey) of
// every position up to and including it, so the maxima never decrease.
// Records are indexed when they end, so starts are not in order; but
// scanning from the end, once a position's maximum is older than what a
// query still wants, no earlier position holds anything it wants. A
// start far ahead of the others (a clock running ahead) raises every
// later maximum: until retention removes it, queries read back to it.
//
// A removed record leaves a tombstone (a nil r) whose maximum stays: a
// maximum that counts a removed record still bounds the live ones.
// Tombstones at the front are dropped at once (retention removes the
// oldest records, mostly), without touching any record; the list is
// compacted, and the maxima recomputed, once tombstones are more than half
// of it. Its methods need Store.mu as recordIndex's do.
type timeList struct {
	entries []timeEntry
	base    int // the position of entries[0]: a record's at less base is its index
	dead    int // tombstones in entries
}

type timeEntry struct {
	r   *storedRecord // nil: removed
	max int64         // startKey, the greatest of entries[0..this]
}

// startKey is t in Unix nanoseconds, clamped to the int64 range (a zero
// time is math.MinInt64): a non-decreasing function of t, so a < b
// between keys implies it between times.
func startKey(t time.Time) int64 {
	switch s := t.Unix(); {
	case s < math.MinInt64/1_000_000_000:
		return math.MinInt64
	case s >= math.MaxInt64/1_000_000_000:
		return math.MaxInt64
	}
	return t.UnixNano()
}

// indexTime appends r at the end of its namespace's list.
func (x *recordIndex) indexTime(r *storedRecord) {
	l := x.byTime[r.Namespace]
	if l == nil {
		l = &timeList{}
		x.byTime[r.Namespace] = l
	}
	m := startKey(r.Start)
	if n := len(l.entries); n > 0 {
		m = max(m, l.entries[n-1].max)
	}
	r.at = l.base + len(l.entries)
	l.entries = append(l.entries, timeEntry{r: r, max: m})
}

// unindexTime leaves a tombstone where r is in its namespace's list
// (r.Namespace as it was indexed), drops the tombstones at its front, and
// compacts it once tombstones are more than half of it, or drops the list
// once it holds none alive.
func (x *recordIndex) unindexTime(r *storedRecord) {
	l := x.byTime[r.Namespace]
	l.entries[r.at-l.base].r = nil
	l.dead++
	if l.dead == len(l.entries) {
		delete(x.byTime, r.Namespace)
		return
	}
	n := 0
	for l.entries[n].r == nil {
		n++
	}
	// The backing array's front is collected when an append reallocates.
	l.entries, l.base, l.dead = l.entries[n:], l.base+n, l.dead-n
	if 2*l.dead > len(l.entries) {
		l.compact()
	}
}

// reindexTime is called before r (indexed) is replaced by next, the new
// version of the same record: r keeps its position if its maximum still
// bounds next's start in the same namespace, else it moves to the end. It
// reports whether r must be indexed again (indexTime) once replaced.
func (x *recordIndex) reindexTime(r *storedRecord, next *model.Invocation) bool {
	if l := x.byTime[r.Namespace]; next.Namespace == r.Namespace && startKey(next.Start) <= l.entries[r.at-l.base].max {
		return false
	}
	x.unindexTime(r)
	return true
}

func (l *timeList) compact() {
	live := make([]timeEntry, 0, len(l.entries)-l.dead)
	m := int64(math.MinInt64)
	for _, e := range l.entries {
		if e.r == nil {
			continue
		}
		m = max(m, startKey(e.r.Start))
		e.r.at = len(live)
		live = append(live, timeEntry{r: e.r, max: m})
	}
	l.entries, l.base, l.dead = live, 0, 0
}

// scan passes to take, newest indexed first, the records of l that match
// q (q.Function aside), stopping where no earlier one can match q
// (q.Since) or enter top, once it is full. l may be nil.
func (l *timeList) scan(q RecordQuery, top *newestFirst, take func(*storedRecord)) {
	if l == nil {
		return
	}
	since := startKey(q.Since)
	for i := len(l.entries) - 1; i >= 0; i-- {
		e := &l.entries[i]
		if e.max < since || top.full() && e.max < startKey(top.list[0].Start) {
			return
		}
		if e.r != nil && q.match(e.r.ID, e.r.Namespace, e.r.Trigger, e.r.Status, e.r.Start) {
			take(e.r)
		}
	}
}

// newer reports whether a comes before b newest first: it started later,
// or at the same instant with a greater ID (request IDs are UUIDv7s, so
// the later one).
func newer(a, b *storedRecord) bool {
	if !a.Start.Equal(b.Start) {
		return a.Start.After(b.Start)
	}
	return a.ID > b.ID
}

// compareNewestFirst orders as newer does, for slices.SortFunc.
func compareNewestFirst(a, b *storedRecord) int {
	if c := b.Start.Compare(a.Start); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// newestFirst keeps the limit newest records offered (by newer): a
// min-heap whose root is the oldest kept.
type newestFirst struct {
	limit int
	list  []*storedRecord
}

// full reports whether h has a limit and holds that many records.
func (h *newestFirst) full() bool { return h.limit > 0 && len(h.list) == h.limit }

func (h *newestFirst) offer(r *storedRecord) {
	if len(h.list) < h.limit {
		h.list = append(h.list, r)
		for i := len(h.list) - 1; i > 0; { // sift up
			p := (i - 1) / 2
			if !newer(h.list[p], h.list[i]) {
				break
			}
			h.list[i], h.list[p] = h.list[p], h.list[i]
			i = p
		}
		return
	}
	if !newer(r, h.list[0]) {
		return // older than every record kept
	}
	h.list[0] = r
	for i := 0; ; { // sift down
		l, m := 2*i+1, i
		if l < len(h.list) && newer(h.list[m], h.list[l]) {
			m = l
		}
		if l+1 < len(h.list) && newer(h.list[m], h.list[l+1]) {
			m = l + 1
		}
		if m == i {
			return
		}
		h.list[i], h.list[m] = h.list[m], h.list[i]
		i = m
	}
}
