package service

import (
	"context"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/scan"
	"nimbus/internal/state"
	"nimbus/pkg/client"
)

// PutNamespace creates namespace ns.Name or changes its settings; it
// reports whether it is new.
func (s *Service) PutNamespace(ctx context.Context, ns client.Namespace) (client.Namespace, bool, error) {
	if ns.Concurrency < 0 {
		return client.Namespace{}, false, state.Errorf(state.ErrInvalid, "concurrency must be 0 (no limit) or more")
	}
	if ns.ScanPolicy != "" {
		if _, err := scan.ParsePolicy(ns.ScanPolicy); err != nil {
			return client.Namespace{}, false, state.Errorf(state.ErrInvalid, "scan_policy: %v", err)
		}
	}
	ns.CreatedAt = time.Now().UTC()
	res, err := fsm.Apply(ctx, s.d.Control, fsm.PutNamespace{Namespace: ns})
	if err != nil {
		return client.Namespace{}, false, err
	}
	stored, err := s.store.Namespace(ns.Name)
	return stored, res.Created, err
}

// DeleteNamespace removes an empty namespace (not the default one), with
// the keys and users bound to it; ErrNotEmpty while it holds functions or
// schedules.
func (s *Service) DeleteNamespace(ctx context.Context, name string) error {
	_, err := fsm.Apply(ctx, s.d.Control, fsm.DeleteNamespace{Name: name})
	return err
}

// Namespace is namespace name.
func (s *Service) Namespace(name string) (client.Namespace, error) { return s.store.Namespace(name) }

// Namespaces lists every namespace.
func (s *Service) Namespaces() []client.Namespace { return s.store.Namespaces() }
