package state

import (
	"fmt"
	"maps"
	"sort"

	"nimbus/internal/model"
)

// DeleteKey revokes a key.
func (s *Store) DeleteKey(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[id]; !ok {
		return fmt.Errorf("key %q: %w", id, ErrNotFound)
	}
	delete(s.keys, id)
	s.editLocked(func(v *view) { v.keys = maps.Clone(s.keys) })
	return nil
}

// PutKey stores a key, replacing one with the same ID.
func (s *Store) PutKey(k model.Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[k.ID] = &k
	s.editLocked(func(v *view) { v.keys = maps.Clone(s.keys) })
}

// Key returns the key with the given ID.
func (s *Store) Key(id string) (model.Key, error) {
	k, ok := s.view.Load().keys[id]
	if !ok {
		return model.Key{}, fmt.Errorf("key %q: %w", id, ErrNotFound)
	}
	return *k, nil
}

// Keys returns every key, sorted by ID.
func (s *Store) Keys() []model.Key {
	s.mu.RLock()
	out := make([]model.Key, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, *k)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
