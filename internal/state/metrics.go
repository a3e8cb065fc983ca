package state

import (
	"math"
	"sort"
	"time"

	"nimbus/internal/model"
)

// The metric history: per function, per minute, what its invocations
// did, derived in Apply from the records and throttle counts the FSM
// applies, so every server holds the same history, replicated through
// Raft and kept across restarts by snapshots (unlike /metrics, which is
// this process's counters since it started).
//
// Counting: an invocation counts once, in the minute of its record's
// start, when its record first reaches a final status (success, failed,
// dead_letter): a record written again with a final status (a held
// record committed twice, an async record's destination update) finds
// the one stored under its ID already final, and counts nothing. This
// relies on the store still holding the earlier version: records
// removed by retention (days, or 1,000 per function) are assumed never
// to come back with a final status; an async event that is redriven
// leaves dead_letter and counts again when its new run ends (it ran
// again). Records restored from a snapshot count nothing (the history
// comes with the snapshot).
//
// Retention: minutes are kept for MetricsRetention before the latest
// batch time the FSM applied (RecordInvocations' Now, never the clock),
// so a function's history holds at most MetricsRetention/time.Minute+1
// minutes (2,881 of about 200 bytes: ~0.6 MB for a function invoked
// every minute of two days; memory is that times the functions invoked
// within the window, removed ones included until their minutes age
// out). What would fall before the window is not counted.
const MetricsRetention = 48 * time.Hour

const (
	// maxErrorTypes bounds the error types a minute counts apart; the
	// errors of any further type count under OtherErrorType.
	maxErrorTypes = 8
	// OtherErrorType names the errors of the types beyond the first
	// maxErrorTypes of a minute.
	OtherErrorType = "other"
	// UnknownErrorType names the errors whose record has no error type.
	UnknownErrorType = "unknown"
	retentionMinutes = int64(MetricsRetention / time.Minute)
)

// minuteBucket is one function's minute. Counters are uint32: four
// billion invocations of one function in one minute is beyond reach.
type minuteBucket struct {
	minute                                     int64 // Unix minutes
	invocations, errors, throttles, coldStarts uint32
	durationSum                                float64
	lastStart                                  int64 // Unix nanoseconds
	durations                                  [model.DurationBuckets]uint32
	errorTypes                                 []errorCount // at most maxErrorTypes+1
}

type errorCount struct {
	typ string
	n   uint32
}

func (b *minuteBucket) addError(typ string) {
	if typ == "" {
		typ = UnknownErrorType
	}
	for i := range b.errorTypes {
		if b.errorTypes[i].typ == typ {
			b.errorTypes[i].n++
			return
		}
	}
	if len(b.errorTypes) >= maxErrorTypes {
		typ = OtherErrorType
		for i := range b.errorTypes {
			if b.errorTypes[i].typ == typ {
				b.errorTypes[i].n++
				return
			}
		}
	}
	b.errorTypes = append(b.errorTypes, errorCount{typ: typ, n: 1})
}

// durationBucket is the index of the histogram bucket of d milliseconds.
func durationBucket(d float64) int {
	return sort.SearchFloat64s(model.DurationBoundsMS[:], d)
}

// funcHistory is one function's minutes, oldest first.
type funcHistory struct {
	namespace, function string
	minutes             []minuteBucket
}

// bucket returns the minute m of h, made when missing.
func (h *funcHistory) bucket(m int64) *minuteBucket {
	n := len(h.minutes)
	if n > 0 && h.minutes[n-1].minute == m {
		return &h.minutes[n-1]
	}
	if n == 0 || h.minutes[n-1].minute < m {
		h.minutes = append(h.minutes, minuteBucket{minute: m})
		return &h.minutes[n]
	}
	i := sort.Search(n, func(i int) bool { return h.minutes[i].minute >= m })
	if h.minutes[i].minute != m {
		h.minutes = append(h.minutes, minuteBucket{})
		copy(h.minutes[i+1:], h.minutes[i:])
		h.minutes[i] = minuteBucket{minute: m}
	}
	return &h.minutes[i]
}

// metricHistory is the store's metric history. Its methods need Store.mu
// held (for writing, those that change it).
type metricHistory struct {
	byFunction map[string]*funcHistory // by qualified name
	// now is the latest batch time applied, in Unix minutes (0: none
	// yet); minutes before now-retentionMinutes are gone.
	now int64
}

func newMetricHistory() metricHistory {
	return metricHistory{byFunction: map[string]*funcHistory{}}
}

func unixMinute(t time.Time) int64 {
	s := t.Unix()
	m := s / 60
	if s < 0 && s%60 != 0 {
		m--
	}
	return m
}

// history returns the history of function fn of namespace ns, made when
// missing, or nil when minute m falls before the window.
func (x *metricHistory) history(ns, fn string, m int64) *funcHistory {
	if x.now != 0 && m < x.now-retentionMinutes {
		return nil
	}
	ns = model.NamespaceOf(ns)
	qn := model.QualifiedName(ns, fn)
	h := x.byFunction[qn]
	if h == nil {
		h = &funcHistory{namespace: ns, function: fn}
		x.byFunction[qn] = h
	}
	return h
}

// count counts the invocation of r, a record that has just reached a
// final status.
func (x *metricHistory) count(r *model.Invocation) {
	if r.Start.IsZero() {
		return
	}
	m := unixMinute(r.Start)
	h := x.history(r.Namespace, r.Function, m)
	if h == nil {
		return
	}
	b := h.bucket(m)
	b.invocations++
	if r.Status != model.StatusSuccess {
		b.errors++
		b.addError(r.ErrorType)
	}
	if r.ColdStart {
		b.coldStarts++
	}
	d := r.DurationMS
	if d < 0 || math.IsNaN(d) || math.IsInf(d, 0) {
		d = 0
	}
	b.durationSum += d
	b.durations[durationBucket(d)]++
	if ns := r.Start.UnixNano(); ns > b.lastStart {
		b.lastStart = ns
	}
}

// throttled counts the throttles of t.
func (x *metricHistory) throttled(t model.ThrottleCount) {
	if t.Count <= 0 || t.Minute.IsZero() {
		return
	}
	m := unixMinute(t.Minute)
	if h := x.history(t.Namespace, t.Function, m); h != nil {
		h.bucket(m).throttles += uint32(min(t.Count, math.MaxUint32))
	}
}

// advance moves the window to a batch time and drops the minutes that
// left it.
func (x *metricHistory) advance(now time.Time) {
	if now.IsZero() {
		return
	}
	m := unixMinute(now)
	if m <= x.now {
		return
	}
	x.now = m
	first := m - retentionMinutes
	for qn, h := range x.byFunction {
		if len(h.minutes) == 0 || h.minutes[0].minute >= first {
			continue
		}
		i := sort.Search(len(h.minutes), func(i int) bool { return h.minutes[i].minute >= first })
		if i == len(h.minutes) {
			delete(x.byFunction, qn)
			continue
		}
		// Copy, so the dropped minutes' array can be collected.
		h.minutes = append([]minuteBucket(nil), h.minutes[i:]...)
	}
}

// finalStatus reports whether an invocation with status s has ended.
func finalStatus(s string) bool {
	return s == model.StatusSuccess || s == model.StatusFailed || s == model.StatusDeadLetter
}

// addRecordLocked stores a record and counts its invocation in the
// metric history when it reaches a final status now. Every record that
// Apply stores goes through it. Needs s.mu held for writing.
func (s *Store) addRecordLocked(r model.Invocation) {
	if finalStatus(r.Status) {
		if old, ok := s.records.byID[r.ID]; !ok || !finalStatus(old.Status) {
			s.metrics.count(&r)
		}
	}
	s.records.add(r)
}

// snapshotMetricsLocked is the history as a snapshot stores it, sorted
// by function. Needs s.mu.
func (s *Store) snapshotMetricsLocked() []model.MetricHistory {
	out := make([]model.MetricHistory, 0, len(s.metrics.byFunction))
	for _, h := range s.metrics.byFunction {
		mh := model.MetricHistory{Namespace: h.namespace, Function: h.function, Minutes: make([]model.MetricMinute, len(h.minutes))}
		for i := range h.minutes {
			b := &h.minutes[i]
			mm := model.MetricMinute{Minute: time.Unix(b.minute*60, 0).UTC(), Invocations: int64(b.invocations), Errors: int64(b.errors),
				Throttles: int64(b.throttles), ColdStarts: int64(b.coldStarts), DurationSumMS: b.durationSum}
			if b.lastStart != 0 {
				mm.LastStart = time.Unix(0, b.lastStart).UTC()
			}
			for _, e := range b.errorTypes {
				mm.ErrorTypes = append(mm.ErrorTypes, model.ErrorTypeCount{Type: e.typ, Count: int64(e.n)})
			}
			last := len(b.durations)
			for last > 0 && b.durations[last-1] == 0 {
				last--
			}
			if last > 0 {
				mm.Durations = make([]int64, last)
				for j := range last {
					mm.Durations[j] = int64(b.durations[j])
				}
			}
			mh.Minutes[i] = mm
		}
		out = append(out, mh)
	}
	sort.Slice(out, func(i, j int) bool {
		return model.QualifiedName(out[i].Namespace, out[i].Function) < model.QualifiedName(out[j].Namespace, out[j].Function)
	})
	return out
}

// restoreMetrics rebuilds a history from a snapshot's.
func restoreMetrics(hs []model.MetricHistory, now time.Time) metricHistory {
	x := newMetricHistory()
	if !now.IsZero() {
		x.now = unixMinute(now)
	}
	for _, mh := range hs {
		ns := model.NamespaceOf(mh.Namespace)
		h := &funcHistory{namespace: ns, function: mh.Function, minutes: make([]minuteBucket, 0, len(mh.Minutes))}
		for _, mm := range mh.Minutes {
			b := minuteBucket{minute: unixMinute(mm.Minute), invocations: uint32(mm.Invocations), errors: uint32(mm.Errors),
				throttles: uint32(mm.Throttles), coldStarts: uint32(mm.ColdStarts), durationSum: mm.DurationSumMS}
			if !mm.LastStart.IsZero() {
				b.lastStart = mm.LastStart.UnixNano()
			}
			for _, e := range mm.ErrorTypes {
				b.errorTypes = append(b.errorTypes, errorCount{typ: e.Type, n: uint32(e.Count)})
			}
			for j, n := range mm.Durations {
				if j < len(b.durations) {
					b.durations[j] = uint32(n)
				}
			}
			h.minutes = append(h.minutes, b)
		}
		sort.Slice(h.minutes, func(i, j int) bool { return h.minutes[i].minute < h.minutes[j].minute })
		x.byFunction[model.QualifiedName(ns, mh.Function)] = h
	}
	return x
}
