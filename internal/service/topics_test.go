package service

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

func TestPublishQueuesForMatchingSubscribersAndWakesTheDispatcher(t *testing.T) {
	ctx := context.Background()
	var woken atomic.Int32
	s, store := newService(t, Deps{Woken: func() { woken.Add(1) }})
	for _, fn := range []string{"a", "b", "c"} {
		stored(t, s, "default", fn)
	}
	if _, created, err := s.PutTopic(ctx, "default", model.Topic{Name: "orders", Description: "order events"}); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	for fn, filters := range map[string][]model.TopicFilter{"a": nil, "b": {{Path: "$.type", Value: "created"}}, "c": {{Path: "type", Value: "deleted"}}} {
		if _, created, err := s.SubscribeTopic(ctx, "default", "orders", model.TopicSubscriber{Function: fn, Filters: filters}); err != nil || !created {
			t.Fatalf("subscribe %s: %v %v", fn, created, err)
		}
	}
	res, err := s.Publish(ctx, "default", "orders", "", []byte(` {"type": "created"} `))
	if err != nil {
		t.Fatal(err)
	}
	if res.Subscribers != 2 || res.MessageID == "" {
		t.Fatalf("publish: %+v, want a message ID and 2 subscribers", res)
	}
	if woken.Load() != 1 {
		t.Errorf("the dispatcher was woken %d times, want once", woken.Load())
	}
	for _, fn := range []string{"a", "b"} {
		if _, ok := store.QueueItem(model.TopicRequestID(res.MessageID, fn)); !ok {
			t.Errorf("no event queued for %s", fn)
		}
	}
	top, err := s.Topic("default", "orders")
	if err != nil || top.Published != 1 || top.LastMessage != res.MessageID || len(top.Subscribers) != 3 {
		t.Errorf("topic after a publish: %+v %v", top, err)
	}
}

func TestBadTopicRequestsAreRefusedWithTheirKindAndChangeNothing(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Deps{})
	stored(t, s, "default", "f")
	stored(t, s, "team", "g")
	if _, _, err := s.PutTopic(ctx, "default", model.Topic{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutTopic(ctx, "team", model.Topic{Name: "private"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SubscribeTopic(ctx, "default", "orders", model.TopicSubscriber{Function: "f"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		call func() error
		kind error
		says string
	}{
		{"a publish to a missing topic", func() error {
			_, err := s.Publish(ctx, "default", "nope", "", []byte(`{}`))
			return err
		}, state.ErrNotFound, `topic "nope" not found`},
		{"a publish to another namespace's topic by its bare name", func() error {
			_, err := s.Publish(ctx, "default", "private", "", []byte(`{}`))
			return err
		}, state.ErrNotFound, `topic "private" not found in namespace "default"`},
		{"a publish to a topic named with a namespace", func() error {
			_, err := s.Publish(ctx, "default", "team:private", "", []byte(`{}`))
			return err
		}, state.ErrInvalid, "names a namespace"},
		{"a publish of a message that is not JSON", func() error {
			_, err := s.Publish(ctx, "default", "orders", "", []byte(`{"type":`))
			return err
		}, state.ErrInvalid, "not valid JSON"},
		{"a publish of an empty message", func() error {
			_, err := s.Publish(ctx, "default", "orders", "", []byte(" "))
			return err
		}, state.ErrInvalid, "empty"},
		{"a publish of a message over 256 KB", func() error {
			_, err := s.Publish(ctx, "default", "orders", "", []byte(`"`+strings.Repeat("x", model.MaxTopicMessage)+`"`))
			return err
		}, ErrTooLarge, "over the limit"},
		{"a publish under a message ID of bad syntax", func() error {
			_, err := s.Publish(ctx, "default", "orders", "no spaces", []byte(`{}`))
			return err
		}, state.ErrInvalid, `message ID "no spaces"`},
		{"a subscription of a missing function", func() error {
			_, _, err := s.SubscribeTopic(ctx, "default", "orders", model.TopicSubscriber{Function: "ghost"})
			return err
		}, state.ErrNotFound, `function "ghost" not found`},
		{"a subscription of another namespace's function", func() error {
			_, _, err := s.SubscribeTopic(ctx, "default", "orders", model.TopicSubscriber{Function: "g"})
			return err
		}, state.ErrNotFound, `function "g" not found in namespace "default"`},
		{"a subscription without a function", func() error {
			_, _, err := s.SubscribeTopic(ctx, "default", "orders", model.TopicSubscriber{})
			return err
		}, state.ErrInvalid, "needs a function"},
		{"a subscription with a filter path of bad syntax", func() error {
			_, _, err := s.SubscribeTopic(ctx, "default", "orders", model.TopicSubscriber{Function: "f", Filters: []model.TopicFilter{{Path: "items[0].id", Value: "1"}}})
			return err
		}, state.ErrInvalid, `filter path "items[0].id"`},
		{"a subscription to a missing topic", func() error {
			_, _, err := s.SubscribeTopic(ctx, "default", "nope", model.TopicSubscriber{Function: "f"})
			return err
		}, state.ErrNotFound, `topic "nope"`},
		{"an unsubscription of a function that is not subscribed", func() error {
			_, err := s.UnsubscribeTopic(ctx, "default", "orders", "ghost")
			return err
		}, state.ErrNotFound, "does not subscribe"},
		{"a description over 1 KB", func() error {
			_, _, err := s.PutTopic(ctx, "default", model.Topic{Name: "orders", Description: strings.Repeat("d", 1025)})
			return err
		}, state.ErrInvalid, "description"},
		{"deleting another namespace's topic", func() error {
			_, err := s.DeleteTopic(ctx, "default", "private")
			return err
		}, state.ErrNotFound, `topic "private"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v, want %v saying %q", err, c.kind, c.says)
			}
		})
	}
	top, _ := s.Topic("default", "orders")
	if len(top.Subscribers) != 1 || top.Subscribers[0].Function != "f" || top.Published != 0 || top.Description != "" {
		t.Errorf("refused requests changed the topic: %+v", top)
	}
	if len(s.Topics("team")) != 1 || len(store.QueueItems()) != 0 {
		t.Errorf("refused requests changed team's topics or queued events")
	}
}

func TestAPublishRetriedUnderItsMessageIDDeliversNothingTwice(t *testing.T) {
	ctx := context.Background()
	s, store := newService(t, Deps{})
	stored(t, s, "default", "f")
	if _, _, err := s.PutTopic(ctx, "default", model.Topic{Name: "orders"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.SubscribeTopic(ctx, "default", "orders", model.TopicSubscriber{Function: "f"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		res, err := s.Publish(ctx, "default", "orders", "order-7.created", []byte(`{"id": 7}`))
		if err != nil || res.MessageID != "order-7.created" || res.Subscribers != 1 {
			t.Fatalf("publish: %+v %v", res, err)
		}
	}
	if n := len(store.QueueItems()); n != 1 {
		t.Errorf("the queue holds %d events after the same message was published twice, want 1", n)
	}
	if top, _ := s.Topic("default", "orders"); top.Published != 1 {
		t.Errorf("published = %d, want 1", top.Published)
	}
}
