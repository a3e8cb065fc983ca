package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// scrape gathers reg and returns faas_invocations_total by
// "namespace/function", and the faas_invoke_duration_seconds histogram
// of fn.
func scrape(t *testing.T, reg *prometheus.Registry, fn string) (map[string]float64, *dto.Histogram) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	var hist *dto.Histogram
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			qn := labels["namespace"] + "/" + labels["function"]
			switch mf.GetName() {
			case "faas_invocations_total":
				out[qn] = m.GetCounter().GetValue()
			case "faas_invoke_duration_seconds":
				if qn == fn {
					hist = m.GetHistogram()
				}
			}
		}
	}
	return out, hist
}

// /metrics reports the cluster-wide rollups under OTel FaaS names, at
// most 200 functions a namespace plus "_other", and with several
// servers each function on exactly one of them.
func TestMetricsReportTheClusterRollupsBoundedAndPartitioned(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	a.must(201, req{method: "PUT", path: "/v1/namespaces/big", key: a.admin, body: `{}`})
	now := time.Now().UTC()
	var recs []model.Invocation
	var total float64
	for i := range 250 {
		for j := range i + 1 {
			recs = append(recs, model.Invocation{ID: fmt.Sprintf("b%d-%d", i, j), Namespace: "big", Function: fmt.Sprintf("fn-%03d", i),
				Status: model.StatusSuccess, Start: now, DurationMS: 20, BilledMS: 20, MemoryMB: 128})
			total++
		}
	}
	for i := range 3 {
		recs = append(recs, model.Invocation{ID: fmt.Sprint("d", i), Namespace: "default", Function: "small", Status: model.StatusFailed,
			Start: now, DurationMS: float64(1 + 1000*i), BilledMS: 1, MemoryMB: 128})
	}
	for len(recs) > 0 {
		n := min(len(recs), 2000)
		if _, err := fsm.Apply(ctx, a.cp, fsm.RecordInvocations{Records: recs[:n], Retention: model.DefaultRetention(), Now: now}); err != nil {
			t.Fatal(err)
		}
		recs = recs[n:]
	}
	got, hist := scrape(t, a.g.cfg.Registry, "default/small")
	bigSeries, bigSum := 0, 0.0
	for qn, v := range got {
		if len(qn) > 4 && qn[:4] == "big/" {
			bigSeries++
			bigSum += v
		}
	}
	// The 50 least invoked (1..50 invocations) are "_other".
	if bigSeries != maxFunctionSeries+1 || bigSum != total || got["big/_other"] != 50*51/2 || got["big/fn-249"] != 250 {
		t.Fatalf("namespace big: %d series summing to %v (want %d, %v); _other %v", bigSeries, bigSum, maxFunctionSeries+1, total, got["big/_other"])
	}
	if got["default/small"] != 3 || hist == nil || hist.GetSampleCount() != 3 || hist.GetSampleSum() != (1+1001+2001)/1000.0 {
		t.Fatalf("default/small: %v, histogram %v", got["default/small"], hist)
	}
	// 1 ms is in the first bucket, 1,001 and 2,001 ms within 2.5 s.
	if b := hist.GetBucket(); b[0].GetUpperBound() != 0.001 || b[0].GetCumulativeCount() != 1 || b[7].GetUpperBound() != 2.5 || b[7].GetCumulativeCount() != 3 {
		t.Fatalf("buckets: %v", b)
	}

	// Three servers over the same state: each function on exactly one.
	servers := []client.Server{{ID: "s2"}, {ID: "s1"}, {ID: "s3"}}
	cp := &fakeControl{Writer: a.cp.Writer, store: a.cp.store, servers: servers}
	seen := map[string]int{}
	for _, s := range servers {
		reg := prometheus.NewRegistry()
		g := New(Config{Control: cp, Registry: reg, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), ServerID: s.ID})
		t.Cleanup(g.Close)
		part, _ := scrape(t, reg, "")
		if len(part) == 0 || len(part) > 200 {
			t.Fatalf("server %s reports %d functions", s.ID, len(part))
		}
		for qn := range part {
			seen[qn]++
		}
	}
	if len(seen) != 251 {
		t.Fatalf("the three servers report %d functions, want 251", len(seen))
	}
	for qn, n := range seen {
		if n != 1 {
			t.Fatalf("%s reported by %d servers", qn, n)
		}
	}
}
