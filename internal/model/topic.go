package model

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// MaxTopicMessage is the largest message a topic takes, in bytes (SNS's
// limit).
const MaxTopicMessage = 256 << 10

// Topic fans each message published to it out to its subscribers, one
// asynchronous invocation per subscriber whose filters match.
type Topic struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Description string            `json:"description,omitempty"`
	Subscribers []TopicSubscriber `json:"subscribers,omitempty"` // sorted by function
	CreatedAt   time.Time         `json:"created_at"`
	// Set by publishes.
	Published   int64     `json:"published"`              // messages committed
	LastMessage string    `json:"last_message,omitempty"` // the latest message's ID
	LastPublish time.Time `json:"last_publish,omitzero"`
}

// TopicSubscriber is a function of the topic's namespace that gets the
// topic's messages, those whose every filter matches.
type TopicSubscriber struct {
	Function  string        `json:"function"`
	Filters   []TopicFilter `json:"filters,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
}

// TopicFilter matches a message whose field at Path equals Value.
//
// Path is a simple JSON path: keys joined by dots, optionally after "$."
// ("$.type", "type", "detail.kind"); no array indexes or wildcards. A
// field matches when it is a string equal to Value, or a number, true,
// false or null whose JSON text is Value; a missing field, an object or
// an array never matches.
type TopicFilter struct {
	Path  string `json:"path"`
	Value string `json:"value"`
}

// topicPathRe is the syntax of a filter's path.
var topicPathRe = regexp.MustCompile(`^(\$\.)?[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$`)

// TopicPathRule describes the syntax ValidTopicPath accepts.
const TopicPathRule = `keys of letters, digits, '_' and '-' joined by dots, optionally after "$." ($.type, detail.kind)`

// ValidTopicPath reports whether path is a filter path this package
// matches.
func ValidTopicPath(path string) bool { return topicPathRe.MatchString(path) }

// Matches reports whether msg, a message decoded with json.Decoder's
// UseNumber (so that a number keeps its JSON text), matches the filter.
func (f TopicFilter) Matches(msg any) bool {
	v := msg
	for _, key := range strings.Split(strings.TrimPrefix(f.Path, "$."), ".") {
		obj, ok := v.(map[string]any)
		if !ok {
			return false
		}
		if v, ok = obj[key]; !ok {
			return false
		}
	}
	switch x := v.(type) {
	case string:
		return x == f.Value
	case json.Number:
		return x.String() == f.Value
	case bool:
		return (x && f.Value == "true") || (!x && f.Value == "false")
	case nil:
		return f.Value == "null"
	}
	return false
}

// MatchesAll reports whether msg matches every filter (none: it does).
func (s TopicSubscriber) MatchesAll(msg any) bool {
	for _, f := range s.Filters {
		if !f.Matches(msg) {
			return false
		}
	}
	return true
}

// TopicRequestID is the request ID of the invocation that delivers
// message messageID to function fn: derived from both, so that a
// publish applied twice enqueues nothing the second time. It has the
// shape of a UUID (version 8, RFC 9562).
func TopicRequestID(messageID, fn string) string {
	sum := sha256.Sum256([]byte(messageID + "\x00" + fn))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// TopicARN names a topic in the events its subscribers get, in the shape
// of an SNS topic ARN: "nimbus:topic:NAMESPACE:NAME".
func TopicARN(ns, name string) string {
	return "nimbus:topic:" + NamespaceOf(ns) + ":" + name
}

// TopicEvent is the event a subscriber gets for a message: Lambda's SNS
// event shape, one record, whose Sns.Message is the message's JSON text
// as a string (as SNS delivers it: a handler reads it with
// json.loads(event["Records"][0]["Sns"]["Message"])).
func TopicEvent(ns, topic, messageID string, message json.RawMessage, at time.Time) json.RawMessage {
	type sns struct {
		Type      string `json:"Type"`
		MessageID string `json:"MessageId"`
		TopicArn  string `json:"TopicArn"`
		Message   string `json:"Message"`
		Timestamp string `json:"Timestamp"`
	}
	type record struct {
		EventSource  string `json:"EventSource"`
		EventVersion string `json:"EventVersion"`
		Sns          sns    `json:"Sns"`
	}
	ev := struct {
		Records []record `json:"Records"`
	}{[]record{{EventSource: "nimbus:topic", EventVersion: "1.0", Sns: sns{
		Type: "Notification", MessageID: messageID, TopicArn: TopicARN(ns, topic),
		Message: string(message), Timestamp: at.UTC().Format("2006-01-02T15:04:05.000Z"),
	}}}}
	b, _ := json.Marshal(ev) // plain strings: cannot fail
	return b
}
