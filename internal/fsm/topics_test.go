package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

// topicWithSubscribers applies a topic "orders" in the default namespace
// with three subscribers: all (no filter), books (detail.kind=book) and
// films (detail.kind=film).
func topicWithSubscribers(t *testing.T) (*FSM, *state.Store) {
	t.Helper()
	f, s := newFSM()
	for _, name := range []string{"all", "books", "films"} {
		apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn(name, "aa"), Now: t0})
	}
	if res := apply(t, f, PutTopicType, PutTopic{Topic: model.Topic{Name: "orders", CreatedAt: t0}}).(PutTopicResult); !res.Created {
		t.Fatal("a new topic was not reported created")
	}
	subs := map[string][]model.TopicFilter{"all": nil, "books": {{Path: "$.detail.kind", Value: "book"}}, "films": {{Path: "detail.kind", Value: "film"}}}
	for name, filters := range subs {
		res := apply(t, f, SubscribeTopicType, SubscribeTopic{Topic: "orders", Subscriber: model.TopicSubscriber{Function: name, Filters: filters, CreatedAt: t0}})
		if r, ok := res.(SubscribeTopicResult); !ok || !r.Created {
			t.Fatalf("subscribe %s: %v", name, res)
		}
	}
	return f, s
}

func TestAPublishQueuesOneEventPerMatchingSubscriberInOneEntry(t *testing.T) {
	f, s := topicWithSubscribers(t)
	msg := json.RawMessage(`{"detail":{"kind":"book"},"id":7}`)
	res := apply(t, f, PublishType, Publish{Topic: "orders", MessageID: "m1", Message: msg, Time: t0}).(PublishResult)
	if res.Subscribers != 2 {
		t.Fatalf("published to %d subscribers, want 2 (all, books)", res.Subscribers)
	}
	items := s.QueueItems()
	if len(items) != 2 {
		t.Fatalf("queue holds %d items, want 2", len(items))
	}
	for _, fnName := range []string{"all", "books"} {
		q, ok := s.QueueItem(model.TopicRequestID("m1", fnName))
		if !ok {
			t.Fatalf("no queued event for %s", fnName)
		}
		if q.Function != fnName || q.Trigger != "topic:orders" || !q.EnqueuedAt.Equal(t0) ||
			!bytes.Equal(q.Event, model.TopicEvent("", "orders", "m1", msg, t0)) {
			t.Errorf("queued event for %s: %+v", fnName, q)
		}
	}
	if _, ok := s.QueueItem(model.TopicRequestID("m1", "films")); ok {
		t.Error("films got a message its filter does not match")
	}
	top, _ := s.Topic("default/orders")
	if top.Published != 1 || top.LastMessage != "m1" {
		t.Errorf("topic after a publish: %+v", top)
	}
}

func TestAPublishAppliedTwiceQueuesNothingTwice(t *testing.T) {
	f, s := topicWithSubscribers(t)
	c := Publish{Topic: "orders", MessageID: "m1", Message: json.RawMessage(`{"detail":{"kind":"film"}}`), Time: t0}
	apply(t, f, PublishType, c)
	// The event of one subscriber completes before the retry comes: its
	// record, not its queue item, must stop it.
	id := model.TopicRequestID("m1", "all")
	epoch, err := s.Lease(id, t0.Add(60e9), t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(id, epoch, model.Invocation{Status: model.StatusSuccess, Start: t0}); err != nil {
		t.Fatal(err)
	}
	apply(t, f, PublishType, c)
	if items := s.QueueItems(); len(items) != 1 || items[0].Function != "films" {
		t.Fatalf("queue after the publish was applied twice: %+v, want films' event only", items)
	}
	if rec, _ := s.Record(id); rec.Status != model.StatusSuccess {
		t.Errorf("the completed record became %q", rec.Status)
	}
	if top, _ := s.Topic("default/orders"); top.Published != 1 {
		t.Errorf("published = %d, want the retried message counted once", top.Published)
	}
}

func TestTopicCommandsRefuseWhatDoesNotExist(t *testing.T) {
	f, s := topicWithSubscribers(t)
	cases := []struct {
		name string
		cmd  any
		ct   CommandType
		kind error
	}{
		{"publishing to a missing topic", Publish{Topic: "nope", MessageID: "m", Message: json.RawMessage(`{}`), Time: t0}, PublishType, state.ErrNotFound},
		{"publishing to a topic of another namespace", Publish{Namespace: "team", Topic: "orders", MessageID: "m", Message: json.RawMessage(`{}`), Time: t0}, PublishType, state.ErrNotFound},
		{"subscribing a missing function", SubscribeTopic{Topic: "orders", Subscriber: model.TopicSubscriber{Function: "ghost"}}, SubscribeTopicType, state.ErrNotFound},
		{"subscribing to a missing topic", SubscribeTopic{Topic: "nope", Subscriber: model.TopicSubscriber{Function: "all"}}, SubscribeTopicType, state.ErrNotFound},
		{"unsubscribing a function that is not subscribed", UnsubscribeTopic{Topic: "orders", Function: "ghost"}, UnsubscribeTopicType, state.ErrNotFound},
		{"deleting a missing topic", DeleteTopic{Name: "nope"}, DeleteTopicType, state.ErrNotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err, _ := apply(t, f, c.ct, c.cmd).(error)
			if !errors.Is(err, c.kind) {
				t.Fatalf("got %v, want %v", err, c.kind)
			}
		})
	}
	top, _ := s.Topic("default/orders")
	if len(top.Subscribers) != 3 || top.Published != 0 || len(s.QueueItems()) != 0 {
		t.Errorf("refused commands changed the topic: %+v, queue %d", top, len(s.QueueItems()))
	}
}

func TestResubscribingReplacesTheFiltersAndUnsubscribingRemoves(t *testing.T) {
	f, s := topicWithSubscribers(t)
	res := apply(t, f, SubscribeTopicType, SubscribeTopic{Topic: "orders", Subscriber: model.TopicSubscriber{Function: "films", CreatedAt: t0.Add(1e9)}}).(SubscribeTopicResult)
	top, _ := s.Topic("default/orders")
	if res.Created || len(top.Subscribers) != 3 || top.Subscribers[2].Filters != nil || !top.Subscribers[2].CreatedAt.Equal(t0) {
		t.Fatalf("resubscribe: %+v, topic %+v", res, top)
	}
	apply(t, f, UnsubscribeTopicType, UnsubscribeTopic{Topic: "orders", Function: "books"})
	top, _ = s.Topic("default/orders")
	if len(top.Subscribers) != 2 || top.Subscribers[0].Function != "all" || top.Subscribers[1].Function != "films" {
		t.Errorf("after unsubscribing books: %+v", top.Subscribers)
	}
	// A description change keeps the subscribers.
	if r := apply(t, f, PutTopicType, PutTopic{Topic: model.Topic{Name: "orders", Description: "new"}}).(PutTopicResult); r.Created {
		t.Error("changing a topic reported it created")
	}
	if top, _ = s.Topic("default/orders"); top.Description != "new" || len(top.Subscribers) != 2 || !top.CreatedAt.Equal(t0) {
		t.Errorf("after a description change: %+v", top)
	}
}

func TestRemovingAFunctionIsRefusedWhileATopicNamesItUnlessForced(t *testing.T) {
	f, s := topicWithSubscribers(t)
	res := apply(t, f, RemoveFunctionType, RemoveFunction{Name: "books"}).(RemoveFunctionResult)
	if res.Deleted || len(res.Dependents.Topics) != 1 || res.Dependents.Topics[0] != "orders" {
		t.Fatalf("remove without force: %+v, want refused naming topic orders", res)
	}
	res = apply(t, f, RemoveFunctionType, RemoveFunction{Name: "books", Force: true}).(RemoveFunctionResult)
	if !res.Deleted {
		t.Fatalf("remove with force: %+v", res)
	}
	top, _ := s.Topic("default/orders")
	if len(top.Subscribers) != 2 || top.Subscribers[0].Function != "all" || top.Subscribers[1].Function != "films" {
		t.Errorf("subscribers after books was removed with force: %+v", top.Subscribers)
	}
}

func TestDeletingATopicRemovesItsSubscriptionsAndANamespaceWithTopicsIsNotEmpty(t *testing.T) {
	f, s := topicWithSubscribers(t)
	apply(t, f, PutNamespaceType, PutNamespace{Namespace: model.Namespace{Name: "team"}})
	apply(t, f, PutTopicType, PutTopic{Topic: model.Topic{Name: "events", Namespace: "team"}})
	err, _ := apply(t, f, DeleteNamespaceType, DeleteNamespace{Name: "team"}).(error)
	if !errors.Is(err, state.ErrNotEmpty) {
		t.Fatalf("deleting a namespace that holds a topic: %v, want ErrNotEmpty", err)
	}
	apply(t, f, DeleteTopicType, DeleteTopic{Namespace: "team", Name: "events"})
	if err, _ := apply(t, f, DeleteNamespaceType, DeleteNamespace{Name: "team"}).(error); err != nil {
		t.Fatalf("deleting the emptied namespace: %v", err)
	}

	apply(t, f, DeleteTopicType, DeleteTopic{Name: "orders"})
	if len(s.Topics("")) != 0 {
		t.Fatal("the topic is still there")
	}
	deps, _ := s.FunctionDependents("default/books")
	if !deps.Empty() {
		t.Errorf("books is still named after its topic went: %s", deps)
	}
}

func TestTopicsSurviveASnapshot(t *testing.T) {
	f, _ := topicWithSubscribers(t)
	apply(t, f, PublishType, Publish{Topic: "orders", MessageID: "m1", Message: json.RawMessage(`{}`), Time: t0})
	f2, s2 := restored(t, f)
	top, err := s2.Topic("default/orders")
	if err != nil || len(top.Subscribers) != 3 || top.Subscribers[1].Filters[0].Value != "book" || top.Published != 1 || top.LastMessage != "m1" {
		t.Fatalf("restored topic: %+v %v", top, err)
	}
	// The restored store applies the same retried publish as the old one:
	// nothing new.
	apply(t, f2, PublishType, Publish{Topic: "orders", MessageID: "m1", Message: json.RawMessage(`{}`), Time: t0})
	if n := len(s2.QueueItems()); n != 1 {
		t.Errorf("after a retried publish on the restored store the queue holds %d, want 1", n)
	}
}
