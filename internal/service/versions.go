package service

import (
	"context"
	"math/rand/v2"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// PublishVersion makes an immutable numbered version of function name's
// head, with description in place of the function's when not "". If
// the latest version is of the head's revision already, that is
// returned instead (created false): publishing twice makes one version.
func (s *Service) PublishVersion(ctx context.Context, ns, name, description string) (model.Function, bool, error) {
	if len(description) > model.MaxVersionDescription {
		return model.Function{}, false, state.Errorf(state.ErrInvalid, "the description is %d bytes; at most %d", len(description), model.MaxVersionDescription)
	}
	res, err := fsm.Apply(ctx, s.d.Control, fsm.PublishVersion{Namespace: ns, Name: name, Description: description, Now: time.Now().UTC()})
	if err != nil {
		return model.Function{}, false, err
	}
	if res.Created {
		s.log.Info("version published", "namespace", model.NamespaceOf(ns), "function", name, "version", res.Function.Version, "revision", res.Function.Revision)
	}
	return res.Function, res.Created, nil
}

// Versions lists function name's published versions, ascending.
func (s *Service) Versions(ns, name string) ([]model.Function, error) {
	return s.store.Versions(ns, name)
}

// DeleteVersion removes a published version that no alias routes to
// ($LATEST is not a version: remove the function instead).
func (s *Service) DeleteVersion(ctx context.Context, ns, name string, version int64) error {
	if version < 1 {
		return state.Errorf(state.ErrInvalid, "$LATEST is not a published version: remove the function to remove it")
	}
	_, err := fsm.Apply(ctx, s.d.Control, fsm.DeleteVersion{Namespace: ns, Name: name, Version: version})
	return err
}

// Aliases lists function name's aliases by name.
func (s *Service) Aliases(ns, name string) ([]model.Alias, error) { return s.store.Aliases(ns, name) }

// Alias returns alias name of function.
func (s *Service) Alias(ns, function, name string) (model.Alias, error) {
	return s.store.Alias(ns, function, name)
}

// PutAlias creates (create) or replaces an alias; the store checks the
// versions it names (see state.Store.PutAlias).
func (s *Service) PutAlias(ctx context.Context, ns string, a model.Alias, create bool) (model.Alias, error) {
	if len(a.Description) > model.MaxVersionDescription {
		return model.Alias{}, state.Errorf(state.ErrInvalid, "the description is %d bytes; at most %d", len(a.Description), model.MaxVersionDescription)
	}
	a.Namespace = ns
	res, err := fsm.Apply(ctx, s.d.Control, fsm.PutAlias{Alias: a, Create: create, Now: time.Now().UTC()})
	return res.Alias, err
}

// DeleteAlias removes an alias.
func (s *Service) DeleteAlias(ctx context.Context, ns, function, name string) error {
	_, err := fsm.Apply(ctx, s.d.Control, fsm.DeleteAlias{Namespace: ns, Function: function, Name: name})
	return err
}

// Resolve returns what invoking ref (NAME[:QUALIFIER]) in namespace ns
// runs now: the head, a version, or the version an alias picks (its
// routing weighted at random).
func (s *Service) Resolve(ns, ref string) (model.Function, error) {
	return s.store.Resolve(model.QualifiedName(ns, ref), rand.Float64())
}

// checkTarget refuses a function reference (NAME[:QUALIFIER]) that a
// schedule, subscription, mapping or URL names when it names nothing.
func (s *Service) checkTarget(ns, ref string) error {
	_, err := s.store.Resolve(model.QualifiedName(ns, ref), 0)
	return err
}
