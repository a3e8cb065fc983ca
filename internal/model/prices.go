package model

// PriceTable is what running functions costs, in Lambda's pricing
// dimensions and one currency. The cluster has one (DefaultPrices until
// an admin sets it), and a namespace may override it.
type PriceTable struct {
	Currency               string  `json:"currency"`                  // ISO 4217, e.g. USD
	PerGBSecond            float64 `json:"per_gb_second"`             // billed duration × memory
	PerMillionRequests     float64 `json:"per_million_requests"`      // invocations
	PerProvisionedGBSecond float64 `json:"per_provisioned_gb_second"` // provisioned instances' ready time × memory
	// The monthly free tier, taken off a month's usage before pricing
	// (zero: none).
	FreeGBSeconds float64 `json:"free_gb_seconds,omitempty"`
	FreeRequests  int64   `json:"free_requests,omitempty"`
}

// DefaultPrices are AWS Lambda's public x86 prices in USD (us-east-1, the
// first tier), with no free tier.
func DefaultPrices() PriceTable {
	return PriceTable{Currency: "USD", PerGBSecond: 0.0000166667, PerMillionRequests: 0.20, PerProvisionedGBSecond: 0.0000041667}
}

// LambdaFreeTier is Lambda's monthly free tier: 400,000 GB-seconds and
// one million requests.
const (
	LambdaFreeGBSeconds = 400_000
	LambdaFreeRequests  = 1_000_000
)
