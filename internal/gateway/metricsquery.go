package gateway

import (
	"fmt"
	"net/http"
	"time"

	"nimbus/internal/state"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// Bounds of a metrics query's window.
const (
	defaultMetricsWindow = time.Hour
	maxMetricsWindow     = state.MetricsRetention
)

// queryMetrics answers a metric series from the replicated per-minute
// history: ?function=NAME (none: the namespace's total), window (default
// 1h, at most 48h) ending now, step (default 1m, whole minutes).
func (g *Gateway) queryMetrics(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	window, err := durationParam(q.Get("window"), "window", defaultMetricsWindow)
	if err == nil && (window <= 0 || window > maxMetricsWindow) {
		err = badRequest(fmt.Sprintf("window %s is not within 1m and %s", window, maxMetricsWindow))
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
