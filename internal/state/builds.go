package state

import (
	"fmt"
	"sort"

	"nimbus/internal/model"
)

// RecordBuild stores a dependency build: the last model.MaxBuilds of
// each namespace are kept, and a succeeded one's layer becomes the one
// later builds with its cache key reuse. An ID already recorded is
// ErrConflict.
func (s *Store) RecordBuild(b model.Build) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := model.NamespaceOf(b.Namespace)
	b.Namespace = ns
	for _, old := range s.builds[ns] {
		if old.ID == b.ID {
			return fmt.Errorf("build %s: %w", b.ID, ErrConflict)
		}
	}
	if b.Status == model.BuildSucceeded && b.Layer == nil {
		return fmt.Errorf("%w: a succeeded build needs its layer", ErrInvalid)
	}
	list := append(s.builds[ns], &b)
	if len(list) > model.MaxBuilds {
		list = append([]*model.Build(nil), list[len(list)-model.MaxBuilds:]...)
	}
	s.builds[ns] = list
	if b.Status == model.BuildSucceeded && b.Layer.CacheKey != "" {
		l := *b.Layer
		s.depLayers[l.CacheKey] = &l
	}
	return nil
}

// Builds lists namespace ns's builds, newest first, of function fn
// alone unless fn is "".
func (s *Store) Builds(ns, fn string) []model.Build {
	s.mu.RLock()
	defer s.mu.RUnlock()
	list := s.builds[model.NamespaceOf(ns)]
	var out []model.Build
	for i := len(list) - 1; i >= 0; i-- {
		if fn == "" || list[i].Function == fn {
			out = append(out, *list[i])
		}
	}
	return out
}

// Build is build id of namespace ns (ErrNotFound if it is not kept).
func (s *Store) Build(ns, id string) (model.Build, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, b := range s.builds[model.NamespaceOf(ns)] {
		if b.ID == id {
			return *b, nil
		}
	}
	return model.Build{}, fmt.Errorf("build %q: %w", id, ErrNotFound)
}

// DepLayer is the layer a build with cacheKey made, if one did.
func (s *Store) DepLayer(cacheKey string) (model.DepLayer, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	l, ok := s.depLayers[cacheKey]
	if !ok {
		return model.DepLayer{}, false
	}
	return *l, true
}

// allBuildsLocked lists every namespace's builds, namespaces in order,
// each oldest first; allDepLayersLocked the layers by cache key.
func (s *Store) allBuildsLocked() []*model.Build {
	names := make([]string, 0, len(s.builds))
	for ns := range s.builds {
		names = append(names, ns)
	}
	sort.Strings(names)
	var out []*model.Build
	for _, ns := range names {
		out = append(out, s.builds[ns]...)
	}
	return out
}

func (s *Store) allDepLayersLocked() []*model.DepLayer {
	out := make([]*model.DepLayer, 0, len(s.depLayers))
	for _, l := range s.depLayers {
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CacheKey < out[j].CacheKey })
	return out
}

// restoreBuildsLocked fills the builds and layers from a snapshot.
func (s *Store) restoreBuildsLocked(snap *Snapshot) {
	s.builds = map[string][]*model.Build{}
	for _, b := range snap.Builds {
		s.builds[b.Namespace] = append(s.builds[b.Namespace], b)
	}
	s.depLayers = map[string]*model.DepLayer{}
	for _, l := range snap.DepLayers {
		s.depLayers[l.CacheKey] = l
	}
}
