package state

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"

	"nimbus/internal/model"
)

var m0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func rec(id, status string, start time.Time, ms float64) model.Invocation {
	return model.Invocation{ID: id, Namespace: "default", Function: "f", Status: status, Start: start, DurationMS: ms}
}

// minuteOf is the one-minute point of function f at t.
func minuteOf(s *Store, fn string, t time.Time) model.MetricPoint {
	return s.MetricSeries("default", fn, t.Truncate(time.Minute), time.Minute, 1)[0]
}

func TestAnInvocationCountsOnceWhenItsRecordFirstEnds(t *testing.T) {
	s := New()
	ret := model.DefaultRetention()
	// A sync record, committed twice (a held batch whose first commit's
	// outcome was unknown).
	sync := rec("s1", model.StatusSuccess, m0.Add(10*time.Second), 12)
	s.AddRecords([]model.Invocation{sync}, nil, ret, m0)
	s.AddRecords([]model.Invocation{sync}, nil, ret, m0.Add(time.Second))
	// An async event: queued, leased (running), completed, then its
	// destination update writes the final record again.
	s.Enqueue([]model.QueueItem{{RequestID: "a1", Function: "f", Event: json.RawMessage(`{}`), Trigger: "async", EnqueuedAt: m0}})
	epoch, err := s.Lease("a1", m0.Add(time.Minute), m0)
	if err != nil {
		t.Fatal(err)
	}
	if p := minuteOf(s, "f", m0); p.Invocations != 1 {
		t.Fatalf("a queued and a running record counted: %+v", p)
	}
	done := rec("a1", model.StatusSuccess, m0.Add(20*time.Second), 30)
	done.ColdStart = true
	if err := s.Complete("a1", epoch, done); err != nil {
		t.Fatal(err)
	}
	done.Destination = "delivered"
	s.AddRecords([]model.Invocation{done}, nil, ret, m0.Add(2*time.Second))
	// A failure, and one retried to a dead letter.
	failed := rec("s2", model.StatusFailed, m0.Add(30*time.Second), 5)
	failed.ErrorType = "ValueError"
	s.AddRecords([]model.Invocation{failed, failed}, nil, ret, m0.Add(3*time.Second))
	s.Enqueue([]model.QueueItem{{RequestID: "a2", Function: "f", Event: json.RawMessage(`{}`), Trigger: "async", EnqueuedAt: m0}})
	epoch, _ = s.Lease("a2", m0.Add(time.Minute), m0)
	attempt := rec("", model.StatusFailed, m0.Add(40*time.Second), 7)
	if err := s.Retry("a2", epoch, m0.Add(time.Second), "KeyError", false, attempt); err != nil {
		t.Fatal(err)
	}
	epoch, _ = s.Lease("a2", m0.Add(time.Minute), m0.Add(time.Second))
	if err := s.DeadLetter("a2", epoch, model.ReasonRetriesExhausted, "KeyError", m0.Add(2*time.Second), attempt); err != nil {
		t.Fatal(err)
	}

	p := minuteOf(s, "f", m0)
	want := model.MetricPoint{Time: m0, Invocations: 4, Errors: 2, ErrorsByType: map[string]int64{"ValueError": 1, "KeyError": 1}, ColdStarts: 1}
	got := p
	got.P50MS, got.P90MS, got.P99MS, got.AvgMS = 0, 0, 0, 0
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the minute: %+v\nwant %+v", p, want)
	}
	if p.AvgMS != (12+30+5+7)/4.0 || p.P50MS <= 6.3 || p.P50MS > 10 || p.P99MS <= 25 || p.P99MS > 40 {
		t.Fatalf("durations: avg %v p50 %v p99 %v", p.AvgMS, p.P50MS, p.P99MS)
	}

	// Redriven, the dead letter runs again and counts again.
	s.Redrive([]string{"a2"}, m0.Add(time.Minute))
	epoch, _ = s.Lease("a2", m0.Add(2*time.Minute), m0.Add(time.Minute))
	s.Complete("a2", epoch, rec("a2", model.StatusSuccess, m0.Add(70*time.Second), 1))
	if p := minuteOf(s, "f", m0.Add(time.Minute)); p.Invocations != 1 || p.Errors != 0 {
		t.Fatalf("the redriven run: %+v", p)
	}
}

func TestThrottlesErrorTypesAndTheWindow(t *testing.T) {
	s := New()
	ret := model.DefaultRetention()
	var recs []model.Invocation
	for i, typ := range []string{"A", "B", "C", "D", "E", "F", "G", "H", "I", "J", ""} {
		r := rec(string(rune('a'+i)), model.StatusFailed, m0, 1)
		r.ErrorType = typ
		recs = append(recs, r)
	}
	throttles := []model.ThrottleCount{
		{Function: "f", Minute: m0, Count: 2},
		{Namespace: "default", Function: "f", Minute: m0, Count: 3},
		{Namespace: "team", Function: "g", Minute: m0.Add(time.Minute), Count: 1},
	}
	s.AddRecords(recs, throttles, ret, m0)
	p := minuteOf(s, "f", m0)
	if p.Throttles != 5 || p.Errors != 11 || len(p.ErrorsByType) != maxErrorTypes+1 || p.ErrorsByType[OtherErrorType] != 3 {
		t.Fatalf("throttles and error types: %+v", p)
	}
	all := s.MetricSeries(AllNamespaces, "", m0, time.Minute, 2)
	if all[0].Throttles != 5 || all[1].Throttles != 1 || all[1].Invocations != 0 {
		t.Fatalf("every namespace: %+v", all)
	}
	if team := s.MetricSeries("team", "", m0, 2*time.Minute, 1)[0]; team.Throttles != 1 || team.Invocations != 0 {
		t.Fatalf("namespace team: %+v", team)
	}

	// 48 hours of batch time later, the minute is still there; one minute
	// more and it is gone, and a record that old is not counted.
	s.AddRecords(nil, nil, ret, m0.Add(MetricsRetention))
	if p := minuteOf(s, "f", m0); p.Invocations != 11 {
		t.Fatalf("at 48 h: %+v", p)
	}
	s.AddRecords([]model.Invocation{rec("late", model.StatusSuccess, m0, 1)}, nil, ret, m0.Add(MetricsRetention+time.Minute))
	if p := minuteOf(s, "f", m0); p.Invocations != 0 || p.Throttles != 0 {
		t.Fatalf("after 48 h: %+v", p)
	}
	f := s.metrics.byFunction["default/f"]
	if g := s.metrics.byFunction["team/g"]; f == nil || f.count(tierMinute, s.metrics.floor[tierMinute]) != 0 || g == nil || g.count(tierMinute, s.metrics.floor[tierMinute]) != 1 {
		t.Fatalf("minutes left: f %+v, g %+v; want g's minute only, a minute younger", f, g)
	}
	// The hour and the day keep f's 11 invocations, and the late record
	// too: they keep 90 days and 2 years.
	if u := s.Usage("default", "f", m0.Truncate(24*time.Hour), m0.Add(time.Hour), model.UsageTotal); u[0].Requests != 12 || u[0].Throttles != 5 {
		t.Fatalf("f's usage after its minutes went: %+v", u)
	}
}

func TestTheMetricHistorySurvivesASnapshot(t *testing.T) {
	s := New()
	r := rec("r1", model.StatusFailed, m0.Add(5*time.Second), 1234)
	r.ErrorType, r.ColdStart = "Sandbox.Timedout", true
	s.AddRecords([]model.Invocation{r, rec("r2", model.StatusSuccess, m0.Add(3*time.Minute), 0.5)},
		[]model.ThrottleCount{{Function: "f", Minute: m0, Count: 4}}, model.DefaultRetention(), m0.Add(5*time.Minute))
	again := restored(t, s)
	if a, b := s.MetricSeries("default", "f", m0, time.Minute, 5), again.MetricSeries("default", "f", m0, time.Minute, 5); !reflect.DeepEqual(a, b) {
		t.Fatalf("restored\n%+v\nwant\n%+v", b, a)
	}
	if again.metrics.now != s.metrics.now {
		t.Fatalf("the window restored at %d, not %d", again.metrics.now, s.metrics.now)
	}
	// Restoring counted nothing more, and a final record applied again
	// after the restore counts nothing either.
	again.AddRecords([]model.Invocation{r}, nil, model.DefaultRetention(), m0.Add(5*time.Minute))
	if p := minuteOf(again, "f", m0); p.Invocations != 1 || p.Throttles != 4 || p.ColdStarts != 1 || p.ErrorsByType["Sandbox.Timedout"] != 1 {
		t.Fatalf("after a restore: %+v", p)
	}
	stats := again.FunctionStats("default", m0, m0.Add(time.Hour))
	if len(stats) != 1 || stats[0].Invocations != 2 || stats[0].Throttles != 4 || !stats[0].LastInvoked.Equal(m0.Add(3*time.Minute)) {
		t.Fatalf("stats: %+v", stats)
	}
}

func TestQuantilesInterpolateWithinTheirBucket(t *testing.T) {
	var h [model.DurationBuckets]uint64
	if q := quantileMS(&h, 0.5); q != 0 {
		t.Fatalf("empty: %v", q)
	}
	// 100 durations in (10, 16] ms: the median is half way.
	h[durationBucket(12)] = 100
	if q := quantileMS(&h, 0.5); math.Abs(q-13) > 1e-9 {
		t.Fatalf("p50 = %v, want 13", q)
	}
	// One slow one in a hundred: p99 is still in the fast bucket, p100 the slow one's.
	h[durationBucket(12)] = 99
	h[durationBucket(2000)] = 1
	if q := quantileMS(&h, 0.99); q > 16 {
		t.Fatalf("p99 = %v, want within (10, 16]", q)
	}
	if q := quantileMS(&h, 1); q <= 1600 || q > 2500 {
		t.Fatalf("p100 = %v, want within (1600, 2500]", q)
	}
	// Beyond the last bound: the last bound.
	var over [model.DurationBuckets]uint64
	over[durationBucket(2e6)] = 3
	if q := quantileMS(&over, 0.5); q != 900000 {
		t.Fatalf("beyond 15 min: %v", q)
	}
	for _, c := range []struct {
		ms   float64
		want int
	}{{0, 0}, {1, 0}, {1.01, 1}, {900000, 30}, {900001, 31}} {
		if got := durationBucket(c.ms); got != c.want {
			t.Errorf("bucket of %v ms = %d, want %d", c.ms, got, c.want)
		}
	}
}
