package client

import (
	"context"
	"net/http"
	"net/url"
)

// PriceTable is what running functions costs (see docs/spec.md §13).
type PriceTable struct {
	Currency               string  `json:"currency"`
	PerGBSecond            float64 `json:"per_gb_second"`
	PerMillionRequests     float64 `json:"per_million_requests"`
	PerProvisionedGBSecond float64 `json:"per_provisioned_gb_second"`
	FreeGBSeconds          float64 `json:"free_gb_seconds,omitempty"`
	FreeRequests           int64   `json:"free_requests,omitempty"`
}

// Prices is the price table that applies to a namespace, and where it
// came from: "namespace" (its own), "cluster" (set by an admin) or
// "default" (AWS Lambda's public x86 prices).
type Prices struct {
	Namespace string `json:"namespace,omitempty"` // "" for the cluster's table
	Source    string `json:"source"`
	PriceTable
}

func pricesPath(namespace string) string {
	if namespace == "" {
		return "/v1/prices"
	}
	return "/v1/namespaces/" + url.PathEscape(namespace) + "/prices"
}

// Prices returns the prices that apply to the client's namespace, or,
// with cluster, the cluster's table.
func (c *Client) Prices(ctx context.Context, cluster bool) (Prices, error) {
	var q url.Values
	if cluster {
		q = url.Values{"cluster": {"1"}}
	}
	var out Prices
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/prices", q, nil, &out)
	return out, err
}

// SetPrices (admin) sets the cluster's price table (namespace "") or a
// namespace's own.
func (c *Client) SetPrices(ctx context.Context, namespace string, p PriceTable) (Prices, error) {
	var out Prices
	_, err := c.doJSON(ctx, http.MethodPut, pricesPath(namespace), nil, p, &out)
	return out, err
}

// ResetPrices (admin) removes a namespace's own prices (namespace "":
// the cluster's, back to the default).
func (c *Client) ResetPrices(ctx context.Context, namespace string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, pricesPath(namespace), nil, nil, nil)
	return err
}
