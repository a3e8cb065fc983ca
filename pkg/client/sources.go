package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// Source is an event source mapping: a consumer of a RabbitMQ queue, a
// Kafka topic or a NATS JetStream subject that runs a function with
// batches of its messages (docs/spec.md, "Event source mappings").
type Source struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Function  string `json:"function"`
	Type      string `json:"type"` // rabbitmq, kafka or nats
	// URL is the broker's; a password in it is kept as a secret and
	// shown as ****. Password sets it apart from the URL (never shown).
	URL      string `json:"url"`
	Password string `json:"password,omitempty"`
	Queue    string `json:"queue,omitempty"`
	Topic    string `json:"topic,omitempty"`
	Subject  string `json:"subject,omitempty"`
	Stream   string `json:"stream,omitempty"`

	BatchSize   int      `json:"batch_size,omitempty"`   // 1..10000, default 100
	BatchWindow Duration `json:"batch_window,omitempty"` // 0..5m, default 0 (what is ready)
	Concurrency int      `json:"concurrency,omitempty"`  // 1..100, default 1
	StartFrom   string   `json:"start_from,omitempty"`   // latest (default) or earliest
	Format      string   `json:"format,omitempty"`       // json (default) or raw
	Retries     int      `json:"retries,omitempty"`      // 0..100, default 3
	RetryDelay  Duration `json:"retry_delay,omitempty"`  // default 1s, doubling each try
	DeadLetter  string   `json:"dead_letter,omitempty"`  // "": Nimbus's dead letters

	Disabled  bool           `json:"disabled,omitempty"`
	CreatedAt time.Time      `json:"created_at,omitzero"`
	UpdatedAt time.Time      `json:"updated_at,omitzero"`
	Progress  SourceProgress `json:"progress,omitzero"`
}

// SourceProgress is what a mapping's consumer last reported (every few
// seconds): its state and counters that keep counting across leader
// changes.
type SourceProgress struct {
	State        string           `json:"state,omitempty"` // starting, running, connecting, disabled
	Error        string           `json:"error,omitempty"`
	Server       string           `json:"server,omitempty"`
	Received     int64            `json:"received"`
	Redelivered  int64            `json:"redelivered"`
	Succeeded    int64            `json:"succeeded"`
	DeadLettered int64            `json:"dead_lettered"`
	Malformed    int64            `json:"malformed"`
	Batches      int64            `json:"batches"`
	Failures     int64            `json:"failures"`
	Retries      int64            `json:"retries"`
	Lag          int64            `json:"lag"` // -1: unknown
	Rate         float64          `json:"rate"`
	Offsets      map[string]int64 `json:"offsets,omitempty"`
	UpdatedAt    time.Time        `json:"updated_at,omitzero"`
}

// PutSource creates or replaces an event source mapping; it reports
// whether the mapping is new.
func (c *Client) PutSource(ctx context.Context, s Source) (Source, bool, error) {
	var out Source
	status, err := c.doJSON(ctx, http.MethodPut, "/v1/sources/"+url.PathEscape(s.Name), nil, s, &out)
	return out, status == http.StatusCreated, err
}

// Sources lists event source mappings.
func (c *Client) Sources(ctx context.Context) ([]Source, error) {
	var out struct {
		Sources []Source `json:"sources"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/sources", nil, nil, &out)
	return out.Sources, err
}

// GetSource describes one event source mapping.
func (c *Client) GetSource(ctx context.Context, name string) (Source, error) {
	var out Source
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/sources/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// DeleteSource removes an event source mapping.
func (c *Client) DeleteSource(ctx context.Context, name string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, "/v1/sources/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// EnableSource enables or disables an event source mapping.
func (c *Client) EnableSource(ctx context.Context, name string, enabled bool) (Source, error) {
	verb := "disable"
	if enabled {
		verb = "enable"
	}
	var out Source
	_, err := c.doJSON(ctx, http.MethodPost, "/v1/sources/"+url.PathEscape(name)+"/"+verb, nil, nil, &out)
	return out, err
}
