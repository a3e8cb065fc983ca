// Command usage measures the usage query on a long metric history: by
// default 1,000 functions in one namespace, each invoked once an hour
// for 90 days (2,160,000 invocations), committed as record batches
// through the real FSM into a real state store, so the minutes, hours
// and days are what a cluster would hold. It reports the time of a
// 90-day usage query of the namespace (one total, by day, by function)
// as p50/p99, its ratio to a one-hour query of the same namespace
// measured in the same run, and the heap the history takes: bytes per
// function and per bucket.
//
//	go run ./bench/usage [-functions 1000] [-days 90] [-every 1h] [-n 30] [-o json]
//
// -every sets how often each function is invoked (1h by default; 24h
// with -functions 100000 gives the many-functions case).
//
// Issue 19's goal: a usage query over 90 days answers in < 100 ms.
// Nothing here asserts it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"text/tabwriter"
	"time"

	"nimbus/bench/internal/stats"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

type result struct {
	Machine        stats.Machine            `json:"machine"`
	Functions      int                      `json:"functions"`
	Days           int                      `json:"days"`
	Every          string                   `json:"every"`
	Invocations    int                      `json:"invocations"`
	BuildSeconds   float64                  `json:"build_seconds"`
	HistoryBytes   uint64                   `json:"history_heap_bytes"`
	BytesPerFunc   float64                  `json:"bytes_per_function"`
	Queries        map[string]stats.Summary `json:"queries"`
	RatioToHourP50 map[string]float64       `json:"ratio_to_one_hour_p50"`
}

func main() {
	functions := flag.Int("functions", 1000, "functions in the namespace")
	days := flag.Int("days", 90, "days of history")
	every := flag.Duration("every", time.Hour, "how often each function is invoked")
	n := flag.Int("n", 30, "runs of each query")
	format := flag.String("o", "table", "output: table or json")
	flag.Parse()
	stats.Main("bench/usage", *format, func(ctx context.Context) (result, error) { return run(*functions, *days, *every, *n) }, table)
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func run(functions, days int, every time.Duration, n int) (result, error) {
	res := result{Machine: stats.ThisMachine(), Functions: functions, Days: days, Every: every.String()}
	store := state.New()
	f := fsm.New(store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w := fsm.Direct(f)
	before := heap()
	// Records are kept for an hour, and gone by the end: the history is
	// what is measured, not the records.
	ret := model.Retention{PerFunction: 1, MaxAge: time.Hour}
	now := time.Now().UTC().Truncate(time.Hour)
	start := now.Add(-time.Duration(days) * 24 * time.Hour)
	t0 := time.Now()
	batch := make([]model.Invocation, 0, 512)
	flush := func(at time.Time) error {
		if len(batch) == 0 {
			return nil
		}
		_, err := fsm.Apply(context.Background(), w, fsm.RecordInvocations{Records: batch, Retention: ret, Now: at})
		batch = batch[:0]
		return err
	}
	for h := start; h.Before(now); h = h.Add(every) {
		for i := range functions {
			at := h.Add(time.Duration(i) * every / time.Duration(functions))
			batch = append(batch, model.Invocation{ID: fmt.Sprintf("%d-%d", h.Unix(), i), Namespace: "bench", Function: fmt.Sprintf("fn-%05d", i),
				Status: model.StatusSuccess, Start: at, DurationMS: float64(1 + i%200), BilledMS: int64(1 + i%200), MemoryMB: 128, CPUMS: 0.5})
			res.Invocations++
			if len(batch) == cap(batch) {
				if err := flush(at); err != nil {
					return res, err
				}
			}
		}
	}
	if err := flush(now); err != nil {
		return res, err
	}
	// An empty batch two hours on: retention (an hour) removes the
	// records, so the heap measured is the history's.
	if _, err := fsm.Apply(context.Background(), w, fsm.RecordInvocations{Retention: ret, Now: now.Add(2 * time.Hour)}); err != nil {
		return res, err
	}
	res.BuildSeconds = stats.Round(time.Since(t0).Seconds())
	res.HistoryBytes = heap() - before
	res.BytesPerFunc = stats.Round(float64(res.HistoryBytes) / float64(functions))

	queries := []struct {
		name     string
		from, to time.Time
		by       string
	}{
		{"one_hour", now.Add(-time.Hour), now, model.UsageTotal},
		{"90d_total", now.Add(-90 * 24 * time.Hour), now, model.UsageTotal},
		{"90d_by_day", now.Add(-90 * 24 * time.Hour), now, model.UsageByDay},
		{"90d_by_function", now.Add(-90 * 24 * time.Hour), now, model.UsageByFunc},
		{"month_to_date_unaligned", now.Add(-17*24*time.Hour - 5*time.Hour - 17*time.Minute), now.Add(-3 * time.Minute), model.UsageTotal},
	}
	samples := map[string][]time.Duration{}
	// Interleaved, so that the queries share the machine's noise.
	for range n {
		for _, q := range queries {
			t := time.Now()
			rows := store.Usage("bench", "", q.from, q.to, q.by)
			samples[q.name] = append(samples[q.name], time.Since(t))
			if len(rows) == 0 {
				return res, fmt.Errorf("%s: no rows", q.name)
			}
		}
	}
	res.Queries = map[string]stats.Summary{}
	res.RatioToHourP50 = map[string]float64{}
	for _, q := range queries {
		res.Queries[q.name] = stats.Summarize(samples[q.name])
	}
	for _, q := range queries {
		res.RatioToHourP50[q.name] = stats.Ratio(res.Queries[q.name].P50MS, res.Queries["one_hour"].P50MS)
	}
	return res, nil
}

func table(w io.Writer, r result) {
	fmt.Fprintf(w, "%d functions, each invoked every %s for %d days: %d invocations (built in %.1f s); history heap %.1f MB, %.0f bytes a function\n",
		r.Functions, r.Every, r.Days, r.Invocations, r.BuildSeconds, float64(r.HistoryBytes)/1e6, r.BytesPerFunc)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "QUERY\tP50 MS\tP99 MS\tRATIO TO ONE HOUR (P50)")
	for _, name := range []string{"one_hour", "90d_total", "90d_by_day", "90d_by_function", "month_to_date_unaligned"} {
		s := r.Queries[name]
		fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.1f\n", name, s.P50MS, s.P99MS, r.RatioToHourP50[name])
	}
	tw.Flush()
}
