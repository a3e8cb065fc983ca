package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// DepLayer is a function's dependency layer: what its requirements.txt
// resolved to, installed for its runtime and mounted at /opt/python.
type DepLayer struct {
	SHA256   string   `json:"sha256"`
	Size     int64    `json:"size"`     // of the zip
	Unpacked int64    `json:"unpacked"` // bytes of its files
	Runtime  string   `json:"runtime"`
	Packages []string `json:"packages,omitempty"` // NAME==VERSION, sorted
}

// Build statuses.
const (
	BuildSucceeded = "succeeded"
	BuildFailed    = "failed"
)

// Build is one dependency build of a deploy.
type Build struct {
	ID           string    `json:"id"`
	Namespace    string    `json:"namespace"`
	Function     string    `json:"function"`
	Runtime      string    `json:"runtime"`
	Requirements []string  `json:"requirements,omitempty"`
	Status       string    `json:"status"`
	CacheHit     bool      `json:"cache_hit"` // the layer was built before: nothing fetched
	Layer        *DepLayer `json:"layer,omitempty"`
	Error        string    `json:"error,omitempty"` // pip's message, when it failed
	StartedAt    time.Time `json:"started_at"`
	Duration     Duration  `json:"duration"`
	Log          string    `json:"log,omitempty"` // its tail (only from GetBuild)
}

// Builds lists the namespace's dependency builds, newest first; of one
// function when function is not "". Their logs are left out.
func (c *Client) Builds(ctx context.Context, function string) ([]Build, error) {
	q := url.Values{}
	if function != "" {
		q.Set("function", function)
	}
	var out struct {
		Builds []Build `json:"builds"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/builds", q, nil, &out)
	return out.Builds, err
}

// GetBuild returns a build with its log.
func (c *Client) GetBuild(ctx context.Context, id string) (Build, error) {
	var b Build
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/builds/"+url.PathEscape(id), nil, nil, &b)
	return b, err
}
