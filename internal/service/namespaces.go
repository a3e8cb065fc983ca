package service

import (
	"context"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/scan"
	"nimbus/internal/state"
)

// PutNamespace creates namespace ns.Name or changes its settings; it
// reports whether it is new.
func (s *Service) PutNamespace(ctx context.Context, ns model.Namespace) (model.Namespace, bool, error) {
	if ns.Concurrency < 0 {
		return model.Namespace{}, false, state.Errorf(state.ErrInvalid, "concurrency must be 0 (no limit) or more")
	}
	if ns.ScanPolicy != "" {
		if _, err := scan.ParsePolicy(ns.ScanPolicy); err != nil {
			return model.Namespace{}, false, state.Errorf(state.ErrInvalid, "scan_policy: %v", err)
		}
	}
	ns.CreatedAt = time.Now().UTC()
	res, err := fsm.Apply(ctx, s.d.Control, fsm.PutNamespace{Namespace: ns})
	if err != nil {
		return model.Namespace{}, false, err
	}
	stored, err := s.store.Namespace(ns.Name)
	return stored, res.Created, err
}

// DeleteNamespace removes an empty namespace (not the default one), with
// the keys and users bound to it; ErrNotEmpty while it holds functions,
// schedules or topics.
func (s *Service) DeleteNamespace(ctx context.Context, name string) error {
	_, err := fsm.Apply(ctx, s.d.Control, fsm.DeleteNamespace{Name: name})
	return err
}

// Namespace is namespace name.
func (s *Service) Namespace(name string) (model.Namespace, error) { return s.store.Namespace(name) }

// Namespaces lists every namespace.
func (s *Service) Namespaces() []model.Namespace { return s.store.Namespaces() }
