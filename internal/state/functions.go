package state

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"nimbus/internal/model"
)

// UpsertFunction creates the function or replaces it with a new revision.
// The revision is the previous one plus one (1 for a new function); the
// timestamps come from now, which the caller takes from the command. It
// reports whether the function was created. A reserved concurrency that,
// with what the namespace's other functions reserve, exceeds the
// namespace's limit is refused (ErrInvalid), whatever server the deploy
// came through.
func (s *Store) UpsertFunction(f model.Function, now time.Time) (model.Function, bool, error) {
	f.Namespace = model.NamespaceOf(f.Namespace)
	s.mu.Lock()
	defer s.mu.Unlock()
	prev, exists := s.functions[f.QualifiedName()]
	if err := s.checkLayersLocked(f); err != nil {
		return model.Function{}, false, err
	}
	if f.ReservedConcurrency != nil {
		if ns, ok := s.namespaces[f.Namespace]; ok && ns.Concurrency > 0 {
			reserved := 0
			for _, other := range s.functions {
				if other.Namespace == f.Namespace && other.Name != f.Name && other.ReservedConcurrency != nil {
					reserved += *other.ReservedConcurrency
				}
			}
			if err := CheckReserved(f.Namespace, *f.ReservedConcurrency, ns.Concurrency, reserved); err != nil {
				return model.Function{}, false, err
			}
		}
	}
	f.UpdatedAt = now
	if exists {
		f.Revision = prev.Revision + 1
		f.CreatedAt = prev.CreatedAt
		if f.Tags == nil {
			f.Tags = prev.Tags // a deploy keeps the tags
		}
	} else {
		f.Revision = 1
		f.CreatedAt = now
	}
	stored := f
	s.functions[f.QualifiedName()] = &stored
	s.functionChangedLocked(f.QualifiedName(), prev)
	return stored, !exists, nil
}

// CheckReserved refuses (ErrInvalid) reserving want of namespace ns's
// limit when its other functions reserve reserved already.
func CheckReserved(ns string, want, limit, reserved int) error {
	if limit > 0 && reserved+want > limit {
		return Errorf(ErrInvalid, "reserved_concurrency %d is more than namespace %s has left: its limit is %d and its other functions reserve %d",
			want, ns, limit, reserved)
	}
	return nil
}

// DeleteFunction removes a function, named by its qualified name
// (model.QualifiedName), and its URL. Its invocation records stay until
// retention removes them.
func (s *Store) DeleteFunction(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.functions[name]
	if !ok {
		return fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	delete(s.functions, name)
	delete(s.urls, name)
	delete(s.testEvents, name)
	s.deleteVersionsLocked(name)
	s.functionChangedLocked(name, old)
	s.urlChangedLocked(name)
	return nil
}

// Function returns the function with the given qualified name
// (model.QualifiedName).
func (s *Store) Function(name string) (model.Function, error) {
	f, ok := s.view.Load().functions.get(name)
	if !ok {
		return model.Function{}, fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	return *f, nil
}

// Functions returns the functions of namespace ns ("" for every
// namespace), sorted by namespace and name: in the order of their
// qualified names (nameOrder), each copied once. It reads the published
// view, not under the store's lock: a stored function is never changed
// in place, only replaced.
func (s *Store) Functions(ns string) []model.Function {
	prefix := ""
	if ns != "" {
		prefix = model.QualifiedName(ns, "")
	}
	names := s.names.current(&s.view)
	v := s.view.Load()
	i, _ := slices.BinarySearch(names, prefix)
	out := []model.Function{}
	for ; i < len(names) && strings.HasPrefix(names[i], prefix); i++ {
		if f, ok := v.functions.get(names[i]); ok {
			out = append(out, *f)
		}
	}
	return out
}

// ProvisionedFunctions returns the functions that ask for provisioned
// instances, in no order, from the published view (without the store's
// lock), copying only those: the leader asks every few seconds, and a
// copy of every function (Functions) is about 100 MB at 100,000.
func (s *Store) ProvisionedFunctions() []model.Function {
	var out []model.Function
	s.view.Load().functions.each(func(f *model.Function) {
		if f.Provisioned > 0 {
			out = append(out, *f)
		}
	})
	return out
}

// TagFunction sets the tags set (replacing the values of keys the
// function has) and removes the keys remove, on function name of
// namespace ns, without a new revision: ErrNotFound for no such
// function, ErrInvalid (and nothing changed) for tags beyond
// model.MaxTags or malformed ones.
func (s *Store) TagFunction(ns, name string, set map[string]string, remove []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	qn := model.QualifiedName(model.NamespaceOf(ns), name)
	old, ok := s.functions[qn]
	if !ok {
		return fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	tags := maps.Clone(old.Tags)
	if tags == nil {
		tags = map[string]string{}
	}
	for _, k := range remove {
		delete(tags, k)
	}
	for k, v := range set {
		switch {
		case k == "" || len(k) > model.MaxTagKeyLen:
			return Errorf(ErrInvalid, "tag key %q: 1-%d characters", k, model.MaxTagKeyLen)
		case strings.HasPrefix(strings.ToLower(k), "aws:"):
			return Errorf(ErrInvalid, "tag key %q: the prefix aws: is reserved", k)
		case len(v) > model.MaxTagValueLen:
			return Errorf(ErrInvalid, "tag %q: the value is %d characters; at most %d", k, len(v), model.MaxTagValueLen)
		}
		tags[k] = v
	}
	if len(tags) > model.MaxTags {
		return Errorf(ErrInvalid, "the function would have %d tags: at most %d", len(tags), model.MaxTags)
	}
	f := *old
	f.Tags = tags
	if len(tags) == 0 {
		f.Tags = nil
	}
	s.functions[qn] = &f
	s.functionChangedLocked(qn, old)
	return nil
}

// FunctionsAfter returns the first n functions of namespace ns ("" for
// every namespace) in the order of Functions whose name comes after
// after (a name within ns, a qualified name when ns is ""; "" for the
// first page), and reports whether more follow. It costs a binary search
// in the names in order (nameOrder) and the page: a page of 100 from
// 100,000 functions copies 100. Like Functions, it reads the view
// without the store's lock.
func (s *Store) FunctionsAfter(ns, after string, n int) (page []model.Function, more bool) {
	if n <= 0 {
		return nil, false
	}
	from, prefix := after, ""
	if ns != "" {
		prefix = model.QualifiedName(ns, "")
		from = prefix + after
	}
	names := s.names.current(&s.view)
	v := s.view.Load()
	page = make([]model.Function, 0, min(n, 128))
	i, found := slices.BinarySearch(names, from)
	if found && after != "" {
		i++ // strictly after
	}
	for ; i < len(names) && strings.HasPrefix(names[i], prefix); i++ {
		f, ok := v.functions.get(names[i])
		if !ok {
			continue // removed since the order was made
		}
		if len(page) == n {
			more = true
			break
		}
		page = append(page, *f)
	}
	return page, more
}
