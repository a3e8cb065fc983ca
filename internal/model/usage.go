package model

import "time"

// Usage groupings: what one usage row adds up.
const (
	UsageTotal  = ""          // one row for everything selected
	UsageByDay  = "day"       // a row per UTC day
	UsageByHour = "hour"      // a row per hour
	UsageByFunc = "function"  // a row per function
	UsageByNS   = "namespace" // a row per namespace
)

// UsageRow is what the invocations of a selection did and used over a
// window, from the metric history (so it outlives the records): one
// namespace or function, or one day or hour, as the grouping asks.
type UsageRow struct {
	Namespace string    `json:"namespace,omitempty"` // set when grouped by namespace or function
	Function  string    `json:"function,omitempty"`  // set when grouped by function
	Start     time.Time `json:"start,omitzero"`      // the day or hour, when grouped by one
	// Requests are the invocations (Lambda's billed requests): every
	// invocation that ran, its errors included, throttles not.
	Requests     int64            `json:"requests"`
	Errors       int64            `json:"errors"`
	ErrorsByType map[string]int64 `json:"errors_by_type,omitempty"`
	Throttles    int64            `json:"throttles"`
	ColdStarts   int64            `json:"cold_starts"`
	BilledMS     int64            `json:"billed_ms"`
	// MBMS is billed ms times memory size in MB, exact; GBSeconds is
	// MBMS / 1,024,000.
	MBMS        int64   `json:"mb_ms"`
	GBSeconds   float64 `json:"gb_seconds"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	MaxMemoryMB int64   `json:"max_memory_mb"`
	P50MS       float64 `json:"p50_ms"`
	P90MS       float64 `json:"p90_ms"`
	P99MS       float64 `json:"p99_ms"`
	AvgMS       float64 `json:"avg_ms"`
}

// MBMSPerGBSecond is how many MB·ms make a GB-second.
const MBMSPerGBSecond = 1024 * 1000
