package client

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Topic fans each message published to it out to its subscribers, one
// asynchronous invocation per subscriber whose filters match.
type Topic struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Description string            `json:"description,omitempty"`
	Subscribers []TopicSubscriber `json:"subscribers,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	Published   int64             `json:"published"`              // messages published
	LastMessage string            `json:"last_message,omitempty"` // the latest message's ID
	LastPublish time.Time         `json:"last_publish,omitzero"`
}

// TopicSubscriber is a function that gets a topic's messages, those whose
// every filter matches.
type TopicSubscriber struct {
	Function  string        `json:"function"`
	Filters   []TopicFilter `json:"filters,omitempty"`
	CreatedAt time.Time     `json:"created_at,omitzero"`
}

// TopicFilter matches a message whose field at Path ("$.type", "type",
// "detail.kind") is the string Value, or a number, true, false or null
// whose JSON text is Value.
type TopicFilter struct {
	Path  string `json:"path"`
	Value string `json:"value"`
}

// HeaderMessageID, on a publish, gives the message its ID (1 to 128 of
// A-Z, a-z, 0-9, '.', '_', ':' and '-'): a publish sent again with the
// same ID after an unknown outcome does not deliver the message twice.
const HeaderMessageID = "X-Nimbus-Message-Id"

// Published is what a publish answers.
type Published struct {
	MessageID   string `json:"message_id"`
	Subscribers int    `json:"subscribers"` // how many it was queued for
}

// PutTopic creates a topic, or changes the description of one; it
// reports whether the topic is new.
func (c *Client) PutTopic(ctx context.Context, t Topic) (Topic, bool, error) {
	var out Topic
	status, err := c.doJSON(ctx, http.MethodPut, "/v1/topics/"+url.PathEscape(t.Name), nil, t, &out)
	return out, status == http.StatusCreated, err
}

// Topics lists topics.
func (c *Client) Topics(ctx context.Context) ([]Topic, error) {
	var out struct {
		Topics []Topic `json:"topics"`
	}
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/topics", nil, nil, &out)
	return out.Topics, err
}

// GetTopic describes a topic, with its subscribers and publish count.
func (c *Client) GetTopic(ctx context.Context, name string) (Topic, error) {
	var out Topic
	_, err := c.doJSON(ctx, http.MethodGet, "/v1/topics/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// DeleteTopic removes a topic with its subscriptions.
func (c *Client) DeleteTopic(ctx context.Context, name string) error {
	_, err := c.doJSON(ctx, http.MethodDelete, "/v1/topics/"+url.PathEscape(name), nil, nil, nil)
	return err
}

// SubscribeTopic subscribes a function to a topic (or replaces its
// filters) and returns the topic; it reports whether the subscription is
// new.
func (c *Client) SubscribeTopic(ctx context.Context, topic string, sub TopicSubscriber) (Topic, bool, error) {
	var out Topic
	status, err := c.doJSON(ctx, http.MethodPost, "/v1/topics/"+url.PathEscape(topic)+"/subscriptions", nil, sub, &out)
	return out, status == http.StatusCreated, err
}

// UnsubscribeTopic removes a function's subscription to a topic.
func (c *Client) UnsubscribeTopic(ctx context.Context, topic, function string) (Topic, error) {
	var out Topic
	_, err := c.doJSON(ctx, http.MethodDelete, "/v1/topics/"+url.PathEscape(topic)+"/subscriptions/"+url.PathEscape(function), nil, nil, &out)
	return out, err
}

// Publish publishes message, sent as it is (the server checks that it is
// JSON), to a topic, under messageID when it is not "" (see
// HeaderMessageID), else under an ID the server gives it. It returns once
// the message is committed.
func (c *Client) Publish(ctx context.Context, topic, messageID string, message []byte) (Published, error) {
	var out Published
	req, err := c.newRequest(ctx, http.MethodPost, "/v1/topics/"+url.PathEscape(topic)+"/publish", nil, bytes.NewReader(message))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/json")
	if messageID != "" {
		req.Header.Set(HeaderMessageID, messageID)
	}
	resp, err := c.send(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return out, decodeErr(req.Method, req.URL.Path, err)
	}
	return out, nil
}
