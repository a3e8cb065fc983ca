package state

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"

	"nimbus/internal/model"
)

// metered is a successful record of fn that billed ms at mem MB.
func metered(id, fn string, start time.Time, billed int64, mem int) model.Invocation {
	return model.Invocation{ID: id, Namespace: "team", Function: fn, Status: model.StatusSuccess, Start: start,
		DurationMS: float64(billed) - 0.5, BilledMS: billed, MemoryMB: mem, MaxMemoryMB: mem / 2, CPUMS: 0.25}
}

// Invocations a minute either side of midnight land in their own minute,
// hour and day, and the day's and hour's totals outlive both the records
// (retention) and the minutes (48 h).
func TestRollupsAcrossMinuteHourAndDayBoundariesOutliveRecords(t *testing.T) {
	s := New()
	ret := model.Retention{PerFunction: 1000, MaxAge: time.Hour}
	midnight := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	var recs []model.Invocation
	for i := range 3 {
		recs = append(recs, metered(fmt.Sprintf("before-%d", i), "f", midnight.Add(-30*time.Second), 100, 1024))
	}
	for i := range 2 {
		recs = append(recs, metered(fmt.Sprintf("after-%d", i), "f", midnight.Add(30*time.Second+time.Duration(i)*time.Hour), 2000, 512))
	}
	s.AddRecords(recs, nil, ret, midnight.Add(2*time.Hour))
	days := s.Usage("team", "", midnight.Add(-24*time.Hour), midnight.Add(24*time.Hour), model.UsageByDay)
	if len(days) != 2 || days[0].Requests != 3 || days[1].Requests != 2 || !days[1].Start.Equal(midnight) {
		t.Fatalf("by day: %+v", days)
	}
	// 3 × 100 ms at 1 GB, and 2 × 2 s at half a GB.
	if days[0].MBMS != 3*100*1024 || days[0].GBSeconds != 0.3 || days[1].GBSeconds != 2 || days[1].BilledMS != 4000 {
		t.Fatalf("metering by day: %+v", days)
	}
	hours := s.Usage("team", "f", midnight.Add(-time.Hour), midnight.Add(2*time.Hour), model.UsageByHour)
	if len(hours) != 3 || hours[0].Requests != 3 || hours[1].Requests != 1 || hours[2].Requests != 1 {
		t.Fatalf("by hour: %+v", hours)
	}
	if p := s.MetricSeries("team", "f", midnight.Add(-time.Minute), time.Minute, 2); p[0].Invocations != 3 || p[1].Invocations != 1 {
		t.Fatalf("minutes: %+v", p)
	}

	// Three days later the records are gone (an hour's retention) and
	// so are the minutes; the hours and days are not.
	later := midnight.Add(72 * time.Hour)
	s.AddRecords(nil, nil, ret, later)
	if recs := s.Records(RecordQuery{Namespace: "team"}); len(recs) != 0 {
		t.Fatalf("records kept past retention: %d", len(recs))
	}
	if p := s.MetricSeries("team", "f", midnight.Add(-time.Minute), time.Minute, 2); p[0].Invocations != 0 {
		t.Fatalf("minutes kept past 48 h: %+v", p)
	}
	again := s.Usage("team", "", midnight.Add(-24*time.Hour), midnight.Add(24*time.Hour), model.UsageByDay)
	if !reflect.DeepEqual(again, days) {
		t.Fatalf("by day after the records went:\n%+v\nwant\n%+v", again, days)
	}
	if h := s.Usage("team", "f", midnight.Add(-time.Hour), midnight.Add(2*time.Hour), model.UsageByHour); !reflect.DeepEqual(h, hours) {
		t.Fatalf("by hour after the minutes went:\n%+v\nwant\n%+v", h, hours)
	}
	// An hourly series over the same window reads the hours.
	if p := s.MetricSeries("team", "f", midnight.Add(-time.Hour), time.Hour, 3); p[0].Invocations != 3 || p[1].Invocations != 1 || p[0].CPUSeconds != 0.00075 {
		t.Fatalf("hourly series: %+v", p)
	}
}

// A window that does not fall on day boundaries reads whole days in the
// middle and hours and minutes at its edges, counting each invocation
// once.
func TestUsageOverAnUnalignedWindowCountsEachInvocationOnce(t *testing.T) {
	s := New()
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	now := base.Add(10*24*time.Hour + 13*time.Hour + 17*time.Minute)
	var recs []model.Invocation
	// One invocation every 7 minutes for the ten and a half days.
	for at := base; at.Before(now); at = at.Add(7 * time.Minute) {
		recs = append(recs, metered(at.Format(time.RFC3339), "f", at, 1, 128))
	}
	s.AddRecords(recs, nil, model.DefaultRetention(), now)
	for _, w := range [][2]time.Time{
		{base, now},
		{base.Add(5*time.Hour + 3*time.Minute), now},
		{base.Add(25*time.Hour + 59*time.Minute), now.Add(-26*time.Hour - 11*time.Minute)},
		{now.Add(-90 * time.Minute), now.Add(-30 * time.Minute)},
	} {
		want := 0
		for _, r := range recs {
			if !r.Start.Before(w[0]) && r.Start.Before(w[1]) {
				want++
			}
		}
		got := s.Usage("team", "", w[0], w[1], model.UsageTotal)
		// A start older than the minutes' 48 h is read from its hour.
		lo := w[0]
		if lo.Before(now.Add(-MetricsRetention)) {
			lo = lo.Truncate(time.Hour)
		}
		want = 0
		for _, r := range recs {
			if !r.Start.Before(lo) && r.Start.Before(w[1]) {
				want++
			}
		}
		if got[0].Requests != int64(want) {
			t.Errorf("window %s..%s: %d requests, want %d", w[0].Format(time.RFC3339), w[1].Format(time.RFC3339), got[0].Requests, want)
		}
	}
}

// A batch's retentions apply: with hours kept 3 hours, an hour older is
// gone and the days still hold it; they survive a snapshot.
func TestMetricRetentionsComeWithTheBatchAndASnapshot(t *testing.T) {
	s := New()
	ret := model.DefaultRetention()
	ret.MetricMinutes, ret.MetricHours = time.Hour, 3*time.Hour
	s.AddRecords([]model.Invocation{metered("a", "f", m0, 10, 128)}, nil, ret, m0)
	s.AddRecords(nil, nil, ret, m0.Add(4*time.Hour))
	h := s.metrics.byFunction["team/f"]
	if h == nil || h.count(tierMinute, s.metrics.floor[tierMinute]) != 0 || h.count(tierHour, s.metrics.floor[tierHour]) != 0 || h.count(tierDay, s.metrics.floor[tierDay]) != 1 {
		t.Fatalf("tiers after 4 h: %+v", h)
	}
	if tier, step := s.TierFor(m0); tier != "day" || step != 24*time.Hour {
		t.Fatalf("tier for 4 h ago: %s %s", tier, step)
	}
	again := restored(t, s)
	if m, hr, d := again.MetricRetention(); m != time.Hour || hr != 3*time.Hour || d != DayMetricsRetention {
		t.Fatalf("restored retentions %s %s %s", m, hr, d)
	}
	day := m0.Truncate(24 * time.Hour)
	if a, b := s.Usage("team", "", day, day.Add(24*time.Hour), model.UsageByFunc), again.Usage("team", "", day, day.Add(24*time.Hour), model.UsageByFunc); !reflect.DeepEqual(a, b) || len(a) != 1 || a[0].MBMS != 1280 {
		t.Fatalf("restored usage %+v, want %+v", b, a)
	}
}

// Percentiles from the histogram are within 1% of the exact ones on a
// known distribution: 100,000 durations spread evenly over 1..1000 ms.
func TestPercentilesFromTheHistogramAreWithinOnePercent(t *testing.T) {
	s := New()
	var recs []model.Invocation
	const n = 100_000
	for i := range n {
		r := rec(fmt.Sprint(i), model.StatusSuccess, m0.Add(time.Duration(i)*time.Millisecond), 1+999*float64(i)/(n-1))
		recs = append(recs, r)
	}
	s.AddRecords(recs, nil, model.DefaultRetention(), m0.Add(time.Hour))
	u := s.Usage("default", "f", m0, m0.Add(time.Hour), model.UsageTotal)[0]
	for _, c := range []struct {
		name       string
		got, exact float64
	}{{"p50", u.P50MS, 1 + 999*0.50}, {"p90", u.P90MS, 1 + 999*0.90}, {"p99", u.P99MS, 1 + 999*0.99}} {
		if math.Abs(c.got-c.exact)/c.exact > 0.01 {
			t.Errorf("%s = %.2f ms, exact %.2f ms: off by more than 1%%", c.name, c.got, c.exact)
		}
	}
}

// Grouped by namespace or function, a selection lists only what it
// covers; the admin's AllNamespaces covers every namespace.
func TestUsageSelectsByNamespaceAndFunction(t *testing.T) {
	s := New()
	a := metered("a", "f", m0, 10, 128)
	b := metered("b", "g", m0, 20, 256)
	c := metered("c", "f", m0, 30, 512)
	c.Namespace = "other"
	s.AddRecords([]model.Invocation{a, b, c}, nil, model.DefaultRetention(), m0)
	byFn := s.Usage("team", "", m0, m0.Add(time.Hour), model.UsageByFunc)
	if len(byFn) != 2 || byFn[0].Function != "f" || byFn[1].Function != "g" || byFn[1].BilledMS != 20 {
		t.Fatalf("team by function: %+v", byFn)
	}
	byNS := s.Usage(AllNamespaces, "", m0, m0.Add(time.Hour), model.UsageByNS)
	if len(byNS) != 2 || byNS[0].Namespace != "other" || byNS[0].MBMS != 30*512 || byNS[1].Requests != 2 {
		t.Fatalf("every namespace: %+v", byNS)
	}
	if none := s.Usage("nobody", "", m0, m0.Add(time.Hour), model.UsageTotal); len(none) != 1 || none[0].Requests != 0 {
		t.Fatalf("an empty namespace: %+v", none)
	}
}

// restored is a new store restored from a snapshot of s.
func restored(t *testing.T, s *Store) *Store {
	t.Helper()
	var buf bytes.Buffer
	if _, err := s.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	again := New()
	if err := again.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	return again
}

// Provisioned instances are metered for the time their function asks
// for them, at the configuration of the earlier batch: two 512 MB
// instances for 10 minutes are 600 GB-s, across a minute boundary and
// through a snapshot; none once the function stops asking.
func TestProvisionedInstancesAreMeteredForTheTimeTheyAreAskedFor(t *testing.T) {
	s := New()
	ret := model.DefaultRetention()
	fn := model.Function{Namespace: "team", FunctionConfig: model.FunctionConfig{Name: "warm", Runtime: "python3.11", Handler: "main.handler", MemoryMB: 512, Provisioned: 2}, CodeSHA256: "aa"}
	s.mu.Lock()
	s.namespaces["team"] = &model.Namespace{Name: "team"}
	s.mu.Unlock()
	if _, _, err := s.UpsertFunction(fn, m0); err != nil {
		t.Fatal(err)
	}
	start := m0.Add(30 * time.Second)
	s.AddRecords(nil, nil, ret, start)
	s.AddRecords(nil, nil, ret, start.Add(4*time.Minute))
	again := restored(t, s)
	for _, st := range []*Store{s, again} {
		st.AddRecords(nil, nil, ret, start.Add(10*time.Minute))
		u := st.Usage("team", "warm", m0, m0.Add(time.Hour), model.UsageTotal)[0]
		if u.ProvisionedGBSeconds != 600 || u.ProvisionedMBMS != 2*512*600_000 || u.Requests != 0 {
			t.Fatalf("10 minutes of two 512 MB instances: %+v", u)
		}
		mins := st.MetricSeries("team", "warm", m0, time.Minute, 11)
		if mins[0].ProvisionedGBSeconds != 30 || mins[1].ProvisionedGBSeconds != 60 || mins[10].ProvisionedGBSeconds != 30 {
			t.Fatalf("by the minute: %v %v %v", mins[0].ProvisionedGBSeconds, mins[1].ProvisionedGBSeconds, mins[10].ProvisionedGBSeconds)
		}
	}
	// It stops asking: metered to the next batch, then no more.
	fn.Provisioned = 0
	s.UpsertFunction(fn, m0)
	s.AddRecords(nil, nil, ret, start.Add(11*time.Minute))
	s.AddRecords(nil, nil, ret, start.Add(30*time.Minute))
	if u := s.Usage("team", "warm", m0, m0.Add(time.Hour), model.UsageTotal)[0]; u.ProvisionedGBSeconds != 660 {
		t.Fatalf("after it stopped asking: %v GB-s, want 660", u.ProvisionedGBSeconds)
	}
}
