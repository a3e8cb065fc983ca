package service

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// Bounds of a budget.
const (
	MaxBudget          = 1e9 // a larger monthly budget is a typing slip
	MaxBudgetThreshold = 1000
	maxThresholds      = 10
)

// ErrBudgetExceeded is the error of an invocation refused because its
// namespace's budget has a hard limit that the month's spend reached.
var ErrBudgetExceeded = errors.New("budget exceeded")

// BudgetExceededError says which namespace and until when.
type BudgetExceededError struct {
	Namespace string
	Until     time.Time // the next month's start, when the limit lifts
}

func (e *BudgetExceededError) Error() string {
	return fmt.Sprintf("namespace %s has spent its monthly budget, which has a hard limit: invocations are refused until %s or until an admin raises the budget (nimbus budgets set)",
		e.Namespace, e.Until.Format("2006-01-02 15:04 MST"))
}

func (e *BudgetExceededError) Is(target error) bool { return target == ErrBudgetExceeded }

// CheckBudget refuses an invocation of namespace ns at now when its
// budget's hard limit was reached this month (a lock-free read: the
// invoke path and the dispatcher ask it for every run).
func (s *Service) CheckBudget(ns string, now time.Time) error {
	if s.store.BudgetBlocks(ns, now) {
		return &BudgetExceededError{Namespace: model.NamespaceOf(ns), Until: monthStart(now).AddDate(0, 1, 0)}
	}
	return nil
}

// PutBudget sets a namespace's budget after checking it: a monthly
// amount above 0 and at most MaxBudget, thresholds from 1 to
// MaxBudgetThreshold percent (at most 10, sorted and deduplicated here).
// A namespace that does not exist is state.ErrNotFound. It returns the
// budget as stored, with the month's spend and forecast at now.
func (s *Service) PutBudget(ctx context.Context, b model.Budget, now time.Time) (model.BudgetStatus, error) {
	var none model.BudgetStatus
	if math.IsNaN(b.Monthly) || math.IsInf(b.Monthly, 0) || b.Monthly <= 0 || b.Monthly > MaxBudget {
		return none, state.Errorf(state.ErrInvalid, "monthly must be an amount above 0 and at most %g, not %v", float64(MaxBudget), b.Monthly)
	}
	if len(b.Notify) > maxThresholds {
		return none, state.Errorf(state.ErrInvalid, "at most %d thresholds, not %d", maxThresholds, len(b.Notify))
	}
	for _, t := range b.Notify {
		if t < 1 || t > MaxBudgetThreshold {
			return none, state.Errorf(state.ErrInvalid, "threshold %d%% is not within 1%% and %d%% of the budget", t, MaxBudgetThreshold)
		}
	}
	b.Notify = slices.Compact(slices.Sorted(slices.Values(b.Notify)))
	b.Namespace = model.NamespaceOf(b.Namespace)
	b.UpdatedAt = time.Now().UTC()
	if _, err := fsm.Apply(ctx, s.d.Control, fsm.PutBudget{Budget: b}); err != nil {
		return none, err
	}
	stored, err := s.store.Budget(b.Namespace)
	if err != nil {
		return none, err
	}
	return s.budgetStatus(stored, now)
}

// budgetStatus is b with its namespace's month so far at now.
func (s *Service) budgetStatus(b model.Budget, now time.Time) (model.BudgetStatus, error) {
	rep, err := s.Cost(b.Namespace, "", now)
	if err != nil {
		return model.BudgetStatus{}, err
	}
	c := rep.Namespaces[0]
	return model.BudgetStatus{Budget: b, Currency: c.Prices.Currency, Spent: c.Total, Forecast: c.Forecast.Total}, nil
}

// DeleteBudget removes a namespace's budget.
func (s *Service) DeleteBudget(ctx context.Context, ns string) error {
	_, err := fsm.Apply(ctx, s.d.Control, fsm.DeleteBudget{Namespace: model.NamespaceOf(ns)})
	return err
}

// Budgets lists the budgets of namespace ns (state.AllNamespaces: every
// one) with this month's spend and forecast at now.
func (s *Service) Budgets(ns string, now time.Time) ([]model.BudgetStatus, error) {
	var out []model.BudgetStatus
	for _, b := range s.store.Budgets() {
		if ns != state.AllNamespaces && b.Namespace != model.NamespaceOf(ns) {
			continue
		}
		st, err := s.budgetStatus(b, now)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// CheckBudgets is the leader's budget check at now: for each budget it
// prices the month so far and its forecast (Cost), finds the thresholds
// they have crossed and whether the spend reached the budget, commits
// what changed (a BudgetCheck) and returns the alerts the commit found
// new, for the caller to send. Each alert is thus sent once a month, by
// the leader whose commit recorded it (one that dies between the commit
// and the sending loses it: at most once). A hard limit newly reached
// is logged as a warning.
func (s *Service) CheckBudgets(ctx context.Context, now time.Time) ([]model.BudgetAlert, error) {
	month := now.UTC().Format("2006-01")
	var out []model.BudgetAlert
	var errs []error
	for _, b := range s.store.Budgets() {
		rep, err := s.Cost(b.Namespace, "", now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c := rep.Namespaces[0]
		var found []model.BudgetAlert
		for _, t := range b.Notify {
			line := b.Monthly * float64(t) / 100
			for _, k := range []struct {
				kind   string
				amount float64
			}{{model.AlertSpend, c.Total}, {model.AlertForecast, c.Forecast.Total}} {
				if k.amount >= line {
					found = append(found, model.BudgetAlert{Namespace: b.Namespace, Month: month, Kind: k.kind, Threshold: t,
						Monthly: b.Monthly, Amount: k.amount, Currency: c.Prices.Currency})
				}
			}
		}
		exceeded := c.Total >= b.Monthly
		var keys []string
		for _, a := range found {
			keys = append(keys, a.Key())
		}
		same := b.Month == month
		if same && exceeded == b.Exceeded && !slices.ContainsFunc(keys, func(k string) bool { return !slices.Contains(b.Alerts, k) }) {
			continue // nothing new
		}
		res, err := fsm.Apply(ctx, s.d.Control, fsm.BudgetCheck{Namespace: b.Namespace, Month: month, Alerts: keys, Exceeded: exceeded})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if exceeded && b.HardLimit && !(same && b.Exceeded) {
			s.log.Warn("a namespace reached its budget's hard limit: its invocations are refused until the month ends or the budget is raised",
				"namespace", b.Namespace, "budget", b.Monthly, "spent", c.Total, "currency", c.Prices.Currency)
		}
		for _, a := range found {
			if slices.Contains(res.Fresh, a.Key()) {
				out = append(out, a)
			}
		}
	}
	return out, errors.Join(errs...)
}
