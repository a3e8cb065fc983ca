package state

import (
	"fmt"
	"sort"
	"time"

	"nimbus/pkg/client"
)

// UpsertFunction creates the function or replaces it with a new revision.
// The revision is the previous one plus one (1 for a new function); the
// timestamps come from now, which the caller takes from the command. It
// reports whether the function was created.
func (s *Store) UpsertFunction(f client.Function, now time.Time) (client.Function, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, exists := s.functions[f.Name]
	f.UpdatedAt = now
	if exists {
		f.Revision = prev.Revision + 1
		f.CreatedAt = prev.CreatedAt
	} else {
		f.Revision = 1
		f.CreatedAt = now
	}
	stored := f
	s.functions[f.Name] = &stored
	s.publishLocked()
	return stored, !exists
}

// DeleteFunction removes a function. Its invocation records stay until
// retention removes them.
func (s *Store) DeleteFunction(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.functions[name]; !ok {
		return fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	delete(s.functions, name)
	s.publishLocked()
	return nil
}

// Function returns the named function.
func (s *Store) Function(name string) (client.Function, error) {
	f, ok := (*s.fnView.Load())[name]
	if !ok {
		return client.Function{}, fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	return *f, nil
}

// Functions returns every function, sorted by name.
func (s *Store) Functions() []client.Function {
	s.mu.RLock()
	out := make([]client.Function, 0, len(s.functions))
	for _, f := range s.functions {
		out = append(out, *f)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
