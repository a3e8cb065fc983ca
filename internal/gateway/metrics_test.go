package gateway

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/model"
)

// This process's per-function series name at most maxFunctionSeries
// functions a namespace, the first ones seen, and count the rest under
// "_other": a function keeps the label it got first, so no counter
// moves between series.
func TestPerFunctionSeriesAreBoundedAndStable(t *testing.T) {
	fn := func(ns, name string, version int64) model.Function {
		f := model.Function{Namespace: ns, Version: version}
		f.Name = name
		return f
	}
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	total := 0
	for i := range 300 {
		m.observe(fn("big", fmt.Sprintf("fn-%03d", i), 0), "sync", "success", time.Millisecond, i%2 == 0)
		total++
	}
	// fn-250, past the bound, runs most; fn-007 runs again: neither moves.
	for range 40 {
		m.observe(fn("big", "fn-250", 0), "schedule:every", "success", time.Millisecond, false)
		m.observe(fn("big", "fn-007", 3), "async", "success", time.Millisecond, false)
		total += 2
	}
	m.observe(fn("default", "small", 0), "sync", "error", time.Millisecond, false)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]int{}
	counts := map[string]float64{} // function -> nimbus_invocations_total summed over labels
	versions := map[string]bool{}
	for _, f := range families {
		for _, mt := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range mt.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] != "big" {
				continue
			}
			byName[f.GetName()]++
			switch f.GetName() {
			case "nimbus_invocations_total":
				counts[labels["function"]] += mt.GetCounter().GetValue()
			case "nimbus_invocations_by_version_total":
				versions[labels["function"]+"@"+labels["version"]] = true
			}
		}
	}
	sum := 0.0
	for _, v := range counts {
		sum += v
	}
	if len(counts) != maxFunctionSeries+1 || sum != float64(total) {
		t.Fatalf("%d functions labelled, summing to %v; want %d and %d", len(counts), sum, maxFunctionSeries+1, total)
	}
	if counts["fn-007"] != 41 || counts["fn-199"] != 1 || counts["fn-200"] != 0 || counts[otherFunctions] != 100+40 {
		t.Fatalf("fn-007 %v, fn-199 %v, fn-200 %v, _other %v", counts["fn-007"], counts["fn-199"], counts["fn-200"], counts[otherFunctions])
	}
	if !versions["fn-007@3"] || !versions["fn-007@$LATEST"] || !versions[otherFunctions+"@"+otherFunctions] || versions["fn-250@$LATEST"] {
		t.Fatalf("version series: %v", versions)
	}
	// Two invocation series for fn-007 (sync, async) and two for _other
	// (sync, schedule) beside one each for the rest.
	if n := byName["nimbus_invocations_total"]; n != maxFunctionSeries+3 {
		t.Fatalf("%d nimbus_invocations_total series in namespace big", n)
	}
	if n := byName["nimbus_invocation_duration_seconds"]; n != maxFunctionSeries+1 {
		t.Fatalf("%d duration series in namespace big", n)
	}
}
