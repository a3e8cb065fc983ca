package state

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"nimbus/internal/model"
)

// A history that seals its older buckets answers every query as one
// that keeps every bucket open, snapshots the same bytes, and takes a
// fraction of the memory: 100 days of random invocations of 20
// functions, some arriving late for buckets already sealed.
func TestSealedBucketsAnswerAsOpenOnes(t *testing.T) {
	build := func(seal bool) *Store {
		sealing = seal
		defer func() { sealing = true }()
		s := New()
		r := rand.New(rand.NewPCG(1, 2))
		start := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC)
		ret := model.DefaultRetention()
		ret.MetricMinutes = 6 * time.Hour
		n := 0
		for at := start; at.Before(start.Add(100 * 24 * time.Hour)); at = at.Add(17 * time.Minute) {
			var recs []model.Invocation
			for range r.IntN(4) {
				n++
				st := at.Add(-time.Duration(r.IntN(60)) * time.Second)
				if r.IntN(50) == 0 {
					st = st.Add(-time.Duration(r.IntN(36)) * time.Hour) // late: its hour may be sealed
				}
				inv := model.Invocation{ID: fmt.Sprint(n), Namespace: "ns", Function: fmt.Sprint("f", r.IntN(20)), Status: model.StatusSuccess,
					Start: st, DurationMS: r.Float64() * 3000, BilledMS: int64(1 + r.IntN(3000)), MemoryMB: 128 << r.IntN(4), CPUMS: r.Float64() * 100,
					MaxMemoryMB: r.IntN(500), ColdStart: r.IntN(10) == 0}
				if r.IntN(7) == 0 {
					inv.Status, inv.ErrorType = model.StatusFailed, fmt.Sprint("E", r.IntN(6)) // within the 8 types a bucket counts apart
				}
				recs = append(recs, inv)
			}
			var th []model.ThrottleCount
			if r.IntN(9) == 0 {
				th = append(th, model.ThrottleCount{Namespace: "ns", Function: "f1", Minute: at.Truncate(time.Minute), Count: int64(r.IntN(5) + 1)})
			}
			s.AddRecords(recs, th, ret, at)
		}
		return s
	}
	open, sealed := build(false), build(true)
	now := time.Date(2026, 8, 1, 0, 0, 0, 0, time.UTC).Add(100 * 24 * time.Hour)
	for _, q := range []struct {
		from, to time.Time
		by       string
	}{
		{now.Add(-95 * 24 * time.Hour), now, model.UsageByDay},
		{now.Add(-89 * 24 * time.Hour), now, model.UsageByHour},
		{now.Add(-30*24*time.Hour - 7*time.Hour - 3*time.Minute), now.Add(-2 * time.Minute), model.UsageByFunc},
		{now.Add(-5 * time.Hour), now, model.UsageTotal},
	} {
		a, b := open.Usage("ns", "", q.from, q.to, q.by), sealed.Usage("ns", "", q.from, q.to, q.by)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("usage by %q from %s differs:\nopen   %+v\nsealed %+v", q.by, q.from, a[:min(3, len(a))], b[:min(3, len(b))])
		}
	}
	for _, step := range []time.Duration{time.Minute, time.Hour, 24 * time.Hour} {
		from := now.Add(-300 * step).Truncate(step)
		if a, b := open.MetricSeries("ns", "", from, step, 300), sealed.MetricSeries("ns", "", from, step, 300); !reflect.DeepEqual(a, b) {
			t.Fatalf("series by %s differs", step)
		}
	}
	// The history as snapshots store it (records aside: their order
	// among equal starts is not the point here).
	open.mu.RLock()
	sealed.mu.RLock()
	a, b := open.metrics.historiesLocked().snapshot(), sealed.metrics.historiesLocked().snapshot()
	sortMetricHistory(a)
	sortMetricHistory(b)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("the histories snapshot differently")
	}
	open.mu.RUnlock()
	sealed.mu.RUnlock()
	// Restored, a sealed history answers the same again.
	again := restored(t, sealed)
	if x, y := open.Usage("ns", "", now.Add(-95*24*time.Hour), now, model.UsageByDay), again.Usage("ns", "", now.Add(-95*24*time.Hour), now, model.UsageByDay); !reflect.DeepEqual(x, y) {
		t.Fatal("a restored sealed history differs")
	}
	// A namespace's sums are its functions' added up.
	from, to := now.Add(-80*24*time.Hour-5*time.Hour), now
	total := sealed.Usage("ns", "", from, to, model.UsageTotal)[0]
	var sum model.UsageRow
	sum.ErrorsByType = map[string]int64{}
	for _, r := range sealed.Usage("ns", "", from, to, model.UsageByFunc) {
		sum.Requests += r.Requests
		sum.Errors += r.Errors
		sum.Throttles += r.Throttles
		sum.MBMS += r.MBMS
		sum.BilledMS += r.BilledMS
		for k, v := range r.ErrorsByType {
			sum.ErrorsByType[k] += v
		}
	}
	if total.Requests != sum.Requests || total.Errors != sum.Errors || total.Throttles != sum.Throttles || total.MBMS != sum.MBMS ||
		total.BilledMS != sum.BilledMS || !reflect.DeepEqual(total.ErrorsByType, sum.ErrorsByType) {
		t.Fatalf("the namespace's sums %+v\nits functions' %+v", total, sum)
	}
	// A snapshot from before the sums: they are made again on restore.
	sealed.mu.Lock()
	for ns := range sealed.metrics.byNamespace {
		delete(sealed.metrics.byNamespace, ns)
	}
	sealed.mu.Unlock()
	remade := restored(t, sealed)
	if x := remade.Usage("ns", "", from, to, model.UsageTotal)[0]; x.Requests != total.Requests || x.MBMS != total.MBMS || x.AvgMS != total.AvgMS {
		t.Fatalf("sums made again: %+v, want %+v", x, total)
	}
	var openBuckets, sealedBytes int
	for _, h := range sealed.metrics.byFunction {
		sealedBytes += h.sealedBytes()
		for tier := range tiers {
			openBuckets += len(h.open[tier])
		}
	}
	var all int
	for _, h := range open.metrics.byFunction {
		for tier := range tiers {
			all += len(h.open[tier])
		}
	}
	t.Logf("%d buckets: open %d, sealed in %d bytes (%.1f a bucket)", all, openBuckets, sealedBytes, float64(sealedBytes)/float64(all-openBuckets))
	if openBuckets*10 > all {
		t.Fatalf("%d of %d buckets are still open", openBuckets, all)
	}
}

// An encoded bucket decodes to what was encoded, every field set.
func TestABucketRoundTripsThroughItsEncoding(t *testing.T) {
	b := bucket{start: 29_000_000, invocations: 1 << 40, errors: 3, throttles: 9, coldStarts: 2, durationUS: 1234562,
		lastStart: 29_000_000*60e9 + 59e9, billedMS: 77, mbMS: 1 << 50, cpuUS: 5, provMBMS: 123456789, maxMemoryMB: 10240,
		errorTypes: []errorCount{{"ValueError", 2}, {"other", 1}}}
	b.durations[0], b.durations[31] = 4, 1<<31
	data := appendBucket(nil, &b, 28_999_000)
	var got bucket
	if off := decodeBucket(data, 0, 28_999_000, &got); off != len(data) || !reflect.DeepEqual(got, b) {
		t.Fatalf("decoded %+v (%d of %d bytes)\nwant    %+v", got, off, len(data), b)
	}
	var zero bucket
	zero.start = 5
	data = appendBucket(nil, &zero, 0)
	if off := decodeBucket(data, 0, 0, &got); off != len(data) || got.start != 5 || got.invocations != 0 || len(data) > 3 {
		t.Fatalf("an empty bucket: %+v in %d bytes", got, len(data))
	}
}
