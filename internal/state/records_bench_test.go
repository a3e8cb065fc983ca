package state

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"nimbus/internal/model"
)

// BenchmarkAddRecords is the recorder's batches of 512 records into 100
// functions held at the retention cap of 1,000 records each, so that
// every record added is one that retention removes. Records end 1 ms
// apart and started 50 ms before on average (one in a thousand up to
// 15 minutes before, so starts are out of order). "new" adds new
// records; "start moved" updates stored ones, picked at random, to start
// now (an async event's record, queued then run); "function page" is
// GET /v1/invocations?function=F&limit=100.
func BenchmarkAddRecords(b *testing.B) {
	const functions, perFunction, batchSize = 100, 1000, 512
	rnd := rand.New(rand.NewPCG(5, 6))
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ret := model.Retention{PerFunction: perFunction}
	s := New()
	seq := 0
	end := base
	batch := make([]model.Invocation, batchSize)
	fill := func() {
		for i := range batch {
			seq++
			end = base.Add(time.Duration(seq) * time.Millisecond)
			took := time.Duration(rnd.ExpFloat64() * float64(50*time.Millisecond))
			if rnd.IntN(1000) == 0 {
				took = time.Duration(rnd.Int64N(int64(15 * time.Minute)))
			}
			batch[i] = model.Invocation{ID: strconv.Itoa(seq), Namespace: "default", Function: "fn-" + strconv.Itoa(rnd.IntN(functions)),
				Trigger: "sync", Status: model.StatusSuccess, Start: end.Add(-took)}
		}
	}
	for range functions * perFunction * 3 / 2 / batchSize {
		fill()
		s.AddRecords(batch, nil, ret, end)
	}
	b.Run("new", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			fill()
			b.StartTimer()
			s.AddRecords(batch, nil, ret, end)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/record")
	})
	b.Run("start moved", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			end = end.Add(time.Millisecond)
			for i := range batch {
				r, err := s.Record(strconv.Itoa(seq - rnd.IntN(functions*perFunction/2)))
				for err != nil { // removed: it started long before
					r, err = s.Record(strconv.Itoa(seq - rnd.IntN(functions*perFunction/2)))
				}
				r.Start = end
				batch[i] = r
			}
			b.StartTimer()
			s.AddRecords(batch, nil, ret, end)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/record")
	})
	b.Run("function page", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if got := s.Records(RecordQuery{Namespace: "default", Function: "fn-7", Limit: 100}); len(got) != 100 {
				b.Fatalf("%d records", len(got))
			}
		}
	})
}

// BenchmarkAddRecordsAmongManyFunctions is a recorder's batch of 64
// records when 100,000 functions hold records (a few each, far below the
// retention cap): what retention costs every batch beside the records.
// Batches are 64 ms of batch time apart, so a sweep over every function
// (at a new minute) comes once in about 940 of them, as in a cluster.
func BenchmarkAddRecordsAmongManyFunctions(b *testing.B) {
	const functions, batchSize = 100000, 64
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	ret := model.Retention{PerFunction: 1000, MaxAge: 7 * 24 * time.Hour}
	s := New()
	seq := 0
	batch := make([]model.Invocation, batchSize)
	fill := func() time.Time {
		var at time.Time
		for i := range batch {
			seq++
			at = base.Add(time.Duration(seq) * time.Millisecond)
			batch[i] = model.Invocation{ID: strconv.Itoa(seq), Namespace: "default", Function: "fn-" + strconv.Itoa(seq%functions),
				Trigger: "sync", Status: model.StatusSuccess, Start: at}
		}
		return at
	}
	for range 2 * functions / batchSize {
		s.AddRecords(batch, nil, ret, fill())
	}
	for b.Loop() {
		b.StopTimer()
		now := fill()
		b.StartTimer()
		s.AddRecords(batch, nil, ret, now)
	}
}
