package state

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"nimbus/internal/model"
)

// The metric history: per function, what its invocations did and used,
// in three tiers of buckets (per minute, per hour, per day), derived in
// Apply from the records and throttle counts the FSM applies, so every
// server holds the same history, replicated through Raft (in the record
// batches themselves) and kept across restarts by snapshots (unlike
// /metrics, which is this process's counters since it started). It
// outlives the records: usage and cost are read from it, never from
// records.
//
// Counting and metering: an invocation counts once, in the minute, hour
// and day of its record's start, when its record first reaches a final
// status (success, failed, dead_letter): a record written again with a
// final status (a held record committed twice, an async record's
// destination update, a worker's result arriving after a leader change)
// finds the one stored under its ID already final, and counts nothing.
// The invocation ID is the key. What it meters is its final record's:
// billed milliseconds, billed ms × memory size (MB·ms, exact integers:
// GB-seconds are derived when read), CPU time from the cgroup, and the
// most memory used; an async event retried before it ended meters its
// last attempt, the one its record shows. This relies on the store
// still holding the earlier version: records removed by retention (days,
// or 1,000 per function) are assumed never to come back with a final
// status; an async event that is redriven leaves dead_letter and counts
// again when its new run ends (it ran again). Records restored from a
// snapshot count nothing (the history comes with the snapshot).
//
// Retention: each tier keeps its buckets for its retention
// (MetricsRetention, HourMetricsRetention, DayMetricsRetention unless a
// record batch's model.Retention says otherwise) before the latest
// batch time the FSM applied (RecordInvocations' Now, never the clock).
// What would fall before a tier's window is not counted in that tier.
// Memory: the recent buckets (the last 2 minutes, the current hour and
// day, and the last ones for 5 minutes more: openFor) are structs of
// about 250 bytes; older ones are
// sealed into byte chunks of 20-50 bytes a bucket (sealed.go). So a
// function invoked in every minute of the defaults' windows holds about
// 2,881 + 2,161 + 731 buckets in ~0.25 MB, one invoked once a day about
// 25 KB over two years; memory is that times the functions invoked
// within the windows, removed ones included until their buckets age
// out (bench/usage measures it).
const (
	MetricsRetention     = 48 * time.Hour
	HourMetricsRetention = 90 * 24 * time.Hour
	DayMetricsRetention  = 2 * 365 * 24 * time.Hour
)

const (
	// maxErrorTypes bounds the error types a bucket counts apart; the
	// errors of any further type count under OtherErrorType.
	maxErrorTypes = 8
	// OtherErrorType names the errors of the types beyond the first
	// maxErrorTypes of a bucket.
	OtherErrorType = "other"
	// UnknownErrorType names the errors whose record has no error type.
	UnknownErrorType = "unknown"
)

// The tiers, finest first, and each one's bucket width in minutes.
const (
	tierMinute = iota
	tierHour
	tierDay
	tiers
)

var tierWidth = [tiers]int64{1, 60, 24 * 60}

// tierNames name the tiers in errors and documentation.
var tierNames = [tiers]string{"minute", "hour", "day"}

// defaultKeep is each tier's retention in minutes by default.
var defaultKeep = [tiers]int64{int64(MetricsRetention / time.Minute), int64(HourMetricsRetention / time.Minute), int64(DayMetricsRetention / time.Minute)}

// bucket is one function's minute, hour or day. Counters of invocations
// are uint64 (a day of a busy function passes four billion); histogram
// counts are uint32 and stop at its maximum rather than wrap.
type bucket struct {
	start                                      int64 // Unix minutes, a multiple of the tier's width
	invocations, errors, throttles, coldStarts uint64
	durationUS                                 uint64 // the durations' sum, in whole µs (exact, so sums add alike in any order)
	lastStart                                  int64  // Unix nanoseconds
	billedMS, mbMS, cpuUS                      uint64
	provMBMS                                   uint64 // provisioned instances' time × memory
	maxMemoryMB                                uint32
	durations                                  [model.DurationBuckets]uint32
	errorTypes                                 []errorCount // at most maxErrorTypes+1
}

type errorCount struct {
	typ string
	n   uint64
}

func (b *bucket) addError(typ string) { b.addErrors(typ, 1) }

// addErrors counts n errors of type typ.
func (b *bucket) addErrors(typ string, n uint64) {
	if typ == "" {
		typ = UnknownErrorType
	}
	for i := range b.errorTypes {
		if b.errorTypes[i].typ == typ {
			b.errorTypes[i].n += n
			return
		}
	}
	if len(b.errorTypes) >= maxErrorTypes {
		typ = OtherErrorType
		for i := range b.errorTypes {
			if b.errorTypes[i].typ == typ {
				b.errorTypes[i].n += n
				return
			}
		}
	}
	b.errorTypes = append(b.errorTypes, errorCount{typ: typ, n: n})
}

// count counts the invocation of r in b; d is its duration, made sane.
func (b *bucket) count(r *model.Invocation, d float64) {
	b.invocations++
	if r.Status != model.StatusSuccess {
		b.errors++
		b.addError(r.ErrorType)
	}
	if r.ColdStart {
		b.coldStarts++
	}
	b.durationUS += uint64(math.Round(d * 1000))
	if i := durationBucket(d); b.durations[i] < math.MaxUint32 {
		b.durations[i]++
	}
	if ns := r.Start.UnixNano(); ns > b.lastStart {
		b.lastStart = ns
	}
	if r.BilledMS > 0 {
		b.billedMS += uint64(r.BilledMS)
		if r.MemoryMB > 0 {
			b.mbMS += uint64(r.BilledMS) * uint64(r.MemoryMB)
		}
	}
	if c := r.CPUMS; c > 0 && !math.IsInf(c, 0) {
		b.cpuUS += uint64(math.Round(c * 1000))
	}
	if r.MaxMemoryMB > 0 {
		b.maxMemoryMB = max(b.maxMemoryMB, uint32(min(r.MaxMemoryMB, math.MaxUint32)))
	}
}

// durationBucket is the index of the histogram bucket of d milliseconds.
func durationBucket(d float64) int {
	return sort.SearchFloat64s(model.DurationBoundsMS[:], d)
}

// funcHistory is one function's buckets per tier: the recent ones as
// structs, oldest first, the older ones sealed into chunks (sealed.go);
// and its lifetime totals (what /metrics reports as counters: they
// never go down while the function has history; start is unused).
type funcHistory struct {
	namespace, function string
	open                [tiers][]bucket
	sealed              [tiers][]chunk
	total               bucket
	// active: it is in metricHistory.active (it has open buckets).
	active bool
}

// bucket returns the bucket starting at minute m of tier t, made when
// missing.
func (h *funcHistory) bucket(t int, m int64) *bucket {
	bs := h.open[t]
	n := len(bs)
	if n > 0 && bs[n-1].start == m {
		return &bs[n-1]
	}
	if n == 0 || bs[n-1].start < m {
		h.open[t] = append(bs, bucket{start: m})
		return &h.open[t][n]
	}
	i := sort.Search(n, func(i int) bool { return bs[i].start >= m })
	if bs[i].start != m {
		bs = append(bs, bucket{})
		copy(bs[i+1:], bs[i:])
		bs[i] = bucket{start: m}
		h.open[t] = bs
	}
	return &bs[i]
}

func newFuncHistory(ns, fn string) *funcHistory {
	return &funcHistory{namespace: ns, function: fn}
}

func (h *funcHistory) empty() bool {
	for t := range tiers {
		if len(h.open[t]) > 0 || len(h.sealed[t]) > 0 {
			return false
		}
	}
	return true
}

// buckets is tier t's buckets from floor on as a snapshot stores them:
// one per start, in order (a late count's bucket added to its sealed
// one).
func (h *funcHistory) buckets(t int, floor int64) []bucket {
	byStart := map[int64]*metricSum{}
	var starts []int64
	h.each(t, floor, math.MaxInt64, func(b *bucket) {
		s := byStart[b.start]
		if s == nil {
			s = &metricSum{}
			byStart[b.start] = s
			starts = append(starts, b.start)
		}
		s.add(b)
	})
	slices.Sort(starts)
	out := make([]bucket, len(starts))
	for i, st := range starts {
		out[i] = byStart[st].bucket()
		out[i].start = st
	}
	return out
}

// metricHistory is the store's metric history. Its methods need Store.mu
// held (for writing, those that change it).
type metricHistory struct {
	byFunction map[string]*funcHistory // by qualified name
	// byNamespace adds each namespace's functions up (function ""), so
	// that a namespace's totals read one history, not every function's.
	byNamespace map[string]*funcHistory
	// now is the latest batch time applied, in Unix minutes (0: none
	// yet); keep is each tier's retention in minutes: a tier's buckets
	// that start before now-keep are gone.
	now  int64
	keep [tiers]int64
	// floor is each tier's window start (Unix minutes; MinInt64 before
	// the first batch): readers never see a bucket before it, whether or
	// not the hourly pass has dropped it yet.
	floor [tiers]int64
	// active are the histories with open buckets, which the pass each
	// minute seals as they age.
	active map[*funcHistory]struct{}
	// provisioned are the provisioned functions as of provisionedAt (Unix
	// ns), the latest batch time: their instances are metered from then
	// to the next batch time (provisioned.go).
	provisioned   []model.ProvisionedSample
	provisionedAt int64
}

func newMetricHistory() metricHistory {
	x := metricHistory{byFunction: map[string]*funcHistory{}, byNamespace: map[string]*funcHistory{}, keep: defaultKeep,
		active: map[*funcHistory]struct{}{}}
	for t := range x.floor {
		x.floor[t] = math.MinInt64
	}
	return x
}

func unixMinute(t time.Time) int64 {
	s := t.Unix()
	m := s / 60
	if s < 0 && s%60 != 0 {
		m--
	}
	return m
}

// floorTo is m rounded down to a multiple of w.
func floorTo(m, w int64) int64 {
	r := m % w
	if r < 0 {
		r += w
	}
	return m - r
}

// sealAll seals what aged in every tier of h and keeps the active set.
func (x *metricHistory) sealAll(h *funcHistory) {
	open := false
	for t := range tiers {
		h.seal(t, x.now)
		open = open || len(h.open[t]) > 0
	}
	if !open {
		delete(x.active, h)
		h.active = false
	}
}

// opened notes that h has an open bucket.
func (x *metricHistory) opened(h *funcHistory) {
	if !h.active {
		h.active = true
		x.active[h] = struct{}{}
	}
}

// inWindow reports whether tier t still keeps a bucket starting at m.
func (x *metricHistory) inWindow(t int, m int64) bool {
	return x.now == 0 || m >= floorTo(x.now-x.keep[t], tierWidth[t])
}

// histories returns the history of function fn of namespace ns and its
// namespace's, made when missing.
func (x *metricHistory) histories(ns, fn string) [2]*funcHistory {
	h := x.history(ns, fn)
	a := x.byNamespace[h.namespace]
	if a == nil {
		a = newFuncHistory(h.namespace, "")
		x.byNamespace[h.namespace] = a
	}
	x.opened(h)
	x.opened(a)
	return [2]*funcHistory{h, a}
}

// history returns the history of function fn of namespace ns, made when
// missing.
func (x *metricHistory) history(ns, fn string) *funcHistory {
	ns = model.NamespaceOf(ns)
	qn := model.QualifiedName(ns, fn)
	h := x.byFunction[qn]
	if h == nil {
		h = newFuncHistory(ns, fn)
		x.byFunction[qn] = h
	}
	return h
}

// count counts (and meters) the invocation of r, a record that has just
// reached a final status, in each tier that still keeps its start.
func (x *metricHistory) count(r *model.Invocation) {
	if r.Start.IsZero() {
		return
	}
	m := unixMinute(r.Start)
	if !x.inWindow(tierDay, floorTo(m, tierWidth[tierDay])) {
		return
	}
	d := r.DurationMS
	if d < 0 || math.IsNaN(d) || math.IsInf(d, 0) {
		d = 0
	}
	hs := x.histories(r.Namespace, r.Function)
	for _, h := range hs {
		for t := range tiers {
			if start := floorTo(m, tierWidth[t]); x.inWindow(t, start) {
				h.bucket(t, start).count(r, d)
			}
		}
	}
	hs[0].total.count(r, d)
}

// throttled counts the throttles of t.
func (x *metricHistory) throttled(c model.ThrottleCount) {
	if c.Count <= 0 || c.Minute.IsZero() {
		return
	}
	m := unixMinute(c.Minute)
	if !x.inWindow(tierDay, floorTo(m, tierWidth[tierDay])) {
		return
	}
	hs := x.histories(c.Namespace, c.Function)
	for _, h := range hs {
		for t := range tiers {
			if start := floorTo(m, tierWidth[t]); x.inWindow(t, start) {
				h.bucket(t, start).throttles += uint64(c.Count)
			}
		}
	}
	hs[0].total.throttles += uint64(c.Count)
}

// setKeep takes the tiers' retentions a record batch carries (zero: the
// default).
func (x *metricHistory) setKeep(ret model.Retention) {
	for t, d := range [tiers]time.Duration{ret.MetricMinutes, ret.MetricHours, ret.MetricDays} {
		x.keep[t] = defaultKeep[t]
		if d > 0 {
			w := tierWidth[t]
			x.keep[t] = max(floorTo(int64(d/time.Minute)+w-1, w), w) // whole buckets
		}
	}
}

// advance moves the window to a batch time and drops the buckets that
// left it.
func (x *metricHistory) advance(now time.Time) {
	if now.IsZero() {
		return
	}
	m := unixMinute(now)
	if m <= x.now {
		return
	}
	was := x.now
	x.now = m
	for t := range tiers {
		x.floor[t] = floorTo(x.now-x.keep[t], tierWidth[t])
	}
	// Each minute, the histories with open buckets seal those that
	// aged; each hour, every history drops what left the windows (the
	// floors hide it from readers meanwhile).
	for h := range x.active {
		x.sealAll(h)
	}
	if floorTo(was, tierWidth[tierHour]) == floorTo(m, tierWidth[tierHour]) {
		return
	}
	for _, byName := range []map[string]*funcHistory{x.byFunction, x.byNamespace} {
		for name, h := range byName {
			for t := range tiers {
				h.dropBefore(t, x.floor[t])
			}
			if h.empty() {
				delete(byName, name)
				delete(x.active, h)
			}
		}
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

// capturedHistories are the histories of a capture: copies a snapshot
// converts after the store's lock is released (see Store.CaptureUnordered).
type capturedHistories struct {
	hs    []*funcHistory
	floor [tiers]int64
}

// historiesLocked copies every function's and namespace's history: the
// open buckets (Apply counts into them in place) and the list of sealed
// chunks, whose bytes so far never change (a chunk only grows past
// them). A fraction of the conversion snapshot does. Needs Store.mu.
func (x *metricHistory) historiesLocked() capturedHistories {
	c := capturedHistories{hs: make([]*funcHistory, 0, len(x.byFunction)+len(x.byNamespace)), floor: x.floor}
	for _, byName := range []map[string]*funcHistory{x.byFunction, x.byNamespace} {
		for _, h := range byName {
			c.hs = append(c.hs, h.clone())
		}
	}
	return c
}

// clone copies h as historiesLocked describes.
func (h *funcHistory) clone() *funcHistory {
	c := &funcHistory{namespace: h.namespace, function: h.function, total: h.total}
	c.total.errorTypes = slices.Clone(h.total.errorTypes)
	for t := range tiers {
		c.sealed[t] = slices.Clone(h.sealed[t])
		c.open[t] = slices.Clone(h.open[t])
		for i := range c.open[t] { // Apply counts errors into these in place
			c.open[t][i].errorTypes = slices.Clone(c.open[t][i].errorTypes)
		}
	}
	return c
}

// snapshot converts captured histories to a snapshot's, unsorted.
func (c capturedHistories) snapshot() []model.MetricHistory {
	out := make([]model.MetricHistory, 0, len(c.hs))
	for _, h := range c.hs {
		mh := model.MetricHistory{Namespace: h.namespace, Function: h.function,
			Minutes: snapshotBuckets(h.buckets(tierMinute, c.floor[tierMinute])), Hours: snapshotBuckets(h.buckets(tierHour, c.floor[tierHour])),
			Days: snapshotBuckets(h.buckets(tierDay, c.floor[tierDay]))}
		if h.function != "" {
			mh.Total = &snapshotBuckets([]bucket{h.total})[0]
		}
		out = append(out, mh)
	}
	return out
}

// sortMetricHistory sorts a snapshot's metric history by qualified name,
// each name made once (not twice per comparison).
func sortMetricHistory(hs []model.MetricHistory) {
	keys := make([]string, len(hs))
	for i, h := range hs {
		keys[i] = model.QualifiedName(h.Namespace, h.Function)
	}
	sort.Sort(historyByName{keys, hs})
}

type historyByName struct {
	keys []string
	hs   []model.MetricHistory
}

func (b historyByName) Len() int           { return len(b.keys) }
func (b historyByName) Less(i, j int) bool { return b.keys[i] < b.keys[j] }
func (b historyByName) Swap(i, j int) {
	b.keys[i], b.keys[j] = b.keys[j], b.keys[i]
	b.hs[i], b.hs[j] = b.hs[j], b.hs[i]
}

func snapshotBuckets(bs []bucket) []model.MetricMinute {
	if len(bs) == 0 {
		return nil
	}
	out := make([]model.MetricMinute, len(bs))
	for i := range bs {
		b := &bs[i]
		mm := model.MetricMinute{Minute: time.Unix(b.start*60, 0).UTC(), Invocations: int64(b.invocations), Errors: int64(b.errors),
			Throttles: int64(b.throttles), ColdStarts: int64(b.coldStarts), DurationSumMS: float64(b.durationUS) / 1000,
			BilledMS: int64(b.billedMS), MBMS: int64(b.mbMS), CPUUS: int64(b.cpuUS), MaxMemoryMB: int64(b.maxMemoryMB),
			ProvisionedMBMS: int64(b.provMBMS)}
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
		out[i] = mm
	}
	return out
}

// restoreMetrics rebuilds a history from a snapshot's: its buckets, the
// batch time it had reached and its tiers' retentions (nil: the
// defaults).
func restoreMetrics(hs []model.MetricHistory, now time.Time, keep []time.Duration) metricHistory {
	x := newMetricHistory()
	if !now.IsZero() {
		x.now = unixMinute(now)
	}
	for t := range min(len(keep), int(tiers)) {
		if keep[t] > 0 {
			x.keep[t] = int64(keep[t] / time.Minute)
		}
	}
	if x.now != 0 {
		for t := range tiers {
			x.floor[t] = floorTo(x.now-x.keep[t], tierWidth[t])
		}
	}
	sums := false
	for _, mh := range hs {
		ns := model.NamespaceOf(mh.Namespace)
		h := newFuncHistory(ns, mh.Function)
		for t, ms := range [tiers][]model.MetricMinute{mh.Minutes, mh.Hours, mh.Days} {
			h.open[t] = restoreBuckets(ms)
			h.dropBefore(t, x.floor[t])
		}
		x.opened(h)
		x.sealAll(h)
		if mh.Function == "" {
			x.byNamespace[ns] = h
			sums = true
			continue
		}
		if mh.Total != nil {
			h.total = restoreBuckets([]model.MetricMinute{*mh.Total})[0]
		} else {
			// A snapshot from before the totals: the days are what is left.
			var sum metricSum
			h.each(tierDay, x.floor[tierDay], math.MaxInt64, sum.add)
			h.total = sum.bucket()
		}
		x.byFunction[model.QualifiedName(ns, mh.Function)] = h
	}
	if !sums {
		x.sumNamespaces() // a snapshot from before the namespaces' sums
	}
	return x
}

// sumNamespaces makes each namespace's sums from its functions'.
func (x *metricHistory) sumNamespaces() {
	type key struct {
		ns    string
		tier  int
		start int64
	}
	sums := map[key]*metricSum{}
	for _, h := range x.byFunction {
		for t := range tiers {
			h.each(t, x.floor[t], math.MaxInt64, func(b *bucket) {
				k := key{h.namespace, t, b.start}
				if sums[k] == nil {
					sums[k] = &metricSum{}
				}
				sums[k].add(b)
			})
		}
	}
	keys := slices.SortedFunc(maps.Keys(sums), func(a, b key) int {
		return cmp.Or(cmp.Compare(a.ns, b.ns), cmp.Compare(a.tier, b.tier), cmp.Compare(a.start, b.start))
	})
	for _, k := range keys {
		a := x.byNamespace[k.ns]
		if a == nil {
			a = newFuncHistory(k.ns, "")
			x.byNamespace[k.ns] = a
		}
		b := sums[k].bucket()
		b.start = k.start
		a.open[k.tier] = append(a.open[k.tier], b)
	}
	for _, a := range x.byNamespace {
		x.opened(a)
		x.sealAll(a)
	}
}

func restoreBuckets(ms []model.MetricMinute) []bucket {
	if len(ms) == 0 {
		return nil
	}
	bs := make([]bucket, 0, len(ms))
	for _, mm := range ms {
		b := bucket{start: unixMinute(mm.Minute), invocations: uint64(mm.Invocations), errors: uint64(mm.Errors),
			throttles: uint64(mm.Throttles), coldStarts: uint64(mm.ColdStarts), durationUS: uint64(math.Round(max(mm.DurationSumMS, 0) * 1000)),
			billedMS: uint64(mm.BilledMS), mbMS: uint64(mm.MBMS), cpuUS: uint64(mm.CPUUS), maxMemoryMB: uint32(mm.MaxMemoryMB),
			provMBMS: uint64(mm.ProvisionedMBMS)}
		if !mm.LastStart.IsZero() {
			b.lastStart = mm.LastStart.UnixNano()
		}
		for _, e := range mm.ErrorTypes {
			b.errorTypes = append(b.errorTypes, errorCount{typ: e.Type, n: uint64(e.Count)})
		}
		for j, n := range mm.Durations {
			if j < len(b.durations) {
				b.durations[j] = uint32(min(n, math.MaxUint32))
			}
		}
		bs = append(bs, b)
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].start < bs[j].start })
	return bs
}

// metricsKeepLocked is the tiers' retentions as a snapshot stores them.
func (s *Store) metricsKeepLocked() []time.Duration {
	out := make([]time.Duration, tiers)
	for t := range out {
		out[t] = time.Duration(s.metrics.keep[t]) * time.Minute
	}
	return out
}
