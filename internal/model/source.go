package model

import (
	"net/url"
	"strings"
	"time"
)

// Event source types.
const (
	SourceRabbitMQ = "rabbitmq"
	SourceKafka    = "kafka"
	SourceNATS     = "nats"
)

// Source is an event source mapping: a consumer of a broker's queue
// (RabbitMQ), topic (Kafka) or subject (NATS JetStream) that runs a
// function with batches of its messages and acknowledges each message
// only after the function succeeded with it (or it went to the dead-letter
// destination).
type Source struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Function  string `json:"function"`
	Type      string `json:"type"` // SourceRabbitMQ, SourceKafka or SourceNATS
	// URL is the broker's address without its password; Password is a
	// secret: it is never shown, logged or put in a record.
	URL      string `json:"url"`
	Password string `json:"password,omitempty"`
	Queue    string `json:"queue,omitempty"`   // rabbitmq
	Topic    string `json:"topic,omitempty"`   // kafka
	Subject  string `json:"subject,omitempty"` // nats
	Stream   string `json:"stream,omitempty"`  // nats: "" for the stream that captures Subject

	BatchSize   int      `json:"batch_size"`
	BatchWindow Duration `json:"batch_window,omitempty"`
	Concurrency int      `json:"concurrency"`
	StartFrom   string   `json:"start_from"` // latest or earliest (kafka, nats)
	Format      string   `json:"format"`     // json: bodies must be JSON; raw: passed as base64
	Retries     int      `json:"retries"`
	RetryDelay  Duration `json:"retry_delay"`
	// DeadLetter is where a message goes once its retries are spent: ""
	// for Nimbus's dead letters, else a queue (rabbitmq), topic (kafka)
	// or subject (nats) on the same broker.
	DeadLetter string `json:"dead_letter,omitempty"`

	Disabled  bool      `json:"disabled,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Progress is what the leader's consumer last reported.
	Progress SourceProgress `json:"progress"`
}

// Source consumer states.
const (
	SourceStarting   = "starting"
	SourceRunning    = "running"
	SourceConnecting = "connecting" // the broker cannot be reached: retrying with backoff
	SourceDisabled   = "disabled"
)

// SourceProgress is what a mapping's consumer reports, through Raft,
// every few seconds while it runs: counters that keep counting across
// leader changes, and the state of its connection.
type SourceProgress struct {
	State string `json:"state,omitempty"`
	Error string `json:"error,omitempty"` // the last connection or broker error
	// Server is the server whose consumer reported it.
	Server string `json:"server,omitempty"`
	// Messages counted once each time they arrive (Received, Redelivered:
	// those the broker says it delivered before) and once by their end
	// (Succeeded, DeadLettered); Malformed are also DeadLettered.
	Received     int64 `json:"received"`
	Redelivered  int64 `json:"redelivered"`
	Succeeded    int64 `json:"succeeded"`
	DeadLettered int64 `json:"dead_lettered"`
	Malformed    int64 `json:"malformed"`
	// Batches and Failures count invocations and failed ones; Retries
	// the messages sent again after a failure.
	Batches  int64 `json:"batches"`
	Failures int64 `json:"failures"`
	Retries  int64 `json:"retries"`
	// Lag is how many messages wait on the broker (-1: unknown).
	Lag int64 `json:"lag"`
	// Rate is messages ended per second over the last report's interval.
	Rate float64 `json:"rate"`
	// Offsets holds the last offset handled per Kafka partition, so that
	// the next leader's consumer can count the ones it is given again.
	Offsets   map[string]int64 `json:"offsets,omitempty"`
	UpdatedAt time.Time        `json:"updated_at,omitzero"`
}

// MaskURL returns rawURL with its password, if it has one, replaced by
// ****: how a broker's URL is shown and logged.
func MaskURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		// Too broken to parse: show the scheme and host part only.
		if i := strings.LastIndex(rawURL, "@"); i >= 0 {
			return "****@" + rawURL[i+1:]
		}
		return rawURL
	}
	return masked(u)
}

// masked is u with its password, if any, shown as ****.
func masked(u *url.URL) string {
	if _, ok := u.User.Password(); !ok {
		return u.String()
	}
	return strings.Replace(u.Redacted(), ":xxxxx@", ":****@", 1)
}

// ShownURL is the mapping's URL as shown: with **** for its password
// when it has one.
func (s Source) ShownURL() string {
	if s.Password == "" {
		return s.URL
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return s.URL
	}
	u.User = url.UserPassword(u.User.Username(), s.Password)
	return masked(u)
}

// DialURL is the mapping's URL with its password, for connecting.
func (s Source) DialURL() string {
	if s.Password == "" {
		return s.URL
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return s.URL
	}
	u.User = url.UserPassword(u.User.Username(), s.Password)
	return u.String()
}
