package state

import (
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"nimbus/internal/model"
)

// PublishVersion makes the next version of function name in namespace
// ns: an immutable copy of its head, numbered one past the last ever
// published for it, with description (when not "") in place of the
// function's. If the latest version is of the head's revision already,
// that version is returned instead (created false), as Lambda does when
// nothing changed since.
func (s *Store) PublishVersion(ns, name, description string, now time.Time) (model.Function, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	qn := model.QualifiedName(model.NamespaceOf(ns), name)
	f, ok := s.functions[qn]
	if !ok {
		return model.Function{}, false, fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	list := s.versions[qn]
	if n := len(list); n > 0 && list[n-1].Revision == f.Revision {
		return *list[n-1], false, nil
	}
	v := *f
	s.versionSeq[qn]++
	v.Version = s.versionSeq[qn]
	v.Provisioned = 0
	if description != "" {
		v.Description = description
	}
	v.CreatedAt, v.UpdatedAt = now, now
	s.versions[qn] = append(list, &v)
	s.versionsChangedLocked(qn)
	return v, true, nil
}

// DeleteVersion removes a published version: ErrNotFound when there is
// no such version, ErrConflict (naming them) while aliases route to it.
func (s *Store) DeleteVersion(ns, name string, version int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	qn := model.QualifiedName(model.NamespaceOf(ns), name)
	list := s.versions[qn]
	i := sort.Search(len(list), func(i int) bool { return list[i].Version >= version })
	if i == len(list) || list[i].Version != version {
		return fmt.Errorf("version %s:%d: %w", name, version, ErrNotFound)
	}
	var users []string
	for _, a := range s.aliases[qn] {
		if a.Version == version || a.Routing != nil && a.Routing.Version == version {
			users = append(users, a.Name)
		}
	}
	if len(users) > 0 {
		sort.Strings(users)
		return Errorf(ErrConflict, "version %d of %s is what alias %s routes to: point it elsewhere or remove it first", version, name, strings.Join(users, ", "))
	}
	s.versions[qn] = append(list[:i:i], list[i+1:]...)
	if len(s.versions[qn]) == 0 {
		delete(s.versions, qn)
	}
	s.versionsChangedLocked(qn)
	return nil
}

// PutAlias creates alias a (create: ErrConflict if its name is taken)
// or replaces it (not create: ErrNotFound if there is none). The
// versions it names must exist; routing must name another version than
// the alias's own, both published, with a weight between 0 and 1.
func (s *Store) PutAlias(a model.Alias, create bool, now time.Time) (model.Alias, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a.Namespace = model.NamespaceOf(a.Namespace)
	qn := model.QualifiedName(a.Namespace, a.Function)
	if _, ok := s.functions[qn]; !ok {
		return model.Alias{}, fmt.Errorf("function %q: %w", a.Function, ErrNotFound)
	}
	if !model.ValidAliasName(a.Name) {
		return model.Alias{}, Errorf(ErrInvalid, "alias name %q must be 1-128 letters, digits, '-' and '_', and not a number", a.Name)
	}
	if err := s.checkVersionLocked(qn, a.Function, a.Version); err != nil {
		return model.Alias{}, err
	}
	if r := a.Routing; r != nil {
		switch {
		case !(r.Weight > 0 && r.Weight < 1):
			return model.Alias{}, Errorf(ErrInvalid, "the routing weight %v must be more than 0 and less than 1 (a share of the invocations)", r.Weight)
		case a.Version == 0 || r.Version == 0:
			return model.Alias{}, Errorf(ErrInvalid, "routing is between two published versions, not $LATEST")
		case r.Version == a.Version:
			return model.Alias{}, Errorf(ErrInvalid, "the alias already routes to version %d: routing names a second version", a.Version)
		}
		if err := s.checkVersionLocked(qn, a.Function, r.Version); err != nil {
			return model.Alias{}, err
		}
	}
	old, exists := s.aliases[qn][a.Name]
	switch {
	case create && exists:
		return model.Alias{}, Errorf(ErrConflict, "alias %s of %s exists already: update it instead", a.Name, a.Function)
	case !create && !exists:
		return model.Alias{}, fmt.Errorf("alias %s:%s: %w", a.Function, a.Name, ErrNotFound)
	case create && len(s.aliases[qn]) >= model.MaxAliasesPerFunction:
		return model.Alias{}, Errorf(ErrConflict, "%s has %d aliases, the most a function may have", a.Function, model.MaxAliasesPerFunction)
	}
	a.CreatedAt, a.UpdatedAt = now, now
	if exists {
		a.CreatedAt = old.CreatedAt
	}
	// The view shares the inner maps: replace them, never change them.
	m := maps.Clone(s.aliases[qn])
	if m == nil {
		m = map[string]*model.Alias{}
	}
	stored := a
	m[a.Name] = &stored
	s.aliases[qn] = m
	s.versionsChangedLocked(qn)
	return stored, nil
}

// checkVersionLocked refuses (ErrInvalid) a version function qn does
// not have; 0, $LATEST, is always there.
func (s *Store) checkVersionLocked(qn, name string, version int64) error {
	if version == 0 {
		return nil
	}
	for _, v := range s.versions[qn] {
		if v.Version == version {
			return nil
		}
	}
	return Errorf(ErrInvalid, "%s has no version %d (nimbus versions ls %s lists those it has)", name, version, name)
}

// DeleteAlias removes an alias (ErrNotFound if there is none).
func (s *Store) DeleteAlias(ns, function, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	qn := model.QualifiedName(model.NamespaceOf(ns), function)
	if _, ok := s.aliases[qn][name]; !ok {
		return fmt.Errorf("alias %s:%s: %w", function, name, ErrNotFound)
	}
	m := maps.Clone(s.aliases[qn])
	delete(m, name)
	s.aliases[qn] = m
	if len(m) == 0 {
		delete(s.aliases, qn)
	}
	s.versionsChangedLocked(qn)
	return nil
}

// deleteVersionsLocked forgets function qn's versions, aliases and
// version numbers, with the function. Needs s.mu; the caller publishes.
func (s *Store) deleteVersionsLocked(qn string) {
	delete(s.versions, qn)
	delete(s.versionSeq, qn)
	delete(s.aliases, qn)
	s.versionsChangedLocked(qn)
}

// versionsChangedLocked publishes function qn's versions and aliases as
// the store has them now. Needs mu held for writing.
func (s *Store) versionsChangedLocked(qn string) {
	s.editLocked(func(v *view) {
		if list, ok := s.versions[qn]; ok {
			v.versions = v.versions.with(qn, list)
		} else {
			v.versions = v.versions.without(qn)
		}
		if m, ok := s.aliases[qn]; ok {
			v.aliases = v.aliases.with(qn, m)
		} else {
			v.aliases = v.aliases.without(qn)
		}
	})
}

// Versions lists the published versions of function name, ascending
// (ErrNotFound if there is no such function).
func (s *Store) Versions(ns, name string) ([]model.Function, error) {
	v := s.view.Load()
	qn := model.QualifiedName(model.NamespaceOf(ns), name)
	if _, ok := v.functions.get(qn); !ok {
		return nil, fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	list, _ := v.versions.get(qn)
	out := make([]model.Function, 0, len(list))
	for _, f := range list {
		out = append(out, *f)
	}
	return out, nil
}

// Aliases lists the aliases of function name, by name (ErrNotFound if
// there is no such function).
func (s *Store) Aliases(ns, name string) ([]model.Alias, error) {
	v := s.view.Load()
	qn := model.QualifiedName(model.NamespaceOf(ns), name)
	if _, ok := v.functions.get(qn); !ok {
		return nil, fmt.Errorf("function %q: %w", name, ErrNotFound)
	}
	m, _ := v.aliases.get(qn)
	out := make([]model.Alias, 0, len(m))
	for _, a := range m {
		out = append(out, *a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Alias returns alias name of function (ErrNotFound if either is
// missing).
func (s *Store) Alias(ns, function, name string) (model.Alias, error) {
	v := s.view.Load()
	m, _ := v.aliases.get(model.QualifiedName(model.NamespaceOf(ns), function))
	a, ok := m[name]
	if !ok {
		return model.Alias{}, fmt.Errorf("alias %s:%s: %w", function, name, ErrNotFound)
	}
	return *a, nil
}

// Resolve returns what an invocation of ref runs: ref is a qualified
// function name (model.QualifiedName) with an optional qualifier,
// NS/NAME[:$LATEST|:VERSION|:ALIAS]. An alias with routing picks its
// version with r, drawn uniformly from [0, 1). The function returned has
// Version set (0 for the head). A function, version or alias that does
// not exist is ErrNotFound; a malformed qualifier ErrInvalid. It reads
// the lock-free view: no write delays it.
func (s *Store) Resolve(ref string, r float64) (model.Function, error) {
	qn, qual := model.SplitQualifier(ref)
	v := s.view.Load()
	f, ok := v.functions.get(qn)
	if !ok {
		return model.Function{}, fmt.Errorf("function %q: %w", qn, ErrNotFound)
	}
	if qual == "" {
		return *f, nil
	}
	q, err := model.ParseQualifier(qual)
	if err != nil {
		return model.Function{}, Errorf(ErrInvalid, "%v", err)
	}
	version := q.Version
	switch {
	case q.Latest:
		return *f, nil
	case q.Alias != "":
		m, _ := v.aliases.get(qn)
		a, ok := m[q.Alias]
		if !ok {
			return model.Function{}, fmt.Errorf("alias %s:%s: %w", f.Name, q.Alias, ErrNotFound)
		}
		if version = a.Pick(r); version == 0 {
			return *f, nil
		}
	}
	list, _ := v.versions.get(qn)
	i := sort.Search(len(list), func(i int) bool { return list[i].Version >= version })
	if i == len(list) || list[i].Version != version {
		return model.Function{}, fmt.Errorf("version %s:%d: %w", f.Name, version, ErrNotFound)
	}
	return *list[i], nil
}

// allVersionsLocked lists every version and alias for a snapshot, each
// sorted; restoreVersionsLocked reads them back.
func (s *Store) allVersionsLocked() ([]*model.Function, map[string]int64, []*model.Alias) {
	var versions []*model.Function
	for _, list := range s.versions {
		versions = append(versions, list...)
	}
	sort.Slice(versions, func(i, j int) bool {
		a, b := versions[i].QualifiedName(), versions[j].QualifiedName()
		return a < b || a == b && versions[i].Version < versions[j].Version
	})
	var aliases []*model.Alias
	for _, m := range s.aliases {
		for _, a := range m {
			aliases = append(aliases, a)
		}
	}
	sort.Slice(aliases, func(i, j int) bool {
		a, b := model.QualifiedName(aliases[i].Namespace, aliases[i].Function), model.QualifiedName(aliases[j].Namespace, aliases[j].Function)
		return a < b || a == b && aliases[i].Name < aliases[j].Name
	})
	var seq map[string]int64
	if len(s.versionSeq) > 0 {
		seq = maps.Clone(s.versionSeq)
	}
	return versions, seq, aliases
}

func (s *Store) restoreVersionsLocked(snap *Snapshot) {
	s.versions = map[string][]*model.Function{}
	for _, v := range snap.Versions {
		qn := v.QualifiedName()
		s.versions[qn] = append(s.versions[qn], v)
	}
	s.versionSeq = maps.Clone(snap.VersionSeq)
	if s.versionSeq == nil {
		s.versionSeq = map[string]int64{}
	}
	s.aliases = map[string]map[string]*model.Alias{}
	for _, a := range snap.Aliases {
		qn := model.QualifiedName(a.Namespace, a.Function)
		if s.aliases[qn] == nil {
			s.aliases[qn] = map[string]*model.Alias{}
		}
		s.aliases[qn][a.Name] = a
	}
}
