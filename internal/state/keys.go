package state

import (
	"fmt"
	"sort"
	"time"
)

// Key is a stored API key. The secret itself is never stored: only its
// SHA-256 (keys carry at least 128 random bits, so a fast hash suffices).
type Key struct {
	ID         string `json:"id"`
	SecretHash string `json:"secret_hash"` // hex SHA-256 of the secret part
	Role       string `json:"role"`
	// Namespace binds a non-admin key to one namespace ("" means the
	// default one); admin keys act in every namespace.
	Namespace string    `json:"namespace,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	Note      string    `json:"note,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`  // zero: never
	RateLimit float64   `json:"rate_limit,omitempty"` // requests/s; 0: the server's default
}

// DeleteKey revokes a key.
func (s *Store) DeleteKey(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[id]; !ok {
		return fmt.Errorf("key %q: %w", id, ErrNotFound)
	}
	delete(s.keys, id)
	s.publishLocked()
	return nil
}

// PutKey stores a key, replacing one with the same ID.
func (s *Store) PutKey(k Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[k.ID] = &k
	s.publishLocked()
}

// Key returns the key with the given ID.
func (s *Store) Key(id string) (Key, error) {
	k, ok := s.view.Load().keys[id]
	if !ok {
		return Key{}, fmt.Errorf("key %q: %w", id, ErrNotFound)
	}
	return *k, nil
}

// Keys returns every key, sorted by ID.
func (s *Store) Keys() []Key {
	s.mu.RLock()
	out := make([]Key, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, *k)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
