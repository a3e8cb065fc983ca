package state

import (
	"fmt"
	"slices"
	"strings"

	"nimbus/internal/model"
)

// names reports whether ref, a function reference NAME[:QUALIFIER],
// names function name (any of its versions or aliases).
func names(ref, name string) bool {
	base, _ := model.SplitQualifier(ref)
	return base == name
}

// namesAsDestination is names for a destination, "function:REF".
func namesAsDestination(dest, name string) bool {
	ref, ok := strings.CutPrefix(dest, "function:")
	return ok && names(ref, name)
}

// dependentsLocked lists what names function f (or a version or alias
// of it) in its namespace: the
// schedules that fire it, the subscriptions to it alone, the event source
// mappings that feed it, the other functions whose destination it is, and
// the topics it subscribes to, each sorted. Needs s.mu.
func (s *Store) dependentsLocked(f *model.Function) model.FunctionDependents {
	var d model.FunctionDependents
	ns := model.NamespaceOf(f.Namespace)
	for _, sc := range s.schedules {
		if model.NamespaceOf(sc.Namespace) == ns && names(sc.Function, f.Name) {
			d.Schedules = append(d.Schedules, sc.Name)
		}
	}
	for _, sub := range s.subscriptions {
		if model.NamespaceOf(sub.Namespace) == ns && names(sub.Function, f.Name) {
			d.Subscriptions = append(d.Subscriptions, sub.ID)
		}
	}
	for _, src := range s.sources {
		if src.Namespace == ns && names(src.Function, f.Name) {
			d.Sources = append(d.Sources, src.Name)
		}
	}
	for _, t := range s.topics {
		if t.Namespace == ns && slices.ContainsFunc(t.Subscribers, func(sub model.TopicSubscriber) bool { return names(sub.Function, f.Name) }) {
			d.Topics = append(d.Topics, t.Name)
		}
	}
	for _, other := range s.functions {
		if other == f || model.NamespaceOf(other.Namespace) != ns || other.Destinations == nil {
			continue
		}
		if namesAsDestination(other.Destinations.OnSuccess, f.Name) || namesAsDestination(other.Destinations.OnFailure, f.Name) {
			d.Destinations = append(d.Destinations, other.Name)
		}
	}
	slices.Sort(d.Schedules)
	slices.Sort(d.Subscriptions)
	slices.Sort(d.Destinations)
	slices.Sort(d.Sources)
	slices.Sort(d.Topics)
	return d
}

// FunctionDependents lists what names the function with the given
// qualified name (ErrNotFound when there is none).
func (s *Store) FunctionDependents(name string) (model.FunctionDependents, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, ok := s.functions[name]
	if !ok {
		return model.FunctionDependents{}, fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	return s.dependentsLocked(f), nil
}

// removeDependentsLocked removes d, the dependents of function f: its
// schedules, subscriptions, event source mappings and subscriptions to
// topics go, and the other functions' destinations that name it are
// cleared (in place: their revision and code stay).
// Needs s.mu; the caller publishes.
func (s *Store) removeDependentsLocked(f *model.Function, d model.FunctionDependents) {
	ns := model.NamespaceOf(f.Namespace)
	for _, name := range d.Schedules {
		delete(s.schedules, model.QualifiedName(ns, name))
	}
	for _, id := range d.Subscriptions {
		delete(s.subscriptions, id)
	}
	for _, name := range d.Sources {
		delete(s.sources, model.QualifiedName(ns, name))
	}
	for _, name := range d.Topics {
		qn := model.QualifiedName(ns, name)
		t := *s.topics[qn]
		t.Subscribers = slices.DeleteFunc(slices.Clone(t.Subscribers), func(sub model.TopicSubscriber) bool { return names(sub.Function, f.Name) })
		s.topics[qn] = &t
	}
	for _, name := range d.Destinations {
		qn := model.QualifiedName(ns, name)
		other := *s.functions[qn]
		dest := *other.Destinations
		if namesAsDestination(dest.OnSuccess, f.Name) {
			dest.OnSuccess = ""
		}
		if namesAsDestination(dest.OnFailure, f.Name) {
			dest.OnFailure = ""
		}
		other.Destinations = &dest
		if dest == (model.Destinations{}) {
			other.Destinations = nil
		}
		old := s.functions[qn]
		s.functions[qn] = &other
		s.functionChangedLocked(qn, old)
	}
}

// RemoveFunction removes a function, named by its qualified name
// (model.QualifiedName), unless schedules, subscriptions, event source
// mappings, other functions' destinations or topic subscriptions name it:
// then it reports deleted false and changes nothing, or, with force,
// removes them too in the same step. Its URL and its saved test events,
// which name nothing else, go with it in any case. It returns the
// dependents found. Its invocation records and its metric history stay
// until retention removes them.
func (s *Store) RemoveFunction(name string, force bool) (deps model.FunctionDependents, deleted bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.functions[name]
	if !ok {
		return deps, false, fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	deps = s.dependentsLocked(f)
	if !deps.Empty() {
		if !force {
			return deps, false, nil
		}
		s.removeDependentsLocked(f, deps)
	}
	delete(s.functions, name)
	delete(s.urls, name)
	delete(s.testEvents, name)
	s.deleteVersionsLocked(name)
	s.functionChangedLocked(name, f)
	s.urlChangedLocked(name)
	return deps, true, nil
}
