package state

import (
	"fmt"

	"nimbus/internal/model"
)

// Price sources: which table Prices found for a namespace.
const (
	PricesFromNamespace = "namespace" // the namespace's own override
	PricesFromCluster   = "cluster"   // the cluster's table, set by an admin
	PricesFromDefault   = "default"   // model.DefaultPrices: nobody set one
)

// PutPrices sets the cluster's price table (ns "") or namespace ns's
// override; a nil table removes it (back to the cluster's, or the
// default). A namespace that does not exist is ErrNotFound (the default
// namespace always exists).
func (s *Store) PutPrices(ns string, p *model.PriceTable) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ns != "" {
		ns = model.NamespaceOf(ns)
		if _, ok := s.namespaces[ns]; !ok && ns != model.DefaultNamespace {
			return fmt.Errorf("namespace %q: %w", ns, ErrNotFound)
		}
	}
	if p == nil {
		delete(s.prices, ns)
		return nil
	}
	s.prices[ns] = *p
	return nil
}

// Prices returns the price table that applies to namespace ns (ns ""
// asks for the cluster's) and where it came from.
func (s *Store) Prices(ns string) (model.PriceTable, string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if ns != "" {
		if p, ok := s.prices[model.NamespaceOf(ns)]; ok {
			return p, PricesFromNamespace
		}
	}
	if p, ok := s.prices[""]; ok {
		return p, PricesFromCluster
	}
	return model.DefaultPrices(), PricesFromDefault
}

// PriceOverrides lists the namespaces with a price table of their own.
func (s *Store) PriceOverrides() map[string]model.PriceTable {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]model.PriceTable{}
	for ns, p := range s.prices {
		if ns != "" {
			out[ns] = p
		}
	}
	return out
}
