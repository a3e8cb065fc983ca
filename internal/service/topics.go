package service

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// ErrTooLarge refuses content over its limit (a topic message over
// model.MaxTopicMessage).
var ErrTooLarge = errors.New("too large")

// Bounds of what a topic stores.
const (
	maxTopicDescription = 1024
	maxTopicFilters     = 16
)

// Published is what a publish answers: the message's ID and how many
// subscribers it was queued for.
type Published struct {
	MessageID   string
	Subscribers int
}

// checkTopicName refuses a topic name that names a namespace
// ("team:orders", "team/orders"): a caller reaches only the topics of its
// own namespace, ns.
func checkTopicName(ns, name string) error {
	if strings.ContainsAny(name, ":/") {
		return state.Errorf(state.ErrInvalid,
			"topic name %q names a namespace: a request reaches only the topics of its own namespace (%s); use a key of the topic's namespace",
			name, ns)
	}
	return nil
}

// Topics lists namespace ns's topics.
func (s *Service) Topics(ns string) []model.Topic { return s.store.Topics(ns) }

// Topic is topic name of namespace ns, with its subscribers and counts.
func (s *Service) Topic(ns, name string) (model.Topic, error) {
	if err := checkTopicName(ns, name); err != nil {
		return model.Topic{}, err
	}
	return s.store.Topic(model.QualifiedName(ns, name))
}

// PutTopic creates topic t in namespace ns, or changes the description of
// the one there (its subscribers and counts stay); it reports whether the
// topic is new. The caller has checked the name's syntax.
func (s *Service) PutTopic(ctx context.Context, ns string, t model.Topic) (model.Topic, bool, error) {
	if err := checkTopicName(ns, t.Name); err != nil {
		return t, false, err
	}
	if len(t.Description) > maxTopicDescription {
		return t, false, state.Errorf(state.ErrInvalid, "the description is %d bytes, over the limit of %d", len(t.Description), maxTopicDescription)
	}
	t.Namespace, t.CreatedAt = ns, time.Now().UTC()
	res, err := fsm.Apply(ctx, s.d.Control, fsm.PutTopic{Topic: t})
	if err != nil {
		return t, false, err
	}
	stored, err := s.store.Topic(model.QualifiedName(ns, t.Name))
	return stored, res.Created, err
}

// DeleteTopic removes topic name of namespace ns with its subscriptions
// and returns it. Events it queued already still run.
func (s *Service) DeleteTopic(ctx context.Context, ns, name string) (model.Topic, error) {
	t, err := s.Topic(ns, name)
	if err != nil {
		return t, err
	}
	_, err = fsm.Apply(ctx, s.d.Control, fsm.DeleteTopic{Namespace: ns, Name: name})
	return t, err
}

// SubscribeTopic subscribes function sub.Function of namespace ns to
// topic name (or replaces its filters) and returns the topic; it reports
// whether the subscription is new.
func (s *Service) SubscribeTopic(ctx context.Context, ns, name string, sub model.TopicSubscriber) (model.Topic, bool, error) {
	if err := checkTopicName(ns, name); err != nil {
		return model.Topic{}, false, err
	}
	if sub.Function == "" {
		return model.Topic{}, false, state.Errorf(state.ErrInvalid, "a subscription needs a function")
	}
	if len(sub.Filters) > maxTopicFilters {
		return model.Topic{}, false, state.Errorf(state.ErrInvalid, "%d filters, over the limit of %d", len(sub.Filters), maxTopicFilters)
	}
	for _, f := range sub.Filters {
		if !model.ValidTopicPath(f.Path) {
			return model.Topic{}, false, state.Errorf(state.ErrInvalid, "filter path %q: a path is %s", f.Path, model.TopicPathRule)
		}
	}
	if _, err := s.store.Topic(model.QualifiedName(ns, name)); err != nil {
		return model.Topic{}, false, err
	}
	if err := s.checkTarget(ns, sub.Function); err != nil {
		return model.Topic{}, false, state.Errorf(state.ErrNotFound, "function %q not found in namespace %q", sub.Function, ns)
	}
	sub.CreatedAt = time.Now().UTC()
	res, err := fsm.Apply(ctx, s.d.Control, fsm.SubscribeTopic{Namespace: ns, Topic: name, Subscriber: sub})
	if err != nil {
		return model.Topic{}, false, err
	}
	t, err := s.store.Topic(model.QualifiedName(ns, name))
	return t, res.Created, err
}

// UnsubscribeTopic removes function fn's subscription to topic name of
// namespace ns and returns the topic.
func (s *Service) UnsubscribeTopic(ctx context.Context, ns, name, fn string) (model.Topic, error) {
	if err := checkTopicName(ns, name); err != nil {
		return model.Topic{}, err
	}
	if _, err := fsm.Apply(ctx, s.d.Control, fsm.UnsubscribeTopic{Namespace: ns, Topic: name, Function: fn}); err != nil {
		return model.Topic{}, err
	}
	return s.store.Topic(model.QualifiedName(ns, name))
}

// messageIDRe is the syntax of a message ID a publisher gives.
var messageIDRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

// Publish commits message, a JSON value of at most model.MaxTopicMessage
// bytes, to topic name of namespace ns, under message ID id (a new random
// one when id is ""): once this returns without error
// the message is in the Raft log, and with it one queued event per
// matching subscriber (see fsm.Publish), which runs with the function's
// retries, dead letters and destinations as any async invocation does.
// Publishing again under the same id queues nothing for the subscribers
// whose event for it is still queued or recorded (records are kept for
// the retention period), so a publisher that retries after an unknown
// outcome with the same id does not deliver the message twice.
func (s *Service) Publish(ctx context.Context, ns, name, id string, message []byte) (Published, error) {
	if err := checkTopicName(ns, name); err != nil {
		return Published{}, err
	}
	message = bytes.TrimSpace(message)
	switch {
	case len(message) > model.MaxTopicMessage:
		return Published{}, state.Errorf(ErrTooLarge, "the message is %d bytes, over the limit of %d (256 KB)", len(message), model.MaxTopicMessage)
	case len(message) == 0:
		return Published{}, state.Errorf(state.ErrInvalid, "the message is empty: publish a JSON value")
	case !json.Valid(message):
		return Published{}, state.Errorf(state.ErrInvalid, "the message is not valid JSON")
	case id != "" && !messageIDRe.MatchString(id):
		return Published{}, state.Errorf(state.ErrInvalid, "message ID %q must be 1 to 128 of A-Z, a-z, 0-9, '.', '_', ':' and '-'", id)
	}
	if _, err := s.store.Topic(model.QualifiedName(ns, name)); err != nil {
		return Published{}, err
	}
	if id == "" {
		id = newMessageID()
	}
	res, err := fsm.Apply(ctx, s.d.Control, fsm.Publish{Namespace: ns, Topic: name, MessageID: id, Message: message, Time: time.Now().UTC()})
	if err != nil {
		return Published{}, err
	}
	if res.Subscribers > 0 && s.d.Woken != nil {
		s.d.Woken()
	}
	return Published{MessageID: id, Subscribers: res.Subscribers}, nil
}

// newMessageID returns a random UUID (version 4).
func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
