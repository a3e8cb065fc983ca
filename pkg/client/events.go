package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// FollowEvents streams invocation events (of one function, or "" for
// all) to fn until ctx ends or the server closes the stream.
func (c *Client) FollowEvents(ctx context.Context, function string, fn func(Event)) error {
	q := url.Values{}
	if function != "" {
		q.Set("function", function)
	}
	req, err := c.newRequest(ctx, http.MethodGet, "/v1/events", q, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	err = readSSE(resp.Body, func(event, data string) error {
		if event != "invocation" {
			return nil
		}
		var e Event
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			return decodeErr(http.MethodGet, "/v1/events", err)
		}
		fn(e)
		return nil
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
