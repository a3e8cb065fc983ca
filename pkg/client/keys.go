package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Key is an API key as the API shows it; Secret (the key itself) is set
// only in the answer that creates it.
type Key struct {
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	Namespace string    `json:"namespace,omitempty"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RateLimit float64   `json:"rate_limit,omitempty"`
	Secret    string    `json:"key,omitempty"`
}

// KeyRequest asks for a new key.
type KeyRequest struct {
	Role      string  `json:"role"`
	Namespace string  `json:"namespace,omitempty"` // developer and viewer keys; default "default"
	Expires   string  `json:"expires,omitempty"`   // e.g. "30d", "12h"
	RateLimit float64 `json:"rate_limit,omitempty"`
	Note      string  `json:"note,omitempty"`
}

// CreateKey makes a key (admin only).
func (c *Client) CreateKey(ctx context.Context, req KeyRequest) (Key, error) {
	var out Key
	_, err := c.doJSON(ctx, http.MethodPost, "/v1/keys", nil, req, &out)
	return out, err
}

// Keys lists keys, without their secrets.
func (c *Client) Keys(ctx context.Context) ([]Key, error) {
	var out struct {
		Keys []Key `json:"keys"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/keys", nil, nil, &out)
	return out.Keys, err
}

// RevokeKey deletes a key.
func (c *Client) RevokeKey(ctx context.Context, id string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, "/v1/keys/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// Audit returns the newest audit entries, oldest first (admin only).
func (c *Client) Audit(ctx context.Context, limit int) ([]AuditEntry, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var out struct {
		Audit []AuditEntry `json:"audit"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/audit", q, nil, &out)
	return out.Audit, err
}

// JoinTokenRequest asks for a join token.
type JoinTokenRequest struct {
	Role string `json:"role,omitempty"` // worker (default) or server
	TTL  string `json:"ttl,omitempty"`  // e.g. "1h" (default), "2d"
	Note string `json:"note,omitempty"`
}

// CreateJoinToken makes a join token (admin only): Secret is the token a
// new worker or server presents once to get its certificate.
func (c *Client) CreateJoinToken(ctx context.Context, req JoinTokenRequest) (Key, error) {
	var out Key
	_, err := c.doJSON(ctx, http.MethodPost, "/v1/cluster/tokens", nil, req, &out)
	return out, err
}
