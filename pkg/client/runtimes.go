package client

import (
	"context"
	"net/http"
)

// RuntimeOffer is a Python runtime and the healthy workers that offer it.
type RuntimeOffer struct {
	Name    string   `json:"name"`    // python3.N
	Workers []string `json:"workers"` // worker IDs, sorted
}

// Runtimes lists the Python runtimes the cluster's healthy workers
// offer, newest first: a function may name any of them.
func (c *Client) Runtimes(ctx context.Context) ([]RuntimeOffer, error) {
	var out struct {
		Runtimes []RuntimeOffer `json:"runtimes"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/runtimes", nil, nil, &out)
	return out.Runtimes, err
}
