package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// MetricPoint is one step of a metric series, from the cluster's
// replicated per-minute history: what the functions it covers did in
// [Time, Time+step).
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

// MetricValue is one step of one metric's series.
type MetricValue struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"`
}

// MetricSeries returns the points of one function ("" for the whole
// namespace) over the last window (0: 1h; at most 48h), one per step (0:
// 1m; whole minutes; at most 1,500 points).
func (c *Client) MetricSeries(ctx context.Context, function string, window, step time.Duration) ([]MetricPoint, error) {
	q := url.Values{}
	if function != "" {
		q.Set("function", function)
	}
	if window > 0 {
		q.Set("window", window.String())
	}
	if step > 0 {
		q.Set("step", step.String())
	}
	var out struct {
		Points []MetricPoint `json:"points"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/metrics/query", q, nil, &out)
	return out.Points, err
}
