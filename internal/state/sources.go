package state

import (
	"fmt"
	"maps"
	"sort"
	"time"

	"nimbus/internal/model"
)

// PutSource creates or replaces an event source mapping, keeping what
// its consumers reported of an existing one (its progress and creation
// time); it reports whether the mapping is new. Its function must exist.
func (s *Store) PutSource(src model.Source, now time.Time) (created bool, err error) {
	src.Namespace = model.NamespaceOf(src.Namespace)
	qn := model.QualifiedName(src.Namespace, src.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.functions[model.QualifiedName(src.Namespace, src.Function)]; !ok {
		return false, Errorf(ErrNotFound, "function %q does not exist in namespace %s", src.Function, src.Namespace)
	}
	src.UpdatedAt = now
	if old, ok := s.sources[qn]; ok {
		src.CreatedAt, src.Progress = old.CreatedAt, old.Progress
		s.sources[qn] = &src
		return false, nil
	}
	src.CreatedAt = now
	s.sources[qn] = &src
	return true, nil
}

// DeleteSource removes an event source mapping, named by its qualified
// name (as in every method but PutSource).
func (s *Store) DeleteSource(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sources[name]; !ok {
		return fmt.Errorf("event source mapping %q: %w", name, ErrNotFound)
	}
	delete(s.sources, name)
	return nil
}

// SetSourceEnabled enables or disables an event source mapping.
func (s *Store) SetSourceEnabled(name string, enabled bool, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.sources[name]
	if !ok {
		return fmt.Errorf("event source mapping %q: %w", name, ErrNotFound)
	}
	src := *old
	src.Disabled, src.UpdatedAt = !enabled, now
	s.sources[name] = &src
	return nil
}

// RecordSourceProgress stores what consumers reported, by the mappings'
// qualified names; a mapping removed meanwhile is skipped.
func (s *Store) RecordSourceProgress(progress map[string]model.SourceProgress) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, p := range progress {
		old, ok := s.sources[name]
		if !ok {
			continue
		}
		src := *old
		p.Offsets = maps.Clone(p.Offsets)
		src.Progress = p
		s.sources[name] = &src
	}
}

// Source returns one event source mapping.
func (s *Store) Source(name string) (model.Source, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	src, ok := s.sources[name]
	if !ok {
		return model.Source{}, fmt.Errorf("event source mapping %q: %w", name, ErrNotFound)
	}
	return *src, nil
}

// Sources returns the event source mappings of namespace ns ("" for
// every namespace), sorted by qualified name.
func (s *Store) Sources(ns string) []model.Source {
	s.mu.RLock()
	out := make([]model.Source, 0, len(s.sources))
	for _, src := range s.sources {
		if ns == "" || src.Namespace == ns {
			out = append(out, *src)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		return model.QualifiedName(out[i].Namespace, out[i].Name) < model.QualifiedName(out[j].Namespace, out[j].Name)
	})
	return out
}

// AddDeadLetters stores dead letters that did not come from the queue
// (the messages an event source mapping gave up on), under their request
// IDs; one already stored is kept as it is. A redrive queues them as
// asynchronous events of their function.
func (s *Store) AddDeadLetters(letters []model.DeadLetter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, dl := range letters {
		if _, ok := s.deadLetters[dl.RequestID]; ok {
			continue
		}
		dl.Namespace = model.NamespaceOf(dl.Namespace)
		s.deadLetters[dl.RequestID] = &dl
		s.dlOrder = append(s.dlOrder, dl.RequestID)
	}
	s.trimDeadLettersLocked()
}
