package state

import (
	"bytes"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"time"

	"nimbus/internal/model"
)

// Topics are keyed by their qualified name (model.QualifiedName) in every
// method but PutTopic. A topic holds its subscribers, so that removing it
// removes them in the same step.

// PutTopic creates a topic or changes its description, keeping the
// subscribers, the counts and the creation time of one that exists. It
// reports whether the topic is new.
func (s *Store) PutTopic(t model.Topic) (created bool) {
	t.Namespace = model.NamespaceOf(t.Namespace)
	qn := model.QualifiedName(t.Namespace, t.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.topics[qn]; ok {
		nt := *old
		nt.Description = t.Description
		s.topics[qn] = &nt
		return false
	}
	t.Subscribers, t.Published, t.LastMessage, t.LastPublish = nil, 0, "", time.Time{}
	s.topics[qn] = &t
	return true
}

// DeleteTopic removes a topic with its subscriptions. Events it already
// enqueued stay queued.
func (s *Store) DeleteTopic(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.topics[name]; !ok {
		return errNoTopic(name)
	}
	delete(s.topics, name)
	return nil
}

// SubscribeTopic subscribes a function of the topic's namespace, or
// replaces the filters of one subscribed already (keeping its creation
// time); it reports whether the subscription is new. The function must
// exist.
func (s *Store) SubscribeTopic(name string, sub model.TopicSubscriber) (created bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.topics[name]
	if !ok {
		return false, errNoTopic(name)
	}
	if _, ok := s.functions[model.QualifiedName(old.Namespace, sub.Function)]; !ok {
		return false, Errorf(ErrNotFound, "function %q not found in namespace %q", sub.Function, old.Namespace)
	}
	t := *old
	t.Subscribers = slices.Clone(old.Subscribers)
	i, found := slices.BinarySearchFunc(t.Subscribers, sub.Function, func(x model.TopicSubscriber, fn string) int {
		return strings.Compare(x.Function, fn)
	})
	if found {
		sub.CreatedAt = t.Subscribers[i].CreatedAt
		t.Subscribers[i] = sub
	} else {
		t.Subscribers = slices.Insert(t.Subscribers, i, sub)
	}
	s.topics[name] = &t
	return !found, nil
}

// UnsubscribeTopic removes function fn's subscription to a topic.
func (s *Store) UnsubscribeTopic(name, fn string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.topics[name]
	if !ok {
		return errNoTopic(name)
	}
	i := slices.IndexFunc(old.Subscribers, func(x model.TopicSubscriber) bool { return x.Function == fn })
	if i < 0 {
		return Errorf(ErrNotFound, "function %q does not subscribe to topic %q", fn, old.Name)
	}
	t := *old
	t.Subscribers = slices.Delete(slices.Clone(old.Subscribers), i, i+1)
	s.topics[name] = &t
	return nil
}

// Publish delivers message messageID, published at `at`, to a topic's
// subscribers: it enqueues, for each subscriber whose filters all match
// and whose function exists, one event (model.TopicEvent) whose request
// ID is model.TopicRequestID(messageID, function). It returns how many
// subscribers matched. Publishing the same message ID again enqueues
// nothing new (the request IDs are taken) and is not counted again when
// it is the topic's latest message.
func (s *Store) Publish(name, messageID string, message json.RawMessage, at time.Time) (matched int, err error) {
	dec := json.NewDecoder(bytes.NewReader(message))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return 0, Errorf(ErrInvalid, "the message is not valid JSON: %v", err)
	}
	s.mu.Lock()
	old, ok := s.topics[name]
	if !ok {
		s.mu.Unlock()
		return 0, errNoTopic(name)
	}
	var items []model.QueueItem
	var event json.RawMessage
	for _, sub := range old.Subscribers {
		if _, ok := s.functions[model.QualifiedName(old.Namespace, sub.Function)]; !ok || !sub.MatchesAll(doc) {
			continue
		}
		if event == nil {
			event = model.TopicEvent(old.Namespace, old.Name, messageID, message, at)
		}
		items = append(items, model.QueueItem{
			RequestID: model.TopicRequestID(messageID, sub.Function), Namespace: old.Namespace, Function: sub.Function,
			Event: event, Trigger: "topic:" + old.Name, EnqueuedAt: at,
		})
	}
	if old.LastMessage != messageID {
		t := *old
		t.Published++
		t.LastMessage, t.LastPublish = messageID, at
		s.topics[name] = &t
	}
	s.mu.Unlock()
	if len(items) > 0 {
		s.Enqueue(items)
	}
	return len(items), nil
}

// Topic returns one topic.
func (s *Store) Topic(name string) (model.Topic, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.topics[name]
	if !ok {
		return model.Topic{}, errNoTopic(name)
	}
	return *t, nil
}

// Topics returns the topics of namespace ns ("" for every namespace),
// sorted by namespace and name.
func (s *Store) Topics(ns string) []model.Topic {
	s.mu.RLock()
	out := make([]model.Topic, 0, len(s.topics))
	for _, t := range s.topics {
		if ns == "" || t.Namespace == ns {
			out = append(out, *t)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		return model.QualifiedName(out[i].Namespace, out[i].Name) < model.QualifiedName(out[j].Namespace, out[j].Name)
	})
	return out
}

// errNoTopic says that the topic with qualified name qn does not exist.
func errNoTopic(qn string) error {
	ns, name, _ := strings.Cut(qn, "/")
	return Errorf(ErrNotFound, "topic %q not found in namespace %q", name, ns)
}
