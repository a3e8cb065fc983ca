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
	MBMS      int64   `json:"mb_ms"`
	GBSeconds float64 `json:"gb_seconds"`
	// The provisioned instances' time × memory size (not in MBMS).
	ProvisionedMBMS      int64   `json:"provisioned_mb_ms"`
	ProvisionedGBSeconds float64 `json:"provisioned_gb_seconds"`
	CPUSeconds           float64 `json:"cpu_seconds"`
	MaxMemoryMB          int64   `json:"max_memory_mb"`
	P50MS                float64 `json:"p50_ms"`
	P90MS                float64 `json:"p90_ms"`
	P99MS                float64 `json:"p99_ms"`
	AvgMS                float64 `json:"avg_ms"`
}

// MBMSPerGBSecond is how many MB·ms make a GB-second.
const MBMSPerGBSecond = 1024 * 1000

// CostReport is what a month's usage costs, per namespace at the prices
// that apply to it, with a forecast for the whole month.
type CostReport struct {
	Month string    `json:"month"` // YYYY-MM (UTC)
	From  time.Time `json:"from"`  // the month's start
	To    time.Time `json:"to"`    // its end, or now for the current month
	// Complete is true for a month that has ended.
	Complete   bool            `json:"complete"`
	Namespaces []NamespaceCost `json:"namespaces"`
}

// NamespaceCost is one namespace's month: what it used, what the free
// tier took off, what the rest costs, and the forecast.
type NamespaceCost struct {
	Namespace string     `json:"namespace"`
	Prices    PriceTable `json:"prices"`
	Requests  int64      `json:"requests"`
	GBSeconds float64    `json:"gb_seconds"`
	// What is left to pay for after the month's free tier.
	BilledRequests  int64   `json:"billed_requests"`
	BilledGBSeconds float64 `json:"billed_gb_seconds"`
	// Provisioned instances' GB-seconds (no free tier applies).
	ProvisionedGBSeconds float64 `json:"provisioned_gb_seconds"`
	RequestCost          float64 `json:"request_cost"`
	ComputeCost          float64 `json:"compute_cost"`
	ProvisionedCost      float64 `json:"provisioned_cost"`
	Total                float64 `json:"total"`
	// Forecast is the whole month's cost at the recent rate (the last
	// seven days, or the month so far when shorter), taken over the rest
	// of the month; a complete month's forecast is its total.
	Forecast Forecast `json:"forecast"`
}

// Forecast is a month's usage and cost projected to its end.
type Forecast struct {
	Requests             int64   `json:"requests"`
	GBSeconds            float64 `json:"gb_seconds"`
	ProvisionedGBSeconds float64 `json:"provisioned_gb_seconds"`
	Total                float64 `json:"total"`
}

// Price prices a month's requests and GB-seconds at p, free tier taken
// off first.
func (p PriceTable) Price(requests int64, gbSeconds float64) (billedReq int64, billedGBs, requestCost, computeCost float64) {
	billedReq = max(requests-p.FreeRequests, 0)
	billedGBs = max(gbSeconds-p.FreeGBSeconds, 0)
	return billedReq, billedGBs, float64(billedReq) / 1e6 * p.PerMillionRequests, billedGBs * p.PerGBSecond
}
