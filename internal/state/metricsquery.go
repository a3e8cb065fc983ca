package state

import (
	"sort"
	"time"

	"nimbus/internal/model"
)

// AllNamespaces, as a namespace, selects every namespace in the metric
// queries.
const AllNamespaces = "*"

// metricSum adds minutes up.
type metricSum struct {
	invocations, errors, throttles, coldStarts int64
	durationSum                                float64
	lastStart                                  int64
	durations                                  [model.DurationBuckets]uint64
	errorTypes                                 map[string]int64
}

func (a *metricSum) add(b *minuteBucket) {
	a.invocations += int64(b.invocations)
	a.errors += int64(b.errors)
	a.throttles += int64(b.throttles)
	a.coldStarts += int64(b.coldStarts)
	a.durationSum += b.durationSum
	a.lastStart = max(a.lastStart, b.lastStart)
	for i, n := range b.durations {
		a.durations[i] += uint64(n)
	}
	if len(b.errorTypes) > 0 && a.errorTypes == nil {
		a.errorTypes = map[string]int64{}
	}
	for _, e := range b.errorTypes {
		a.errorTypes[e.typ] += int64(e.n)
	}
}

func (a *metricSum) point(t time.Time) model.MetricPoint {
	p := model.MetricPoint{Time: t, Invocations: a.invocations, Errors: a.errors, ErrorsByType: a.errorTypes,
		Throttles: a.throttles, ColdStarts: a.coldStarts}
	if a.invocations > 0 {
		p.P50MS = quantileMS(&a.durations, 0.50)
		p.P99MS = quantileMS(&a.durations, 0.99)
		p.AvgMS = a.durationSum / float64(a.invocations)
	}
	return p
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

// MetricSeries adds up the metric history of function fn of namespace ns
// ("" for the whole namespace; ns AllNamespaces for every namespace) into
// n points of step each from start (a minute boundary; step a whole
// number of minutes): point i covers [start+i·step, start+(i+1)·step).
// Points with nothing in them are there, zero.
func (s *Store) MetricSeries(ns, fn string, start time.Time, step time.Duration, n int) []model.MetricPoint {
	sums := make([]metricSum, n)
	first := unixMinute(start)
	stepMin := int64(step / time.Minute)
	end := first + stepMin*int64(n)
	s.mu.RLock()
	for _, h := range s.historiesLocked(ns, fn) {
		i := sort.Search(len(h.minutes), func(i int) bool { return h.minutes[i].minute >= first })
		for ; i < len(h.minutes) && h.minutes[i].minute < end; i++ {
			sums[(h.minutes[i].minute-first)/stepMin].add(&h.minutes[i])
		}
	}
	s.mu.RUnlock()
	out := make([]model.MetricPoint, n)
	for i := range sums {
		out[i] = sums[i].point(start.Add(time.Duration(i) * step).UTC())
	}
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
		i := sort.Search(len(h.minutes), func(i int) bool { return h.minutes[i].minute >= first })
		if i == len(h.minutes) || h.minutes[i].minute >= end {
			continue
		}
		k := [2]string{h.namespace, h.function}
		sum := sums[k]
		if sum == nil {
			sum = &metricSum{}
			sums[k] = sum
		}
		for ; i < len(h.minutes) && h.minutes[i].minute < end; i++ {
			sum.add(&h.minutes[i])
		}
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
