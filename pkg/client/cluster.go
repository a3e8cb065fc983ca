package client

import (
	"context"
	"net/http"
	"net/url"
)

// JoinServer adds the server whose API answers at address to the
// cluster, as a voter unless nonvoter. It returns the server's ID.
func (c *Client) JoinServer(ctx context.Context, address string, nonvoter bool) (string, error) {
	var out struct {
		ID string `json:"id"`
	}
	in := map[string]any{"address": address, "nonvoter": nonvoter}
	_, err := c.doJSON(ctx, http.MethodPost, "/v1/cluster/servers", nil, in, &out)
	return out.ID, err
}

// RemoveServer removes a server from the cluster.
func (c *Client) RemoveServer(ctx context.Context, id string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, "/v1/cluster/servers/"+url.PathEscape(id), nil, nil, nil)
	return err
}

// DrainWorker stops a worker taking new invocations.
func (c *Client) DrainWorker(ctx context.Context, id string) error {
	_, err := c.doJSON(ctx, http.MethodPost, "/v1/cluster/workers/"+url.PathEscape(id)+"/drain", nil, nil, nil)
	return err
}

// UndrainWorker makes a drained worker take new invocations again.
func (c *Client) UndrainWorker(ctx context.Context, id string) error {
	_, err := c.doJSON(ctx, http.MethodPost, "/v1/cluster/workers/"+url.PathEscape(id)+"/undrain", nil, nil, nil)
	return err
}
