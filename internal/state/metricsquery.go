package state

import (
	"maps"
	"math"
	"slices"
	"sort"
	"time"

	"nimbus/internal/model"
)

// AllNamespaces, as a namespace, selects every namespace in the metric
// queries.
const AllNamespaces = "*"

// metricSum adds buckets up.
type metricSum struct {
	invocations, errors, throttles, coldStarts int64
	durationUS                                 uint64
	lastStart                                  int64
	billedMS, mbMS, cpuUS, provMBMS            uint64
	maxMemoryMB                                uint32
	durations                                  [model.DurationBuckets]uint64
	errorTypes                                 map[string]int64
}

func (a *metricSum) add(b *bucket) {
	a.invocations += int64(b.invocations)
	a.errors += int64(b.errors)
	a.throttles += int64(b.throttles)
	a.coldStarts += int64(b.coldStarts)
	a.durationUS += b.durationUS
	a.lastStart = max(a.lastStart, b.lastStart)
	a.billedMS += b.billedMS
	a.mbMS += b.mbMS
	a.cpuUS += b.cpuUS
	a.provMBMS += b.provMBMS
	a.maxMemoryMB = max(a.maxMemoryMB, b.maxMemoryMB)
	if b.invocations > 0 {
		for i, n := range b.durations {
			a.durations[i] += uint64(n)
		}
	}
	if len(b.errorTypes) > 0 && a.errorTypes == nil {
		a.errorTypes = map[string]int64{}
	}
	for _, e := range b.errorTypes {
		a.errorTypes[e.typ] += int64(e.n)
	}
}

// bucket is the sum as one bucket (error types beyond a bucket's bound
// go to OtherErrorType).
func (a *metricSum) bucket() bucket {
	b := bucket{invocations: uint64(a.invocations), errors: uint64(a.errors), throttles: uint64(a.throttles),
		coldStarts: uint64(a.coldStarts), durationUS: a.durationUS, lastStart: a.lastStart, billedMS: a.billedMS,
		mbMS: a.mbMS, cpuUS: a.cpuUS, provMBMS: a.provMBMS, maxMemoryMB: a.maxMemoryMB}
	for i, n := range a.durations {
		b.durations[i] = uint32(min(n, math.MaxUint32))
	}
	for _, typ := range slices.Sorted(maps.Keys(a.errorTypes)) {
		b.addErrors(typ, uint64(a.errorTypes[typ]))
	}
	return b
}

func (a *metricSum) point(t time.Time) model.MetricPoint {
	p := model.MetricPoint{Time: t, Invocations: a.invocations, Errors: a.errors, ErrorsByType: a.errorTypes,
		Throttles: a.throttles, ColdStarts: a.coldStarts, BilledMS: int64(a.billedMS),
		GBSeconds: float64(a.mbMS) / model.MBMSPerGBSecond, CPUSeconds: float64(a.cpuUS) / 1e6, MaxMemoryMB: int64(a.maxMemoryMB),
		ProvisionedGBSeconds: float64(a.provMBMS) / model.MBMSPerGBSecond}
	if a.invocations > 0 {
		p.P50MS = quantileMS(&a.durations, 0.50)
		p.P90MS = quantileMS(&a.durations, 0.90)
		p.P99MS = quantileMS(&a.durations, 0.99)
		p.AvgMS = float64(a.durationUS) / 1000 / float64(a.invocations)
	}
	return p
}

func (a *metricSum) usage() model.UsageRow {
	p := a.point(time.Time{})
	return model.UsageRow{Requests: p.Invocations, Errors: p.Errors, ErrorsByType: p.ErrorsByType, Throttles: p.Throttles,
		ColdStarts: p.ColdStarts, BilledMS: p.BilledMS, MBMS: int64(a.mbMS), GBSeconds: p.GBSeconds, CPUSeconds: p.CPUSeconds,
		MaxMemoryMB: p.MaxMemoryMB, P50MS: p.P50MS, P90MS: p.P90MS, P99MS: p.P99MS, AvgMS: p.AvgMS,
		ProvisionedMBMS: int64(a.provMBMS), ProvisionedGBSeconds: p.ProvisionedGBSeconds}
}

// quantileMS estimates the q quantile (0 < q <= 1) of the durations a
// histogram counts: it finds the bucket that holds the q·n-th duration
// and interpolates linearly between the bucket's bounds (0 below the
// first), so the estimate is within the bucket's width of the true one.
// Durations beyond the last bound are taken as the last bound. 0 for an
// empty histogram.
func quantileMS(h *[model.DurationBuckets]uint64, q float64) float64 {
	var total uint64
	for _, n := range h {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var seen uint64
	for i, n := range h {
		if n == 0 {
			continue
		}
		if float64(seen+n) >= rank {
			if i == len(model.DurationBoundsMS) {
				return model.DurationBoundsMS[i-1]
			}
			lo := 0.0
			if i > 0 {
				lo = model.DurationBoundsMS[i-1]
			}
			hi := model.DurationBoundsMS[i]
			return lo + (hi-lo)*(rank-float64(seen))/float64(n)
		}
		seen += n
	}
	return model.DurationBoundsMS[len(model.DurationBoundsMS)-1]
}

// sumsLocked lists the namespaces' sums: namespace ns's, or every one's
// (AllNamespaces). Needs s.mu.
func (s *Store) sumsLocked(ns string) []*funcHistory {
	if ns != AllNamespaces {
		if h := s.metrics.byNamespace[model.NamespaceOf(ns)]; h != nil {
			return []*funcHistory{h}
		}
		return nil
	}
	return slices.Collect(maps.Values(s.metrics.byNamespace))
}

// historiesLocked lists the histories of function fn of namespace ns
// ("" for every function of it; ns AllNamespaces for every namespace).
// Needs s.mu.
func (s *Store) historiesLocked(ns, fn string) []*funcHistory {
	if ns != AllNamespaces && fn != "" {
		if h := s.metrics.byFunction[model.QualifiedName(ns, fn)]; h != nil {
			return []*funcHistory{h}
		}
		return nil
	}
	var out []*funcHistory
	for _, h := range s.metrics.byFunction {
		if (ns == AllNamespaces || h.namespace == model.NamespaceOf(ns)) && (fn == "" || h.function == fn) {
			out = append(out, h)
		}
	}
	return out
}

// span is a run of one tier's buckets: those starting in [first, end)
// (Unix minutes).
type span struct {
	tier       int
	first, end int64
}

// seriesTier picks the tier a series of steps of stepMin minutes from
// minute first reads: the finest whose buckets a step holds whole and
// that still keeps first; when none keeps it, the coarsest a step holds
// whole (its older steps are then empty).
func (x *metricHistory) seriesTier(first, stepMin int64) int {
	best := tierMinute
	for t := range tiers {
		w := tierWidth[t]
		if stepMin%w != 0 || floorTo(first, w) != first {
			continue
		}
		if x.inWindow(t, first) {
			return t
		}
		best = t
	}
	return best
}

// TierFor names the finest tier of the metric history that still holds
// the bucket starting at from, and that tier's width: the least step a
// series from there can take ("" and 0 when even days are gone).
func (s *Store) TierFor(from time.Time) (string, time.Duration) {
	m := unixMinute(from)
	s.mu.RLock()
	defer s.mu.RUnlock()
	for t := range tiers {
		if s.metrics.inWindow(t, floorTo(m, tierWidth[t])) {
			return tierNames[t], time.Duration(tierWidth[t]) * time.Minute
		}
	}
	return "", 0
}

// MetricRetention is how long the metric history keeps its minutes,
// hours and days.
func (s *Store) MetricRetention() (minutes, hours, days time.Duration) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k := s.metricsKeepLocked()
	return k[0], k[1], k[2]
}

// MetricSeries adds up the metric history of function fn of namespace ns
// ("" for the whole namespace; ns AllNamespaces for every namespace) into
// n points of step each from start (a minute boundary; step a whole
// number of minutes): point i covers [start+i·step, start+(i+1)·step).
// It reads one tier: the finest whose buckets a step holds whole and
// that still keeps start (see seriesTier). Points with nothing in them
// are there, zero.
func (s *Store) MetricSeries(ns, fn string, start time.Time, step time.Duration, n int) []model.MetricPoint {
	sums := make([]metricSum, n)
	first := unixMinute(start)
	stepMin := int64(step / time.Minute)
	end := first + stepMin*int64(n)
	s.mu.RLock()
	t := s.metrics.seriesTier(first, stepMin)
	hs := s.sumsLocked(ns) // a namespace's total: its sums
	if fn != "" {
		hs = s.historiesLocked(ns, fn)
	}
	for _, h := range hs {
		h.each(t, max(first, s.metrics.floor[t]), end, func(b *bucket) { sums[(b.start-first)/stepMin].add(b) })
	}
	s.mu.RUnlock()
	out := make([]model.MetricPoint, n)
	for i := range sums {
		out[i] = sums[i].point(start.Add(time.Duration(i) * step).UTC())
	}
	return out
}

// cover splits the minutes [a, b) into spans of tiers no coarser than
// top: whole buckets of the coarsest tier that fit, the edges from finer
// tiers. An edge that the finer tiers no longer keep is read from the
// coarser tier's bucket that holds it, whole (so a window that starts
// before the minutes' retention starts, in effect, on the hour).
func (x *metricHistory) cover(a, b int64, top int, out []span) []span {
	if a >= b {
		return out
	}
	if top == tierMinute {
		return append(out, span{tierMinute, a, b})
	}
	w := tierWidth[top]
	finer := top - 1
	lo, hi := floorTo(a+w-1, w), floorTo(b, w)
	if lo >= hi {
		if x.inWindow(finer, floorTo(a, tierWidth[finer])) {
			return x.cover(a, b, finer, out)
		}
		return append(out, span{top, floorTo(a, w), floorTo(b+w-1, w)})
	}
	if a < lo {
		if x.inWindow(finer, floorTo(a, tierWidth[finer])) {
			out = x.cover(a, lo, finer, out)
		} else {
			out = append(out, span{top, lo - w, lo})
		}
	}
	out = append(out, span{top, lo, hi})
	if hi < b {
		if x.inWindow(finer, hi) {
			out = x.cover(hi, b, finer, out)
		} else {
			out = append(out, span{top, hi, hi + w})
		}
	}
	return out
}

// Usage adds up the metric history of function fn ("" for all) of
// namespace ns (AllNamespaces for every one) over [from, to), grouped
// by (model.UsageBy*): nothing (one row), namespace, function, day or
// hour. It reads whole days where the window holds them, and hours and
// minutes at its edges (see cover), so a window of 90 days reads about
// 90 + 48 + 120 buckets per function. Rows come sorted by namespace,
// function and start; a grouping by namespace or function lists only
// those with something counted (an empty selection gives one zero row
// when not grouped).
func (s *Store) Usage(ns, fn string, from, to time.Time, by string) []model.UsageRow {
	a, b := unixMinute(from), unixMinute(to)
	if to.After(time.Unix(b*60, 0)) {
		b++
	}
	top := tierDay
	if by == model.UsageByHour {
		top = tierHour
	}
	type key struct {
		ns, fn string
		start  int64
	}
	sums := map[key]*metricSum{}
	s.mu.RLock()
	spans := s.metrics.cover(a, b, top, nil)
	hs := s.sumsLocked(ns) // totals of namespaces: their sums
	if fn != "" || by == model.UsageByFunc {
		hs = s.historiesLocked(ns, fn)
	}
	for _, h := range hs {
		k := key{}
		switch by {
		case model.UsageByNS:
			k.ns = h.namespace
		case model.UsageByFunc:
			k.ns, k.fn = h.namespace, h.function
		}
		for _, sp := range spans {
			h.each(sp.tier, max(sp.first, s.metrics.floor[sp.tier]), sp.end, func(b *bucket) {
				switch by {
				case model.UsageByDay:
					k.start = floorTo(b.start, tierWidth[tierDay])
				case model.UsageByHour:
					k.start = floorTo(b.start, tierWidth[tierHour])
				}
				sum := sums[k]
				if sum == nil {
					sum = &metricSum{}
					sums[k] = sum
				}
				sum.add(b)
			})
		}
	}
	s.mu.RUnlock()
	if len(sums) == 0 && by == model.UsageTotal {
		sums[key{}] = &metricSum{}
	}
	out := make([]model.UsageRow, 0, len(sums))
	for k, sum := range sums {
		row := sum.usage()
		row.Namespace, row.Function = k.ns, k.fn
		if by == model.UsageByDay || by == model.UsageByHour {
			row.Start = time.Unix(k.start*60, 0).UTC()
		}
		out = append(out, row)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		if out[i].Function != out[j].Function {
			return out[i].Function < out[j].Function
		}
		return out[i].Start.Before(out[j].Start)
	})
	return out
}

// FunctionStats adds up each function's metric history over the minutes
// that start in [from, to), for namespace ns (AllNamespaces for all):
// every function that exists, and every removed one with history in the
// window, sorted by namespace then name. With only, just those functions
// of namespace ns (a page of a list).
func (s *Store) FunctionStats(ns string, from, to time.Time, only ...string) []model.FunctionStats {
	first, end := unixMinute(from), unixMinute(to)
	if to.After(time.Unix(end*60, 0)) {
		end++ // a minute that starts before to
	}
	if from.After(time.Unix(first*60, 0)) {
		first++
	}
	sums := map[[2]string]*metricSum{}
	s.mu.RLock()
	var histories []*funcHistory
	if len(only) > 0 && ns != AllNamespaces {
		for _, name := range only {
			if _, ok := s.functions[model.QualifiedName(ns, name)]; ok {
				sums[[2]string{model.NamespaceOf(ns), name}] = &metricSum{}
			}
			if h := s.metrics.byFunction[model.QualifiedName(ns, name)]; h != nil {
				histories = append(histories, h)
			}
		}
	} else {
		for _, f := range s.functions {
			if ns == AllNamespaces || f.Namespace == model.NamespaceOf(ns) {
				sums[[2]string{f.Namespace, f.Name}] = &metricSum{}
			}
		}
		histories = s.historiesLocked(ns, "")
	}
	for _, h := range histories {
		k := [2]string{h.namespace, h.function}
		h.each(tierMinute, max(first, s.metrics.floor[tierMinute]), end, func(b *bucket) {
			sum := sums[k]
			if sum == nil {
				sum = &metricSum{}
				sums[k] = sum
			}
			sum.add(b)
		})
	}
	s.mu.RUnlock()
	out := make([]model.FunctionStats, 0, len(sums))
	for k, a := range sums {
		st := model.FunctionStats{Namespace: k[0], Function: k[1], Invocations: a.invocations, Errors: a.errors,
			Throttles: a.throttles, ColdStarts: a.coldStarts}
		if a.lastStart != 0 {
			st.LastInvoked = time.Unix(0, a.lastStart).UTC()
		}
		if a.invocations > 0 {
			st.P99MS = quantileMS(&a.durations, 0.99)
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Function < out[j].Function
	})
	return out
}

// FunctionTotals lists the lifetime totals of the functions with
// history that keep selects (nil: all), sorted by namespace and name.
func (s *Store) FunctionTotals(keep func(ns, fn string) bool) []model.FunctionTotals {
	s.mu.RLock()
	out := make([]model.FunctionTotals, 0, len(s.metrics.byFunction))
	for _, h := range s.metrics.byFunction {
		if keep != nil && !keep(h.namespace, h.function) {
			continue
		}
		b := &h.total
		t := model.FunctionTotals{Namespace: h.namespace, Function: h.function, Invocations: int64(b.invocations),
			Errors: int64(b.errors), Throttles: int64(b.throttles), ColdStarts: int64(b.coldStarts), DurationSumMS: float64(b.durationUS) / 1000,
			BilledMS: int64(b.billedMS), MBMS: int64(b.mbMS), CPUUS: int64(b.cpuUS), ProvisionedMBMS: int64(b.provMBMS)}
		for i, n := range b.durations {
			t.Durations[i] = uint64(n)
		}
		out = append(out, t)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Function < out[j].Function
	})
	return out
}
