package state

import (
	"fmt"
	"sort"
	"strings"

	"nimbus/internal/model"
)

// PublishLayer stores a new version of layer l.Name in l.Namespace,
// numbered one past the last ever published under that name (a removed
// version's number is not reused), and returns it. A namespace that
// does not exist is ErrNotFound.
func (s *Store) PublishLayer(l model.Layer) (model.Layer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := model.NamespaceOf(l.Namespace)
	if _, ok := s.namespaces[ns]; !ok && ns != model.DefaultNamespace {
		return model.Layer{}, fmt.Errorf("namespace %q: %w", ns, ErrNotFound)
	}
	l.Namespace = ns
	qn := model.QualifiedName(ns, l.Name)
	s.layerSeq[qn]++
	l.Version = s.layerSeq[qn]
	stored := l
	s.layers[qn] = append(s.layers[qn], &stored)
	return stored, nil
}

// DeleteLayer removes version of layer name in namespace ns: ErrNotFound
// if there is no such version, ErrConflict (naming them) while functions
// mount it.
func (s *Store) DeleteLayer(ns, name string, version int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns = model.NamespaceOf(ns)
	qn := model.QualifiedName(ns, name)
	list := s.layers[qn]
	i := sort.Search(len(list), func(i int) bool { return list[i].Version >= version })
	if i == len(list) || list[i].Version != version {
		return fmt.Errorf("layer %s:%d: %w", name, version, ErrNotFound)
	}
	if users := s.layerUsersLocked(ns, name, version); len(users) > 0 {
		return Errorf(ErrConflict, "layer %s:%d is mounted by %s: deploy them without it first", name, version, strings.Join(users, ", "))
	}
	s.layers[qn] = append(list[:i:i], list[i+1:]...)
	if len(s.layers[qn]) == 0 {
		delete(s.layers, qn)
	}
	return nil
}

// layerUsersLocked names namespace ns's functions that mount name:version.
func (s *Store) layerUsersLocked(ns, name string, version int64) []string {
	var users []string
	for _, f := range s.functions {
		if f.Namespace != ns {
			continue
		}
		for _, r := range f.LayerRefs {
			if r.Name == name && r.Version == version {
				users = append(users, f.Name)
			}
		}
	}
	sort.Strings(users)
	return users
}

// checkLayersLocked refuses a function that mounts a layer version its
// namespace does not have (ErrNotFound): one removed since the deploy
// resolved it.
func (s *Store) checkLayersLocked(f model.Function) error {
	for _, r := range f.LayerRefs {
		found := false
		for _, l := range s.layers[model.QualifiedName(f.Namespace, r.Name)] {
			found = found || l.Version == r.Version && l.SHA256 == r.SHA256
		}
		if !found {
			return fmt.Errorf("layer %s:%d: %w", r.Name, r.Version, ErrNotFound)
		}
	}
	return nil
}

// Layer is version of layer name in namespace ns; version 0 is the
// latest.
func (s *Store) Layer(ns, name string, version int64) (model.Layer, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	list := s.layers[model.QualifiedName(model.NamespaceOf(ns), name)]
	for i := len(list) - 1; i >= 0; i-- {
		if version == 0 || list[i].Version == version {
			return *list[i], nil
		}
	}
	if version == 0 {
		return model.Layer{}, fmt.Errorf("layer %q: %w", name, ErrNotFound)
	}
	return model.Layer{}, fmt.Errorf("layer %s:%d: %w", name, version, ErrNotFound)
}

// Layers lists namespace ns's layers, by name then version; of one name
// only unless name is "".
func (s *Store) Layers(ns, name string) []model.Layer {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ns = model.NamespaceOf(ns)
	var out []model.Layer
	for qn, list := range s.layers {
		if !strings.HasPrefix(qn, ns+"/") || name != "" && qn != model.QualifiedName(ns, name) {
			continue
		}
		for _, l := range list {
			out = append(out, *l)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// allLayersLocked lists every layer version for a snapshot, by
// qualified name then version; restoreLayersLocked reads them back.
func (s *Store) allLayersLocked() ([]*model.Layer, map[string]int64) {
	var out []*model.Layer
	for _, list := range s.layers {
		out = append(out, list...)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := model.QualifiedName(out[i].Namespace, out[i].Name), model.QualifiedName(out[j].Namespace, out[j].Name)
		return a < b || a == b && out[i].Version < out[j].Version
	})
	seq := make(map[string]int64, len(s.layerSeq))
	for k, v := range s.layerSeq {
		seq[k] = v
	}
	return out, seq
}

func (s *Store) restoreLayersLocked(snap *Snapshot) {
	s.layers = map[string][]*model.Layer{}
	for _, l := range snap.Layers {
		qn := model.QualifiedName(l.Namespace, l.Name)
		s.layers[qn] = append(s.layers[qn], l)
	}
	s.layerSeq = map[string]int64{}
	for k, v := range snap.LayerSeq {
		s.layerSeq[k] = v
	}
}
