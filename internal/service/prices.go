package service

import (
	"context"
	"math"
	"regexp"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// MaxPrice bounds each price: beyond it a price is a typing slip, not a
// tariff (a thousand currency units per GB-second or per million
// requests).
const MaxPrice = 1000

var currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)

// Prices returns the price table that applies to namespace ns ("" for
// the cluster's) and where it came from (state.PricesFrom...).
func (s *Service) Prices(ns string) (model.PriceTable, string) { return s.store.Prices(ns) }

// SetPrices sets the cluster's price table (ns "") or namespace ns's
// override after checking it: a three-letter currency, prices that are
// numbers from 0 to MaxPrice, a free tier that is not negative.
func (s *Service) SetPrices(ctx context.Context, ns string, p model.PriceTable) error {
	if !currencyRe.MatchString(p.Currency) {
		return state.Errorf(state.ErrInvalid, "currency %q is not a three-letter ISO 4217 code such as USD or EUR", p.Currency)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"per_gb_second", p.PerGBSecond}, {"per_million_requests", p.PerMillionRequests},
		{"per_provisioned_gb_second", p.PerProvisionedGBSecond}, {"free_gb_seconds", p.FreeGBSeconds},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < 0 {
			return state.Errorf(state.ErrInvalid, "%s must be a number of 0 or more, not %v", f.name, f.v)
		}
		if f.name != "free_gb_seconds" && f.v > MaxPrice {
			return state.Errorf(state.ErrInvalid, "%s %v is more than %d %s: a typing slip?", f.name, f.v, MaxPrice, p.Currency)
		}
	}
	if p.FreeRequests < 0 {
		return state.Errorf(state.ErrInvalid, "free_requests must be 0 or more, not %d", p.FreeRequests)
	}
	_, err := fsm.Apply(ctx, s.d.Control, fsm.PutPrices{Namespace: ns, Prices: &p})
	return err
}

// ResetPrices removes namespace ns's price override (ns "": the
// cluster's table, back to the default).
func (s *Service) ResetPrices(ctx context.Context, ns string) error {
	_, err := fsm.Apply(ctx, s.d.Control, fsm.PutPrices{Namespace: ns})
	return err
}
