package state

import (
	"sort"
	"time"

	"nimbus/internal/model"
)

// PutFunctionURL creates or replaces the URL of the function u names,
// which must exist (ErrNotFound otherwise); now, from the command, is its
// update time (and its creation time when it is new). It reports whether
// the URL is new.
func (s *Store) PutFunctionURL(u model.FunctionURL, now time.Time) (model.FunctionURL, bool, error) {
	u.Namespace = model.NamespaceOf(u.Namespace)
	qn := model.QualifiedName(u.Namespace, u.Function)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.functions[qn]; !ok {
		return model.FunctionURL{}, false, Errorf(ErrNotFound, "function %q does not exist in namespace %q", u.Function, u.Namespace)
	}
	old, exists := s.urls[qn]
	u.CreatedAt, u.UpdatedAt = now, now
	if exists {
		u.CreatedAt = old.CreatedAt
	}
	stored := u
	s.urls[qn] = &stored
	s.urlChangedLocked(qn)
	return stored, !exists, nil
}

// DeleteFunctionURL removes the URL of the function with the given
// qualified name (model.QualifiedName).
func (s *Store) DeleteFunctionURL(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.urls[name]; !ok {
		return Errorf(ErrNotFound, "function %q has no URL", name)
	}
	delete(s.urls, name)
	s.urlChangedLocked(name)
	return nil
}

// FunctionURL returns the URL of the function with the given qualified
// name. It reads the lock-free view: the URL route calls it on every
// request.
func (s *Store) FunctionURL(name string) (model.FunctionURL, error) {
	u, ok := s.view.Load().urls.get(name)
	if !ok {
		return model.FunctionURL{}, Errorf(ErrNotFound, "function %q has no URL", name)
	}
	return *u, nil
}

// FunctionURLs returns the URLs of namespace ns ("" for every namespace),
// sorted by namespace and function.
func (s *Store) FunctionURLs(ns string) []model.FunctionURL {
	s.mu.RLock()
	out := make([]model.FunctionURL, 0, len(s.urls))
	for _, u := range s.urls {
		if ns == "" || u.Namespace == ns {
			out = append(out, *u)
		}
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		return model.QualifiedName(out[i].Namespace, out[i].Function) < model.QualifiedName(out[j].Namespace, out[j].Function)
	})
	return out
}

// urlChangedLocked publishes the URL of function qn as s.urls has it
// now (absent: removed). Needs mu held for writing.
func (s *Store) urlChangedLocked(qn string) {
	s.editLocked(func(v *view) {
		if u, ok := s.urls[qn]; ok {
			v.urls = v.urls.with(qn, u)
		} else {
			v.urls = v.urls.without(qn)
		}
	})
}
