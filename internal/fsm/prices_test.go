package fsm

import (
	"errors"
	"testing"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

// Prices: the default until an admin sets the cluster's, a namespace's
// override over it until removed (or the namespace is), in snapshots.
func TestPricesApplyAndSurviveASnapshot(t *testing.T) {
	f, s := newFSM()
	if p, from := s.Prices("default"); from != state.PricesFromDefault || p != model.DefaultPrices() {
		t.Fatalf("before any: %+v from %s", p, from)
	}
	cluster := model.PriceTable{Currency: "EUR", PerGBSecond: 0.00002, PerMillionRequests: 0.25, PerProvisionedGBSecond: 0.000005}
	apply(t, f, PutPricesType, PutPrices{Prices: &cluster})
	apply(t, f, PutNamespaceType, PutNamespace{Namespace: model.Namespace{Name: "team-a"}})
	own := model.PriceTable{Currency: "EUR", PerGBSecond: 0.00001, FreeGBSeconds: model.LambdaFreeGBSeconds, FreeRequests: model.LambdaFreeRequests}
	apply(t, f, PutPricesType, PutPrices{Namespace: "team-a", Prices: &own})
	if res := apply(t, f, PutPricesType, PutPrices{Namespace: "nowhere", Prices: &own}); !isNotFound(res) {
		t.Fatalf("an unknown namespace's prices: %v", res)
	}
	check := func(s *state.Store) {
		t.Helper()
		if p, from := s.Prices("team-a"); from != state.PricesFromNamespace || p != own {
			t.Errorf("team-a: %+v from %s", p, from)
		}
		if p, from := s.Prices("default"); from != state.PricesFromCluster || p != cluster {
			t.Errorf("default: %+v from %s", p, from)
		}
	}
	check(s)
	_, s2 := restored(t, f)
	check(s2)
	apply(t, f, PutPricesType, PutPrices{Namespace: "team-a"})
	if _, from := s.Prices("team-a"); from != state.PricesFromCluster {
		t.Errorf("after removing the override: from %s", from)
	}
	apply(t, f, PutPricesType, PutPrices{Namespace: "team-a", Prices: &own})
	apply(t, f, DeleteNamespaceType, DeleteNamespace{Name: "team-a"})
	if len(s.PriceOverrides()) != 0 {
		t.Errorf("a removed namespace's prices stay: %v", s.PriceOverrides())
	}
}

func isNotFound(res any) bool {
	err, ok := res.(error)
	return ok && errors.Is(err, state.ErrNotFound)
}
