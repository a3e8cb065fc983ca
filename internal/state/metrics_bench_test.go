package state

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"nimbus/internal/model"
)

// BenchmarkActiveHistoryHeap reports the heap a function invoked once a
// minute for the last 15 minutes takes, per function, for 20,000 such
// functions: its metric history, most of it the open buckets, and its
// one record kept (retention of one a function).
func BenchmarkActiveHistoryHeap(b *testing.B) {
	const functions, minutes = 20_000, 15
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		s := New()
		var batch []model.Invocation
		for m := range minutes {
			for f := range functions {
				r := loggedRecord(m*functions+f, fmt.Sprintf("fn-%05d", f), "", "")
				r.Start = t0.Add(time.Duration(m)*time.Minute + time.Duration(f)*time.Millisecond)
				if batch = append(batch, r); len(batch) == 500 {
					s.AddRecords(batch, nil, model.Retention{PerFunction: 1}, r.Start)
					batch = batch[:0]
				}
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/functions, "heap-B/function")
		runtime.KeepAlive(s)
	}
}
