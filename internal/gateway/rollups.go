package gateway

import (
	"hash/fnv"
	"maps"
	"slices"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/model"
)

// The cluster-wide rollups on /metrics: each function's lifetime totals
// from the replicated metric history, named after OpenTelemetry's FaaS
// semantic conventions where they have a name (docs/spec.md §13 has the
// mapping). Every server holds the same history, so that a Prometheus
// scraping every server counts each function once, a server reports
// only the functions it is responsible for: those whose FNV-1a hash of
// "namespace/function", modulo the number of servers in the Raft
// configuration, is its place among their IDs in order (a server that
// is not in a configuration, such as nimbus dev's before it has one,
// reports every function).
//
// Cardinality: per namespace, the maxFunctionSeries functions with the
// most invocations have series of their own and the rest are added up
// under function="_other", so a namespace of 100,000 functions costs a
// scrape at most maxFunctionSeries+1 label sets per metric.
const (
	maxFunctionSeries = 200
	otherFunctions    = "_other"
)

// rollupBoundsMS are the bucket bounds of faas_invoke_duration_seconds:
// some of model.DurationBoundsMS's, so that each is exact.
var rollupBoundsMS = []float64{1, 2.5, 10, 25, 100, 250, 1000, 2500, 10000, 25000, 100000, 900000}

type rollupCollector struct {
	g                                                                  *Gateway
	invocations, errors, coldStarts, throttles, cpu, billed, gbs, prov *prometheus.Desc
	duration                                                           *prometheus.Desc
}

func newRollupCollector(g *Gateway) *rollupCollector {
	labels := []string{"namespace", "function"}
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, labels, nil) }
	return &rollupCollector{g: g,
		invocations: d("faas_invocations_total", "Cluster-wide invocations of the function that ended (OTel faas.invocations), from the replicated metric history."),
		errors:      d("faas_errors_total", "Cluster-wide invocations that ended failed or dead-lettered (OTel faas.errors)."),
		coldStarts:  d("faas_coldstarts_total", "Cluster-wide invocations that started a new instance (OTel faas.coldstarts)."),
		throttles:   d("nimbus_throttles_total", "Cluster-wide invocations refused with 429 (a concurrency limit, every worker busy, a URL's rate, a budget)."),
		cpu:         d("faas_cpu_usage_seconds_total", "Cluster-wide CPU time the invocations' cgroups used (the sum of OTel faas.cpu_usage)."),
		billed:      d("nimbus_billed_duration_seconds_total", "Cluster-wide billed duration (each invocation rounded up to the millisecond)."),
		gbs:         d("nimbus_billed_gb_seconds_total", "Cluster-wide billed duration times memory size, in GB-seconds."),
		prov:        d("nimbus_provisioned_gb_seconds_total", "Cluster-wide time of the provisioned instances asked for times their memory size, in GB-seconds."),
		duration:    d("faas_invoke_duration_seconds", "Cluster-wide duration of the invocations (OTel faas.invoke_duration)."),
	}
}

func (c *rollupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.invocations, c.errors, c.coldStarts, c.throttles, c.cpu, c.billed, c.gbs, c.prov, c.duration} {
		ch <- d
	}
}

func (c *rollupCollector) Collect(ch chan<- prometheus.Metric) {
	for _, t := range capFunctions(c.g.svc.FunctionTotals(c.g.responsibleFor())) {
		counter := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, t.Namespace, t.Function)
		}
		counter(c.invocations, float64(t.Invocations))
		counter(c.errors, float64(t.Errors))
		counter(c.coldStarts, float64(t.ColdStarts))
		counter(c.throttles, float64(t.Throttles))
		counter(c.cpu, float64(t.CPUUS)/1e6)
		counter(c.billed, float64(t.BilledMS)/1e3)
		counter(c.gbs, float64(t.MBMS)/model.MBMSPerGBSecond)
		counter(c.prov, float64(t.ProvisionedMBMS)/model.MBMSPerGBSecond)
		buckets := make(map[float64]uint64, len(rollupBoundsMS))
		var seen uint64
		i := 0
		for _, le := range rollupBoundsMS {
			for ; i < len(model.DurationBoundsMS) && model.DurationBoundsMS[i] <= le; i++ {
				seen += t.Durations[i]
			}
			buckets[le/1000] = seen
		}
		var count uint64
		for _, n := range t.Durations {
			count += n
		}
		ch <- prometheus.MustNewConstHistogram(c.duration, count, t.DurationSumMS/1000, buckets, t.Namespace, t.Function)
	}
}

// capFunctions keeps, per namespace, the maxFunctionSeries functions
// with the most invocations and adds the rest up as otherFunctions.
func capFunctions(ts []model.FunctionTotals) []model.FunctionTotals {
	byNS := map[string][]model.FunctionTotals{}
	for _, t := range ts {
		byNS[t.Namespace] = append(byNS[t.Namespace], t)
	}
	out := make([]model.FunctionTotals, 0, len(ts))
	for _, ns := range slices.Sorted(maps.Keys(byNS)) {
		list := byNS[ns]
		if len(list) <= maxFunctionSeries {
			out = append(out, list...)
			continue
		}
		sort.SliceStable(list, func(i, j int) bool { return list[i].Invocations > list[j].Invocations })
		out = append(out, list[:maxFunctionSeries]...)
		other := model.FunctionTotals{Namespace: ns, Function: otherFunctions}
		for _, t := range list[maxFunctionSeries:] {
			other.Invocations += t.Invocations
			other.Errors += t.Errors
			other.Throttles += t.Throttles
			other.ColdStarts += t.ColdStarts
			other.DurationSumMS += t.DurationSumMS
			other.BilledMS += t.BilledMS
			other.MBMS += t.MBMS
			other.CPUUS += t.CPUUS
			other.ProvisionedMBMS += t.ProvisionedMBMS
			for i, n := range t.Durations {
				other.Durations[i] += n
			}
		}
		out = append(out, other)
	}
	return out
}

// responsibleFor selects the functions this server reports (see above):
// nil (all) when it is not in the Raft configuration it knows.
func (g *Gateway) responsibleFor() func(ns, fn string) bool {
	var ids []string
	for _, s := range g.cfg.Control.Servers(nil) {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	me := slices.Index(ids, g.cfg.ServerID)
	if me < 0 || len(ids) < 2 {
		return nil
	}
	n := uint32(len(ids))
	return func(ns, fn string) bool {
		h := fnv.New32a()
		h.Write([]byte(model.QualifiedName(ns, fn)))
		return h.Sum32()%n == uint32(me)
	}
}
