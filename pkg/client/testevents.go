package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// TestEvent is an event saved under a name for one function, shared by
// everyone who may read the function (at most 10 per function, 256 KB
// each; names of 1 to 25 letters, digits, '-' or '_').
type TestEvent struct {
	Namespace string          `json:"namespace,omitempty"`
	Function  string          `json:"function"`
	Name      string          `json:"name"`
	Event     json.RawMessage `json:"event"`
	UpdatedAt time.Time       `json:"updated_at"`
	UpdatedBy string          `json:"updated_by,omitempty"` // key id or user:NAME
}

func testEventsPath(function string) string {
	return "/v1/functions/" + url.PathEscape(function) + "/test-events"
}

func testEventPath(function, name string) string {
	return testEventsPath(function) + "/" + url.PathEscape(name)
}

// TestEvents lists a function's saved test events, sorted by name.
func (c *Client) TestEvents(ctx context.Context, function string) ([]TestEvent, error) {
	var out struct {
		TestEvents []TestEvent `json:"test_events"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, testEventsPath(function), nil, nil, &out)
	return out.TestEvents, err
}

// TestEvent returns one of a function's saved test events.
func (c *Client) TestEvent(ctx context.Context, function, name string) (TestEvent, error) {
	var out TestEvent
	_, err := c.doJSON(ctx, http.MethodGet, testEventPath(function, name), nil, nil, &out)
	return out, err
}

// PutTestEvent saves event (JSON) under name for a function, replacing
// what was saved under the name, and returns it as stored.
func (c *Client) PutTestEvent(ctx context.Context, function, name string, event json.RawMessage) (TestEvent, error) {
	var out TestEvent
	_, err := c.doJSON(ctx, http.MethodPut, testEventPath(function, name), nil, event, &out)
	return out, err
}

// DeleteTestEvent removes one of a function's saved test events.
func (c *Client) DeleteTestEvent(ctx context.Context, function, name string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, testEventPath(function, name), nil, nil, nil)
	return err
}
