package state

import (
	"fmt"
	"runtime"
	"testing"

	"nimbus/internal/model"
)

// scaleFunction is a function as a deploy stores it, with a realistic
// configuration.
func scaleFunction(i int) model.Function {
	retries := 2
	return model.Function{
		FunctionConfig: model.FunctionConfig{Name: fmt.Sprintf("fn-%06d", i), Runtime: "python3.11", Handler: "main.handler", MemoryMB: 256,
			Timeout: model.Duration(30e9), Env: map[string]string{"STAGE": "prod", "TABLE": fmt.Sprintf("orders-%d", i)},
			Description: "handles the orders of one shop", Retries: &retries, Source: "build-host:/srv/app/functions/orders"},
		Namespace: fmt.Sprintf("team-%d", i%20), CodeSHA256: fmt.Sprintf("%064x", i), CodeSize: 2345,
	}
}

// BenchmarkDeployInto measures a deploy into a store that holds n
// functions already (the view is published after each), and reports the
// heap the n functions take, per function.
func BenchmarkDeployInto(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("%d functions", n), func(b *testing.B) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			s := New()
			for i := range n {
				if _, _, err := s.UpsertFunction(scaleFunction(i), t0); err != nil {
					b.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			b.ResetTimer()
			for i := range b.N {
				s.UpsertFunction(scaleFunction(i%n), t0)
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "heap-B/function")
		})
	}
}
