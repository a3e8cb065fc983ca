package service

import (
	"time"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

// MaxMetricPoints bounds the points of one metric series.
const MaxMetricPoints = 1500

// MetricSeries returns one point per step in [from, to) for function of
// namespace ns, or for the whole namespace when function is "" (and for
// every namespace when ns is "*", state.AllNamespaces: the admin
// overview), from the replicated metric history. Steps are aligned to
// multiples of step since the Unix epoch (the first one starts at or
// before from), and steps with nothing in them are there, zero, so a
// chart has a continuous x axis. step is a whole number of the buckets
// the history still keeps at from: minutes for 48 hours, hours for 90
// days, days for 2 years (by default); a finer step, a window older than
// the days kept, a series of more than MaxMetricPoints points, or an
// empty window, is state.ErrInvalid.
func (s *Service) MetricSeries(ns, function string, from, to time.Time, step time.Duration) ([]model.MetricPoint, error) {
	if step < time.Minute || step%time.Minute != 0 {
		return nil, state.Errorf(state.ErrInvalid, "step %s is not a whole number of minutes (1m or more)", step)
	}
	if !to.After(from) {
		return nil, state.Errorf(state.ErrInvalid, "the window from %s to %s is empty", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	sec := int64(step / time.Second)
	first := from.Unix()
	first -= ((first % sec) + sec) % sec
	start := time.Unix(first, 0).UTC()
	// The tier that holds the second step: the first may begin a little
	// before a tier's window (a 48 h chart of minutes).
	tier, width := s.store.TierFor(start.Add(step))
	if width == 0 {
		return nil, state.Errorf(state.ErrInvalid, "%s is older than the metric history the cluster keeps", start.Format(time.RFC3339))
	}
	if step%width != 0 {
		return nil, state.Errorf(state.ErrInvalid, "a window that reaches back to %s reads the history by the %s: take a step of whole %ss, not %s",
			start.Format(time.RFC3339), tier, tier, step)
	}
	n := (to.Sub(start) + step - 1) / step
	if n > MaxMetricPoints {
		return nil, state.Errorf(state.ErrInvalid, "a step of %s over %s makes %d points, more than %d: take a longer step or a shorter window",
			step, to.Sub(from).Round(time.Second), n, MaxMetricPoints)
	}
	return s.store.MetricSeries(ns, function, start, step, int(n)), nil
}

// MetricRetention is how long the metric history keeps its minutes,
// hours and days.
func (s *Service) MetricRetention() (minutes, hours, days time.Duration) {
	return s.store.MetricRetention()
}

// FunctionTotals lists the lifetime totals of the functions with
// history that keep selects (nil: all).
func (s *Service) FunctionTotals(keep func(ns, fn string) bool) []model.FunctionTotals {
	return s.store.FunctionTotals(keep)
}

// FunctionStats returns totals per function over the minutes that start
// in [from, to), in namespace ns ("*" for all): every function that
// exists, zero when idle, and every removed one with history in the
// window (with only, just those functions of ns); sorted by namespace then function name. LastInvoked is the
// latest start among the invocations counted.
func (s *Service) FunctionStats(ns string, from, to time.Time, only ...string) []model.FunctionStats {
	return s.store.FunctionStats(ns, from, to, only...)
}
