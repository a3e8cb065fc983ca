package state

import (
	"sort"

	"nimbus/internal/model"
)

// PutTestEvent saves e (UpdatedAt and UpdatedBy set by the caller, from
// the command) under its function, which must exist (ErrNotFound), and
// reports whether the name is new. A new name beyond
// model.MaxTestEvents for the function is refused (ErrConflict); a name
// already saved is replaced at the limit too.
func (s *Store) PutTestEvent(e model.TestEvent) (model.TestEvent, bool, error) {
	e.Namespace = model.NamespaceOf(e.Namespace)
	qn := model.QualifiedName(e.Namespace, e.Function)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.functions[qn]; !ok {
		return model.TestEvent{}, false, Errorf(ErrNotFound, "function %q does not exist in namespace %q", e.Function, e.Namespace)
	}
	saved := s.testEvents[qn]
	_, exists := saved[e.Name]
	if !exists && len(saved) >= model.MaxTestEvents {
		return model.TestEvent{}, false, Errorf(ErrConflict,
			"function %q has %d saved test events, the most a function may have: remove one first (nimbus test-events rm %s NAME)",
			e.Function, len(saved), e.Function)
	}
	if saved == nil {
		saved = map[string]*model.TestEvent{}
		s.testEvents[qn] = saved
	}
	stored := e
	saved[e.Name] = &stored
	return stored, !exists, nil
}

// DeleteTestEvent removes test event name of the function with the given
// qualified name (ErrNotFound when there is none).
func (s *Store) DeleteTestEvent(function, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	saved := s.testEvents[function]
	if _, ok := saved[name]; !ok {
		return Errorf(ErrNotFound, "function %q has no test event %q", function, name)
	}
	delete(saved, name)
	if len(saved) == 0 {
		delete(s.testEvents, function)
	}
	return nil
}

// TestEvent returns test event name of the function with the given
// qualified name.
func (s *Store) TestEvent(function, name string) (model.TestEvent, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.testEvents[function][name]
	if !ok {
		return model.TestEvent{}, Errorf(ErrNotFound, "function %q has no test event %q", function, name)
	}
	return *e, nil
}

// TestEvents returns the test events of the function with the given
// qualified name, sorted by name; nil for none.
func (s *Store) TestEvents(function string) []model.TestEvent {
	s.mu.RLock()
	var out []model.TestEvent
	for _, e := range s.testEvents[function] {
		out = append(out, *e)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// allTestEventsLocked lists every test event, sorted by function then
// name (a snapshot's order). Needs s.mu.
func (s *Store) allTestEventsLocked() []*model.TestEvent {
	var out []*model.TestEvent
	for _, saved := range s.testEvents {
		for _, e := range saved {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if qa, qb := model.QualifiedName(a.Namespace, a.Function), model.QualifiedName(b.Namespace, b.Function); qa != qb {
			return qa < qb
		}
		return a.Name < b.Name
	})
	return out
}
