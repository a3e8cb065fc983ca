package gateway

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"nimbus/pkg/client"
)

// metrics are the gateway's Prometheus series.
type metrics struct {
	invocations *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	coldStarts  *prometheus.CounterVec
	inFlight    prometheus.Gauge
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_invocations_total", Help: "Invocations by namespace, function and outcome.",
		}, []string{"namespace", "function", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nimbus_invocation_duration_seconds", Help: "Handler duration as measured by the runtime.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900},
		}, []string{"namespace", "function"}),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_cold_starts_total", Help: "Invocations that started a new instance.",
		}, []string{"namespace", "function"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nimbus_invocations_in_flight", Help: "Synchronous invocations running now.",
		}),
	}
	reg.MustRegister(m.invocations, m.duration, m.coldStarts, m.inFlight)
	return m
}

func (m *metrics) observe(fn client.Function, outcome string, d time.Duration, cold bool) {
	m.invocations.WithLabelValues(fn.Namespace, fn.Name, outcome).Inc()
	if d > 0 {
		m.duration.WithLabelValues(fn.Namespace, fn.Name).Observe(d.Seconds())
	}
	if cold {
		m.coldStarts.WithLabelValues(fn.Namespace, fn.Name).Inc()
	}
}

func (m *metrics) handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
