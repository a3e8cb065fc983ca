package placement

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets are the buckets, in seconds, of placement's own
// histograms: from 10 µs, since a pick or a heartbeat takes microseconds
// with few workers, to a second.
var latencyBuckets = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

func newPickHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "nimbus_placement_pick_seconds",
		Help:    "Time placement took to choose the worker to offer one invocation to first.",
		Buckets: latencyBuckets,
	})
}

func newHeartbeatHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "nimbus_worker_heartbeat_seconds",
		Help:    "Time this server took to record one worker heartbeat, waiting for the registry's lock included.",
		Buckets: latencyBuckets,
	})
}

// Collectors returns the placer's Prometheus series, and its source's
// when the source has some (a Registry's heartbeat histogram), for the
// server's /metrics.
func (p *Placer) Collectors() []prometheus.Collector {
	out := []prometheus.Collector{p.pick}
	if c, ok := p.remote.(interface{ Collectors() []prometheus.Collector }); ok {
		out = append(out, c.Collectors()...)
	}
	return out
}

// Collectors returns the registry's Prometheus series.
func (r *Registry) Collectors() []prometheus.Collector {
	return []prometheus.Collector{r.heartbeats}
}

func since(h prometheus.Histogram, t time.Time) { h.Observe(time.Since(t).Seconds()) }
