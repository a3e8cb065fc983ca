package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/mail"
	"net/url"
	"slices"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/notify"
	"nimbus/internal/state"
)

// Subscriptions lists namespace ns's notification subscriptions.
func (s *Service) Subscriptions(ns string) []model.Subscription {
	out := []model.Subscription{}
	for _, sub := range s.store.Subscriptions() {
		if model.NamespaceOf(sub.Namespace) == ns {
			out = append(out, sub)
		}
	}
	return out
}

// Subscribe stores a subscription of namespace ns: {function?, on, webhook
// | email}. The answer's Warning says why its notifications may not be
// delivered (an e-mail one on a server without a relay, in a cluster).
func (s *Service) Subscribe(ctx context.Context, ns string, sub model.Subscription) (model.Subscription, error) {
	if len(sub.On) == 0 {
		return sub, state.Errorf(state.ErrInvalid, "say on which conditions to notify: on: %v", notify.Conditions)
	}
	for _, c := range sub.On {
		if !slices.Contains(notify.Conditions, c) {
			return sub, state.Errorf(state.ErrInvalid, "condition %q is not one of %v", c, notify.Conditions)
		}
	}
	if sub.Function != "" && slices.Contains(sub.On, notify.OnBudget) {
		return sub, state.Errorf(state.ErrInvalid, "a budget concerns the whole namespace: a subscription on %q names no function", notify.OnBudget)
	}
	if (sub.Webhook == "") == (sub.Email == "") {
		return sub, state.Errorf(state.ErrInvalid, "give exactly one of webhook (a URL) and email (an address)")
	}
	if sub.Webhook != "" {
		if u, err := url.Parse(sub.Webhook); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return sub, state.Errorf(state.ErrInvalid, "webhook %q is not an http(s) URL", sub.Webhook)
		}
	}
	warning := ""
	if sub.Email != "" {
		if _, err := mail.ParseAddress(sub.Email); err != nil {
			return sub, state.Errorf(state.ErrInvalid, "email %q is not an address: %v", sub.Email, err)
		}
		switch {
		case s.d.Mail:
		case !s.d.Clustered:
			// A single server sends every notification itself: without a
			// relay no mail could ever go out.
			return sub, state.Errorf(state.ErrInvalid, "%s", "e-mail notifications need an SMTP relay, and this server has none: "+
				"restart it with --smtp-addr HOST:PORT (and --smtp-from), or subscribe a --webhook")
		default:
			// The leader sends notifications; other servers may have a
			// relay that this one cannot see.
			warning = "this server has no --smtp-addr: e-mail notifications are sent by the leader, " +
				"so they go out only while a server started with --smtp-addr leads"
		}
	}
	sub.Warning = "" // an answer field, never stored
	sub.Namespace = ns
	if sub.Function != "" {
		if err := s.checkTarget(ns, sub.Function); err != nil {
			return sub, err
		}
	}
	b := make([]byte, 8)
	rand.Read(b)
	sub.ID, sub.Created = "sub-"+hex.EncodeToString(b), time.Now().UTC()
	if _, err := fsm.Apply(ctx, s.d.Control, fsm.PutSubscription{Subscription: sub}); err != nil {
		return sub, err
	}
	sub.Warning = warning
	return sub, nil
}

// Unsubscribe removes subscription id of namespace ns (one of another
// namespace is as unknown as one that does not exist).
func (s *Service) Unsubscribe(ctx context.Context, ns, id string) error {
	if !slices.ContainsFunc(s.store.Subscriptions(), func(sub model.Subscription) bool {
		return sub.ID == id && model.NamespaceOf(sub.Namespace) == ns
	}) {
		return state.Errorf(state.ErrNotFound, "subscription %q: not found", id)
	}
	_, err := fsm.Apply(ctx, s.d.Control, fsm.DeleteSubscription{ID: id})
	return err
}
