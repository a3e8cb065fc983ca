package gateway

import (
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"nimbus/internal/datadir"
	"nimbus/internal/model"
	"nimbus/internal/service"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// metrics are the gateway's Prometheus series.
type metrics struct {
	invocations *prometheus.CounterVec
	byVersion   *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	coldStarts  *prometheus.CounterVec
	inFlight    prometheus.Gauge
	names       seriesNames
}

// seriesNames bounds the function label of this process's per-function
// series: per namespace, the first maxFunctionSeries functions observed
// keep their name for as long as the process runs, and every later one
// is counted under otherFunctions (its version as otherFunctions too).
// A function's series never moves between the two, so each counter only
// grows. Without the bound, a server that ran 43,000 functions held
// 148 MB of series and wrote 41-53 MB a scrape (bench/results.md, issue
// 22). Safe for concurrent use.
type seriesNames struct {
	mu    sync.Mutex
	named map[string]map[string]bool // namespace -> functions with series of their own
}

// label returns the function label fn is counted under, and whether it
// is its own name.
func (n *seriesNames) label(ns, fn string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.named == nil {
		n.named = map[string]map[string]bool{}
	}
	fns := n.named[ns]
	if fns == nil {
		fns = map[string]bool{}
		n.named[ns] = fns
	}
	if fns[fn] {
		return fn, true
	}
	if len(fns) >= maxFunctionSeries {
		return otherFunctions, false
	}
	fns[fn] = true
	return fn, true
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		invocations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_invocations_total", Help: "Invocations (each attempt of an asynchronous one) by namespace, function, trigger and outcome.",
		}, []string{"namespace", "function", "trigger", "outcome"}),
		byVersion: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nimbus_invocations_by_version_total", Help: "Invocations by namespace, function and the version that ran ($LATEST or a published version's number).",
		}, []string{"namespace", "function", "version"}),
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
	reg.MustRegister(m.invocations, m.byVersion, m.duration, m.coldStarts, m.inFlight)
	return m
}

// observe counts one invocation of fn. trigger is a record's trigger
// ("sync", "async", "schedule:NAME", "destination:NAME", "redrive"); the
// label keeps its kind only (before any ':'), so that series stay few.
func (m *metrics) observe(fn model.Function, trigger, outcome string, d time.Duration, cold bool) {
	kind, _, _ := strings.Cut(trigger, ":")
	name, own := m.names.label(fn.Namespace, fn.Name)
	version := otherFunctions
	if own {
		version = model.VersionString(fn.Version)
	}
	m.invocations.WithLabelValues(fn.Namespace, name, kind, outcome).Inc()
	m.byVersion.WithLabelValues(fn.Namespace, name, version).Inc()
	if d > 0 {
		m.duration.WithLabelValues(fn.Namespace, name).Observe(d.Seconds())
	}
	if cold {
		m.coldStarts.WithLabelValues(fn.Namespace, name).Inc()
	}
}

// ObserveRun counts a run of fn that did not come through the synchronous
// invoke route (an attempt of a queued event, whatever queued it): its
// result, or the error that kept it from giving one. trigger is the
// event's trigger, as in its record.
func (g *Gateway) ObserveRun(fn model.Function, trigger string, res worker.Result, err error) {
	if err != nil {
		g.metrics.observe(fn, trigger, outcomeOf(err), 0, false)
		return
	}
	g.metrics.observe(fn, trigger, outcome(res.ErrorType), res.Duration, res.Cold)
}

// registerDiskMetrics adds the data directory's series: whether the probe
// can write it now (checked at each scrape), and the writes that failed
// because it was full.
func registerDiskMetrics(reg *prometheus.Registry, disk *datadir.Monitor) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nimbus_data_dir_writable", Help: "1 when a probe file can be written and synced in the data directory, 0 when not (full or read-only).",
		}, func() float64 {
			if disk.Check() != nil {
				return 0
			}
			return 1
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "nimbus_data_dir_full_errors_total", Help: "Writes (Raft log entries) that failed because the data directory's disk was full.",
		}, func() float64 { return float64(disk.FullErrors()) }),
	)
}

// registerScalingMetrics adds the scaling signal's gauges, computed at
// each scrape as GET /v1/scaling answers (one computation for both).
// Every server reports them from its own view, which heartbeats keep
// alike: an autoscaler should take their max over the servers.
func registerScalingMetrics(reg *prometheus.Registry, svc *service.Service) {
	var (
		mu   sync.Mutex
		at   time.Time
		last client.Scaling
	)
	signal := func() client.Scaling {
		mu.Lock()
		defer mu.Unlock()
		if now := time.Now(); now.Sub(at) > time.Second {
			at, last = now, svc.Scaling(now)
		}
		return last
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nimbus_scaling_desired_workers", Help: "Workers the cluster's load needs (GET /v1/scaling): slots in use and queued events at the target utilisation, one more under pressure, within the scaling bounds.",
		}, func() float64 { return float64(signal().Workers.Desired) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nimbus_scaling_current_workers", Help: "Ready workers (alive, not draining) this server sees.",
		}, func() float64 { return float64(signal().Workers.Current) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "nimbus_scaling_queue_depth", Help: "Queued asynchronous events ready to run that no worker has taken yet.",
		}, func() float64 { return float64(signal().Load.QueueDepth) }),
	)
}

func (m *metrics) handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
