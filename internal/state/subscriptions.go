package state

import (
	"fmt"
	"sort"

	"nimbus/internal/model"
)

// PutSubscription stores a notification subscription.
func (s *Store) PutSubscription(sub model.Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subscriptions[sub.ID] = &sub
}

// DeleteSubscription removes a subscription.
func (s *Store) DeleteSubscription(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.subscriptions[id]; !ok {
		return fmt.Errorf("subscription %q: %w", id, ErrNotFound)
	}
	delete(s.subscriptions, id)
	return nil
}

// Subscriptions returns every subscription, sorted by ID.
func (s *Store) Subscriptions() []model.Subscription {
	s.mu.RLock()
	out := make([]model.Subscription, 0, len(s.subscriptions))
	for _, v := range s.subscriptions {
		out = append(out, *v)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
