package model

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func decodeMessage(t *testing.T, msg string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(msg)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestTopicFilters(t *testing.T) {
	const msg = `{"type":"order.created","count":3,"ratio":1.50,"paid":true,"gift":null,
		"detail":{"kind":"book","tags":["a"],"inner":{"k":"v"}},"list":[{"type":"x"}]}`
	cases := []struct {
		name    string
		filters []TopicFilter
		want    bool
	}{
		{"no filter matches every message", nil, true},
		{"a top-level string field equal to the value matches", []TopicFilter{{"type", "order.created"}}, true},
		{"the $. prefix names the same field", []TopicFilter{{"$.type", "order.created"}}, true},
		{"a different string does not match", []TopicFilter{{"type", "order.deleted"}}, false},
		{"a nested field is reached through dots", []TopicFilter{{"detail.kind", "book"}}, true},
		{"a deeper nested field is reached too", []TopicFilter{{"$.detail.inner.k", "v"}}, true},
		{"a missing field does not match", []TopicFilter{{"missing", "x"}}, false},
		{"a path through a string does not match", []TopicFilter{{"type.kind", "x"}}, false},
		{"a path into an array does not match", []TopicFilter{{"list.type", "x"}}, false},
		{"a number matches its JSON text", []TopicFilter{{"count", "3"}}, true},
		{"a number keeps its JSON text as written", []TopicFilter{{"ratio", "1.50"}}, true},
		{"a number does not match another spelling", []TopicFilter{{"ratio", "1.5"}}, false},
		{"true matches the word true", []TopicFilter{{"paid", "true"}}, true},
		{"true does not match false", []TopicFilter{{"paid", "false"}}, false},
		{"null matches the word null", []TopicFilter{{"gift", "null"}}, true},
		{"an object never matches", []TopicFilter{{"detail", `{"kind":"book"}`}}, false},
		{"an array never matches", []TopicFilter{{"detail.tags", `["a"]`}}, false},
		{"several filters that all match match", []TopicFilter{{"type", "order.created"}, {"detail.kind", "book"}}, true},
		{"several filters of which one fails do not match", []TopicFilter{{"type", "order.created"}, {"detail.kind", "film"}}, false},
	}
	v := decodeMessage(t, msg)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := (TopicSubscriber{Filters: c.filters}).MatchesAll(v); got != c.want {
				t.Errorf("filters %v on %s: got %v, want %v", c.filters, msg, got, c.want)
			}
		})
	}
}

func TestTopicPathSyntax(t *testing.T) {
	for path, want := range map[string]bool{
		"type": true, "$.type": true, "detail.kind": true, "$.a_b.c-d.e1": true,
		"": false, "$.": false, "$": false, "a..b": false, ".a": false, "a.": false,
		"a[0]": false, "$.a[*]": false, "a b": false, "$$.a": false,
	} {
		if got := ValidTopicPath(path); got != want {
			t.Errorf("ValidTopicPath(%q) = %v, want %v", path, got, want)
		}
	}
}

func TestTopicRequestIDIsDerivedFromMessageAndFunction(t *testing.T) {
	a := TopicRequestID("m1", "fn")
	if a != TopicRequestID("m1", "fn") {
		t.Fatal("the same message and function gave two request IDs")
	}
	if a == TopicRequestID("m1", "fn2") || a == TopicRequestID("m2", "fn") {
		t.Fatal("another message or function gave the same request ID")
	}
	if len(a) != 36 || a[14] != '8' {
		t.Fatalf("request ID %q is not a version-8 UUID", a)
	}
}

func TestTopicEventIsSNSShaped(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600e6, time.UTC)
	ev := TopicEvent("", "orders", "m1", json.RawMessage(`{"a":1}`), at)
	var got struct {
		Records []struct {
			EventSource string
			Sns         struct{ MessageId, TopicArn, Message, Timestamp string }
		}
	}
	if err := json.Unmarshal(ev, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Records) != 1 {
		t.Fatalf("event %s: want one record", ev)
	}
	r := got.Records[0]
	if r.EventSource != "nimbus:topic" || r.Sns.MessageId != "m1" || r.Sns.TopicArn != "nimbus:topic:default:orders" ||
		r.Sns.Message != `{"a":1}` || r.Sns.Timestamp != "2026-01-02T03:04:05.600Z" {
		t.Errorf("event %s", ev)
	}
}
