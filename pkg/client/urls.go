package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Function URL authentication modes.
const (
	URLAuthNone = "none" // anyone may call the URL
	URLAuthKey  = "key"  // the caller needs a key (or session) that may invoke the function
)

// FunctionURL is a function's HTTP endpoint: any request to URL (or a
// path below it) runs the function with the request as an
// API-Gateway-v2-style event.
type FunctionURL struct {
	Namespace string `json:"namespace"`
	Function  string `json:"function"`
	Auth      string `json:"auth"` // URLAuthNone or URLAuthKey (the default)
	CORS      *CORS  `json:"cors,omitempty"`
	// RateLimit is the requests per second the URL takes without a key
	// (auth none); 0: the server's default per-key rate.
	RateLimit float64   `json:"rate_limit,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// URL is the endpoint on the server that answered (every server
	// serves it); an answer field, ignored in requests.
	URL string `json:"url,omitempty"`
}

// CORS is a function URL's cross-origin policy, applied by the platform.
type CORS struct {
	AllowOrigins     []string `json:"allow_origins"` // origins, or "*"
	AllowMethods     []string `json:"allow_methods,omitempty"`
	AllowHeaders     []string `json:"allow_headers,omitempty"`
	ExposeHeaders    []string `json:"expose_headers,omitempty"`
	MaxAge           int      `json:"max_age,omitempty"` // seconds
	AllowCredentials bool     `json:"allow_credentials,omitempty"`
}

func urlPath(function string) string { return "/v1/functions/" + url.PathEscape(function) + "/url" }

// PutFunctionURL creates or replaces a function's URL (u.Function names
// the function); it reports whether the URL is new.
func (c *Client) PutFunctionURL(ctx context.Context, u FunctionURL) (FunctionURL, bool, error) {
	var out FunctionURL
	status, err := c.doJSON(ctx, http.MethodPut, urlPath(u.Function), nil, u, &out)
	return out, status == http.StatusCreated, err
}

// GetFunctionURL describes a function's URL.
func (c *Client) GetFunctionURL(ctx context.Context, function string) (FunctionURL, error) {
	var out FunctionURL
	_, err := c.doJSON(ctx, http.MethodGet, urlPath(function), nil, nil, &out)
	return out, err
}

// DeleteFunctionURL removes a function's URL (the function stays).
func (c *Client) DeleteFunctionURL(ctx context.Context, function string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, urlPath(function), nil, nil, nil)
	return err
}

// FunctionURLs lists the namespace's function URLs.
func (c *Client) FunctionURLs(ctx context.Context) ([]FunctionURL, error) {
	var out struct {
		URLs []FunctionURL `json:"urls"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/urls", nil, nil, &out)
	return out.URLs, err
}
