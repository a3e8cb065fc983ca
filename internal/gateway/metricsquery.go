package gateway

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// defaultMetricsWindow is a metrics query's window when it names none.
const defaultMetricsWindow = time.Hour

// metricValues are the metrics a query may ask for by name (?metric=),
// each read from a point.
var metricValues = map[string]func(p client.MetricPoint) float64{
	"invocations":   func(p client.MetricPoint) float64 { return float64(p.Invocations) },
	"errors":        func(p client.MetricPoint) float64 { return float64(p.Errors) },
	"throttles":     func(p client.MetricPoint) float64 { return float64(p.Throttles) },
	"cold_starts":   func(p client.MetricPoint) float64 { return float64(p.ColdStarts) },
	"p50_ms":        func(p client.MetricPoint) float64 { return p.P50MS },
	"p90_ms":        func(p client.MetricPoint) float64 { return p.P90MS },
	"p99_ms":        func(p client.MetricPoint) float64 { return p.P99MS },
	"avg_ms":        func(p client.MetricPoint) float64 { return p.AvgMS },
	"billed_ms":     func(p client.MetricPoint) float64 { return float64(p.BilledMS) },
	"gb_seconds":    func(p client.MetricPoint) float64 { return p.GBSeconds },
	"cpu_seconds":   func(p client.MetricPoint) float64 { return p.CPUSeconds },
	"max_memory_mb": func(p client.MetricPoint) float64 { return float64(p.MaxMemoryMB) },
}

// queryMetrics answers a metric series from the replicated metric
// history: ?function=NAME (none: the namespace's total), window (default
// 1h, at most what the history keeps: 2 years by default) ending now,
// step (default 1m; whole minutes within 48 hours, whole hours within 90
// days, whole days beyond), and metric=NAME for one metric's values
// alone (none: every figure of each point).
func (g *Gateway) queryMetrics(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	window, err := durationParam(q.Get("window"), "window", defaultMetricsWindow)
	_, _, maxWindow := g.svc.MetricRetention()
	if err == nil && (window < time.Minute || window > maxWindow) {
		err = badRequest(fmt.Sprintf("window %s is not within 1m and %s (what the metric history keeps)", window, maxWindow))
	}
	metric := q.Get("metric")
	if _, ok := metricValues[metric]; err == nil && metric != "" && !ok {
		err = badRequest(fmt.Sprintf("unknown metric %q: one of %s", metric, strings.Join(slices.Sorted(maps.Keys(metricValues)), ", ")))
	}
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	step, err := durationParam(q.Get("step"), "step", time.Minute)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	to := time.Now().UTC()
	points, err := g.svc.MetricSeries(callerNS(r.Context()), q.Get("function"), to.Add(-window), to, step)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	out := make([]client.MetricPoint, len(points))
	for i, p := range points {
		out[i] = wire.MetricPoint(p)
	}
	if metric != "" {
		values := make([]client.MetricValue, len(out))
		for i, p := range out {
			values[i] = client.MetricValue{Time: p.Time, Value: metricValues[metric](p)}
		}
		writeJSON(w, http.StatusOK, map[string]any{"metric": metric, "values": values})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"points": out})
}

// durationParam parses a query parameter that is a Go duration (1h,
// 30m), or gives def when it is absent.
func durationParam(v, name string, def time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, badRequest(fmt.Sprintf("%s %q is not a duration such as 30m or 1h", name, v))
	}
	return d, nil
}
