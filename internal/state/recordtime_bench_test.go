package state

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"nimbus/internal/model"
)

// BenchmarkRecordsNewestPage is GET /v1/invocations?limit=100 (no
// function) at 1,000,000 records of 50,000 functions in one namespace,
// which bench/scale's runs hold: records end 1 ms apart and started
// 50 ms before on average (one in a thousand up to 15 minutes before, so
// starts are out of order), 5% of them failed. heap-B/record is what the
// store takes per record, the metric history included.
func BenchmarkRecordsNewestPage(b *testing.B) {
	const records, functions = 1_000_000, 50_000
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s := New()
	rnd := rand.New(rand.NewPCG(3, 4))
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ret := model.Retention{PerFunction: 1000}
	batch := make([]model.Invocation, 0, 10_000)
	for i := range records {
		end := base.Add(time.Duration(i) * time.Millisecond)
		took := time.Duration(rnd.ExpFloat64() * float64(50*time.Millisecond))
		if rnd.IntN(1000) == 0 {
			took = time.Duration(rnd.Int64N(int64(15 * time.Minute)))
		}
		status := model.StatusSuccess
		if rnd.IntN(20) == 0 {
			status = model.StatusFailed
		}
		batch = append(batch, model.Invocation{ID: fmt.Sprintf("%012x", i), Namespace: "default", Function: fmt.Sprintf("fn-%06d", rnd.IntN(functions)),
			Trigger: "sync", Status: status, Start: end.Add(-took), DurationMS: float64(took) / 1e6})
		if len(batch) == cap(batch) {
			s.AddRecords(batch, nil, ret, end)
			batch = batch[:0]
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	heap := float64(after.HeapAlloc-before.HeapAlloc) / records
	newest := s.Records(RecordQuery{Namespace: "default", Limit: 100})
	for _, c := range []struct {
		name string
		q    RecordQuery
	}{
		{"namespace", RecordQuery{Namespace: "default", Limit: 100}},
		{"every namespace", RecordQuery{Limit: 100}},
		{"failed", RecordQuery{Namespace: "default", Status: model.StatusFailed, Limit: 100}},
		{"second page", RecordQuery{Namespace: "default", Before: newest[len(newest)-1].Start, Limit: 100}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if got := s.Records(c.q); len(got) != 100 {
					b.Fatalf("%d records", len(got))
				}
			}
			b.ReportMetric(heap, "heap-B/record")
		})
	}
}
