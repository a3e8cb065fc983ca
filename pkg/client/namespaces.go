package client

import (
	"context"
	"net/http"
	"net/url"
)

// Namespaces lists the namespaces the key may see: every one for an
// admin, its own for any other key.
func (c *Client) Namespaces(ctx context.Context) ([]Namespace, error) {
	var out struct {
		Namespaces []Namespace `json:"namespaces"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/namespaces", nil, nil, &out)
	return out.Namespaces, err
}

// PutNamespace creates a namespace or changes its settings (admin only);
// it reports whether the namespace was created.
func (c *Client) PutNamespace(ctx context.Context, ns Namespace) (Namespace, bool, error) {
	var out Namespace
	status, err := c.doJSON(ctx, http.MethodPut, "/v1/namespaces/"+url.PathEscape(ns.Name), nil, ns, &out)
	return out, status == http.StatusCreated, err
}

// DeleteNamespace removes an empty namespace (admin only).
func (c *Client) DeleteNamespace(ctx context.Context, name string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, "/v1/namespaces/"+url.PathEscape(name), nil, nil, nil)
	return err
}
