package state

import (
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"

	"nimbus/internal/model"
)

// ErrNotEmpty is returned when a namespace still holds functions,
// schedules or topics and so cannot be removed.
var ErrNotEmpty = errors.New("not empty")

// PutNamespace creates or replaces a namespace; it reports whether it was
// created.
func (s *Store) PutNamespace(ns model.Namespace) (created bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.namespaces[ns.Name]
	if ok {
		ns.CreatedAt = old.CreatedAt
	}
	s.namespaces[ns.Name] = &ns
	s.editLocked(func(v *view) {
		v.namespaces, v.keys, v.blocked = maps.Clone(s.namespaces), maps.Clone(s.keys), s.blockedLocked()
	})
	return !ok
}

// DeleteNamespace removes an empty namespace, with the keys and users
// bound to it (and their sessions): a namespace made again later under
// the same name must not let them back in. The default namespace cannot
// be removed.
func (s *Store) DeleteNamespace(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == model.DefaultNamespace {
		return fmt.Errorf("the %s namespace cannot be removed: %w", name, ErrNotEmpty)
	}
	if _, ok := s.namespaces[name]; !ok {
		return fmt.Errorf("namespace %q: %w", name, ErrNotFound)
	}
	var fns, scs, tps int
	for _, f := range s.functions {
		if f.Namespace == name {
			fns++
		}
	}
	for _, sc := range s.schedules {
		if sc.Namespace == name {
			scs++
		}
	}
	for _, t := range s.topics {
		if t.Namespace == name {
			tps++
		}
	}
	if fns+scs+tps > 0 {
		return fmt.Errorf("namespace %q still holds %d functions, %d schedules and %d topics; delete them first: %w", name, fns, scs, tps, ErrNotEmpty)
	}
	delete(s.namespaces, name)
	delete(s.prices, name)     // its price override goes with it
	delete(s.budgets, name)    // and its budget
	delete(s.builds, name)     // and its builds
	for qn := range s.layers { // and its layers
		if strings.HasPrefix(qn, name+"/") {
			delete(s.layers, qn)
			delete(s.layerSeq, qn)
		}
	}
	for id, k := range s.keys {
		if k.Namespace == name {
			delete(s.keys, id)
		}
	}
	for u, user := range s.users {
		if user.Namespace == name {
			delete(s.users, u)
		}
	}
	for id, sess := range s.sessions {
		if _, ok := s.users[sess.User]; !ok {
			delete(s.sessions, id)
		}
	}
	s.editLocked(func(v *view) {
		v.namespaces, v.keys, v.blocked = maps.Clone(s.namespaces), maps.Clone(s.keys), s.blockedLocked()
	})
	return nil
}

// Namespace returns a namespace. The default namespace always exists.
// It reads without the store's lock (every request asks).
func (s *Store) Namespace(name string) (model.Namespace, error) {
	if ns, ok := s.view.Load().namespaces[name]; ok {
		return *ns, nil
	}
	if name == model.DefaultNamespace {
		return model.Namespace{Name: name}, nil
	}
	return model.Namespace{}, fmt.Errorf("namespace %q: %w", name, ErrNotFound)
}

// Namespaces returns every namespace (the default one included), sorted
// by name.
func (s *Store) Namespaces() []model.Namespace {
	s.mu.RLock()
	out := make([]model.Namespace, 0, len(s.namespaces)+1)
	for _, ns := range s.namespaces {
		out = append(out, *ns)
	}
	_, stored := s.namespaces[model.DefaultNamespace]
	s.mu.RUnlock()
	if !stored {
		out = append(out, model.Namespace{Name: model.DefaultNamespace})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ConcurrencyLimit returns a namespace's concurrency limit (0: none) and
// the reserved concurrency its functions hold together. It reads without
// the store's lock (every invocation asks).
func (s *Store) ConcurrencyLimit(ns string) (limit, reserved int) {
	v := s.view.Load()
	n, ok := v.namespaces[ns]
	if !ok || n.Concurrency == 0 {
		return 0, 0
	}
	return n.Concurrency, v.reserved[ns]
}
