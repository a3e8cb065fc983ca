package model

import "time"

// DurationBoundsMS are the upper bounds, in milliseconds, of the duration
// histogram the metric history keeps per function and minute: fixed and
// log-spaced, five per decade (1, 1.6, 2.5, 4, 6.3 times a power of ten)
// from 1 ms to 900,000 ms (15 minutes, the longest timeout). A duration d
// counts in the first bucket whose bound is >= d; one beyond the last
// bound counts in one more bucket (DurationBuckets in all). The bounds
// are literals, never computed, so every server buckets a duration alike.
// Append only: the stored histograms count by index.
var DurationBoundsMS = [...]float64{
	1, 1.6, 2.5, 4, 6.3,
	10, 16, 25, 40, 63,
	100, 160, 250, 400, 630,
	1000, 1600, 2500, 4000, 6300,
	10000, 16000, 25000, 40000, 63000,
	100000, 160000, 250000, 400000, 630000,
	900000,
}

// DurationBuckets is the number of buckets of a duration histogram: one
// per bound and one beyond the last.
const DurationBuckets = len(DurationBoundsMS) + 1

// MetricMinute is one function's figures for one minute (or hour, or
// day: the same shape serves every tier, Minute its start) of the metric
// history, as snapshots store it: the invocations whose records reached
// a final status (success, failed, dead_letter) with a start in it, and
// the throttles counted in it.
type MetricMinute struct {
	Minute      time.Time        `json:"minute"` // its start (UTC)
	Invocations int64            `json:"invocations"`
	Errors      int64            `json:"errors"` // failed or dead_letter
	ErrorTypes  []ErrorTypeCount `json:"error_types,omitempty"`
	Throttles   int64            `json:"throttles"`
	ColdStarts  int64            `json:"cold_starts"`
	// DurationSumMS sums the invocations' durations; Durations counts
	// them by bucket of DurationBoundsMS (trailing empty buckets left
	// out).
	DurationSumMS float64 `json:"duration_sum_ms"`
	Durations     []int64 `json:"durations,omitempty"`
	// LastStart is the latest start of the invocations counted.
	LastStart time.Time `json:"last_start,omitzero"`
	// What the invocations used: billed milliseconds, billed ms times
	// the memory size in MB (1,024,000 MB·ms make a GB-second), CPU time
	// in microseconds, and the most memory one of them used.
	BilledMS    int64 `json:"billed_ms,omitempty"`
	MBMS        int64 `json:"mb_ms,omitempty"`
	CPUUS       int64 `json:"cpu_us,omitempty"`
	MaxMemoryMB int64 `json:"max_memory_mb,omitempty"`
	// ProvisionedMBMS is the provisioned instances' time (ms) times
	// their memory size (MB).
	ProvisionedMBMS int64 `json:"provisioned_mb_ms,omitempty"`
}

// ProvisionedSample is a function with provisioned instances, as the
// metering samples it at a record batch.
type ProvisionedSample struct {
	Namespace string `json:"namespace"`
	Function  string `json:"function"`
	Instances int    `json:"instances"`
	MemoryMB  int    `json:"memory_mb"`
}

// ErrorTypeCount counts the errors of one error type.
type ErrorTypeCount struct {
	Type  string `json:"type"`
	Count int64  `json:"count"`
}

// MetricHistory is one function's minutes, hours and days, oldest
// first, as snapshots store them.
type MetricHistory struct {
	Namespace string         `json:"namespace"`
	Function  string         `json:"function"`
	Minutes   []MetricMinute `json:"minutes"`
	Hours     []MetricMinute `json:"hours,omitempty"`
	Days      []MetricMinute `json:"days,omitempty"`
	// Total is the function's lifetime totals (Minute unused).
	Total *MetricMinute `json:"total,omitempty"`
}

// ThrottleCount counts the invocations of a function refused with 429
// (a concurrency limit, every worker busy, a function URL's rate) in one
// minute, as a server's record batch carries them.
type ThrottleCount struct {
	Namespace string    `json:"namespace,omitempty"` // "": the default namespace
	Function  string    `json:"function"`
	Minute    time.Time `json:"minute"` // its start (UTC)
	Count     int64     `json:"count"`
}

// MetricPoint is one step of a metric series: what the functions it
// covers did in [Time, Time+step).
type MetricPoint struct {
	Time         time.Time        `json:"time"` // start of the step
	Invocations  int64            `json:"invocations"`
	Errors       int64            `json:"errors"`
	ErrorsByType map[string]int64 `json:"errors_by_type,omitempty"`
	Throttles    int64            `json:"throttles"`
	ColdStarts   int64            `json:"cold_starts"`
	P50MS        float64          `json:"p50_ms"` // 0 when no invocations
	P90MS        float64          `json:"p90_ms"`
	P99MS        float64          `json:"p99_ms"`
	AvgMS        float64          `json:"avg_ms"`
	// What the invocations used: billed duration, GB-seconds (billed
	// duration times memory size), CPU time from their cgroups, and the
	// most memory one of them used.
	BilledMS    int64   `json:"billed_ms"`
	GBSeconds   float64 `json:"gb_seconds"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	MaxMemoryMB int64   `json:"max_memory_mb"`
	// ProvisionedGBSeconds is the provisioned instances' time times
	// their memory size.
	ProvisionedGBSeconds float64 `json:"provisioned_gb_seconds"`
}

// FunctionStats are one function's totals over a window.
type FunctionStats struct {
	Namespace, Function                        string
	Invocations, Errors, Throttles, ColdStarts int64
	LastInvoked                                time.Time // zero if none within the window
	P99MS                                      float64
}

// FunctionTotals are one function's lifetime figures from the metric
// history (while it has history), as /metrics reports them.
type FunctionTotals struct {
	Namespace, Function                        string
	Invocations, Errors, Throttles, ColdStarts int64
	DurationSumMS                              float64
	Durations                                  [DurationBuckets]uint64 // by bucket of DurationBoundsMS
	BilledMS, MBMS, CPUUS, ProvisionedMBMS     int64
}
