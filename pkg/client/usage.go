package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Usage groupings (UsageQuery.By).
const (
	UsageByDay      = "day"
	UsageByHour     = "hour"
	UsageByFunction = "function"
	UsageByNS       = "namespace"
)

// Usage is what GET /v1/usage answers: rows over [Since, Until).
type Usage struct {
	Since time.Time  `json:"since"`
	Until time.Time  `json:"until"`
	By    string     `json:"by,omitempty"`
	Rows  []UsageRow `json:"rows"`
}

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

// UsageQuery selects usage: a function ("" for all), a window (zero
// Since: the current month's start; zero Until: now), a grouping, and
// (admins) every namespace rather than the one the client acts in.
type UsageQuery struct {
	Function      string
	Since, Until  time.Time
	By            string
	AllNamespaces bool
}

// Usage returns what the namespace (or, for an admin with AllNamespaces,
// every namespace) used over a window, from the cluster's metric history.
func (c *Client) Usage(ctx context.Context, q UsageQuery) (Usage, error) {
	v := url.Values{}
	if q.Function != "" {
		v.Set("function", q.Function)
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.By != "" {
		v.Set("by", q.By)
	}
	if q.AllNamespaces {
		v.Set("all", "1")
	}
	var out Usage
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/usage", v, nil, &out)
	return out, err
}

// Cost returns what month ("YYYY-MM"; "" for the current one) costs and
// will cost, for the namespace or (admins) every one.
func (c *Client) Cost(ctx context.Context, month string, allNamespaces bool) (CostReport, error) {
	v := url.Values{}
	if month != "" {
		v.Set("month", month)
	}
	if allNamespaces {
		v.Set("all", "1")
	}
	var out CostReport
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/usage/cost", v, nil, &out)
	return out, err
}
