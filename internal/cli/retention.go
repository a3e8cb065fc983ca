package cli

import (
	"time"

	"github.com/spf13/pflag"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

// retentionFlags adds the flags that bound the invocation records a
// server keeps to f, with the defaults of model.DefaultRetention.
func retentionFlags(f *pflag.FlagSet, ret *model.Retention) {
	def := model.DefaultRetention()
	f.DurationVar(&ret.MaxAge, "record-retention", def.MaxAge, "invocation records older than this are dropped (e.g. 168h)")
	f.IntVar(&ret.PerFunction, "records-per-function", def.PerFunction, "invocation records kept per function, newest first")
	f.DurationVar(&ret.MetricMinutes, "metric-minutes", state.MetricsRetention, "how long the metric history keeps its per-minute figures")
	f.DurationVar(&ret.MetricHours, "metric-hours", state.HourMetricsRetention, "how long the metric history keeps its per-hour figures (usage and cost read them)")
	f.DurationVar(&ret.MetricDays, "metric-days", state.DayMetricsRetention, "how long the metric history keeps its per-day figures (usage and cost read them)")
}

// checkRetention refuses retention flags that would keep nothing.
func checkRetention(ret model.Retention) error {
	if ret.MaxAge <= 0 {
		return usagef("--record-retention must be a positive duration such as 168h, not %v", ret.MaxAge)
	}
	if ret.PerFunction < 1 {
		return usagef("--records-per-function must be 1 or more, not %d", ret.PerFunction)
	}
	for _, c := range []struct {
		flag     string
		d, least time.Duration
	}{{"--metric-minutes", ret.MetricMinutes, time.Hour}, {"--metric-hours", ret.MetricHours, 24 * time.Hour}, {"--metric-days", ret.MetricDays, 31 * 24 * time.Hour}} {
		if c.d < c.least {
			return usagef("%s must be at least %s (what usage and charts read), not %v", c.flag, c.least, c.d)
		}
	}
	return nil
}

// withDefaultMetricsUnset leaves the metric retentions that are the
// defaults unset (zero), so record batches stay in the encoding that
// servers of the release before still read (internal/fsm/records.go).
func withDefaultMetricsUnset(ret model.Retention) model.Retention {
	if ret.MetricMinutes == state.MetricsRetention {
		ret.MetricMinutes = 0
	}
	if ret.MetricHours == state.HourMetricsRetention {
		ret.MetricHours = 0
	}
	if ret.MetricDays == state.DayMetricsRetention {
		ret.MetricDays = 0
	}
	return ret
}
