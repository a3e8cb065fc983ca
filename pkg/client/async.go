package client

import (
	"context"
	"net/http"
	"net/url"
)

// DeadLetters lists dead letters, of one function or ("" ) all.
func (c *Client) DeadLetters(ctx context.Context, function string) ([]DeadLetter, error) {
	q := url.Values{}
	if function != "" {
		q.Set("function", function)
	}
	var out struct {
		DeadLetters []DeadLetter `json:"dead_letters"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/deadletters", q, nil, &out)
	if out.DeadLetters == nil {
		out.DeadLetters = []DeadLetter{}
	}
	return out.DeadLetters, err
}

// Redrive re-enqueues the named dead letters, or with all every one (of
// function, if not "").
func (c *Client) Redrive(ctx context.Context, ids []string, all bool, function string) (int, error) {
	var out struct {
		Redriven int `json:"redriven"`
	}
	in := map[string]any{"ids": ids, "all": all, "function": function}
	_, err := c.doJSON(ctx, http.MethodPost, "/v1/deadletters/redrive", nil, in, &out)
	return out.Redriven, err
}

// WebhookSecret returns the secret that signs webhook deliveries.
func (c *Client) WebhookSecret(ctx context.Context) (string, error) {
	var out struct {
		Secret string `json:"secret"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/webhooks/secret", nil, nil, &out)
	return out.Secret, err
}

// PutSchedule creates or replaces a schedule.
func (c *Client) PutSchedule(ctx context.Context, s Schedule) (Schedule, bool, error) {
	var out Schedule
	status, err := c.doJSON(ctx, http.MethodPut, "/v1/schedules/"+url.PathEscape(s.Name), nil, s, &out)
	return out, status == http.StatusCreated, err
}

// Schedules lists every schedule of the namespace, by name, following
// the pages to the last.
func (c *Client) Schedules(ctx context.Context) ([]Schedule, error) {
	return allPages(func(after string) ([]Schedule, string, error) {
		var out struct {
			Schedules []Schedule `json:"schedules"`
			Next      string     `json:"next"`
		}
		q := url.Values{}
		if after != "" {
			q.Set("after", after)
		}
		_, err := c.doJSON(ctx, http.MethodGet, "/v1/schedules", q, nil, &out)
		return out.Schedules, out.Next, err
	})
}

// GetSchedule describes one schedule.
func (c *Client) GetSchedule(ctx context.Context, name string) (Schedule, error) {
	var out Schedule
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/schedules/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// DeleteSchedule removes a schedule.
func (c *Client) DeleteSchedule(ctx context.Context, name string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, "/v1/schedules/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// EnableSchedule enables or disables a schedule.
func (c *Client) EnableSchedule(ctx context.Context, name string, enabled bool) (Schedule, error) {
	verb := "disable"
	if enabled {
		verb = "enable"
	}
	var out Schedule
	_, err := c.doJSON(ctx, http.MethodPost, "/v1/schedules/"+url.PathEscape(name)+"/"+verb, nil, nil, &out)
	return out, err
}

// CreateSubscription stores a notification subscription.
func (c *Client) CreateSubscription(ctx context.Context, s Subscription) (Subscription, error) {
	var out Subscription
	_, err := c.doJSON(ctx, http.MethodPost, "/v1/subscriptions", nil, s, &out)
	return out, err
}

// Subscriptions lists subscriptions.
func (c *Client) Subscriptions(ctx context.Context) ([]Subscription, error) {
	var out struct {
		Subscriptions []Subscription `json:"subscriptions"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/subscriptions", nil, nil, &out)
	return out.Subscriptions, err
}

// DeleteSubscription removes a subscription.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, "/v1/subscriptions/"+url.PathEscape(id), nil, nil, nil)
	return err
}
