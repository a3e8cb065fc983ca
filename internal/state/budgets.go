package state

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"nimbus/internal/model"
)

// PutBudget sets namespace b.Namespace's budget, keeping what the
// budget check recorded for the month (its alerts), except that the
// hard limit is lifted until the next check finds the spend at the new
// limit again (a budget raised lifts it). A namespace that does not
// exist is ErrNotFound.
func (s *Store) PutBudget(b model.Budget) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns := model.NamespaceOf(b.Namespace)
	if _, ok := s.namespaces[ns]; !ok && ns != model.DefaultNamespace {
		return fmt.Errorf("namespace %q: %w", ns, ErrNotFound)
	}
	b.Namespace = ns
	if old := s.budgets[ns]; old != nil {
		b.Month, b.Alerts = old.Month, slices.Clone(old.Alerts)
	} else {
		b.Month, b.Alerts = "", nil
	}
	b.Exceeded = false
	b.Notify = slices.Clone(b.Notify)
	s.budgets[ns] = &b
	s.editLocked(func(v *view) { v.blocked = s.blockedLocked() })
	return nil
}

// DeleteBudget removes namespace ns's budget (ErrNotFound if none).
func (s *Store) DeleteBudget(ns string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns = model.NamespaceOf(ns)
	if _, ok := s.budgets[ns]; !ok {
		return fmt.Errorf("budget of namespace %q: %w", ns, ErrNotFound)
	}
	delete(s.budgets, ns)
	s.editLocked(func(v *view) { v.blocked = s.blockedLocked() })
	return nil
}

// RecordBudgetCheck records what the budget check found for namespace
// ns in month: alerts sent (keys such as "spend:50") and whether the
// spend has reached the budget. A month other than the one recorded
// starts afresh. It returns the alerts that were not recorded before
// (those to send: a check that lost a race with another, or a leader's
// check repeated after a failover, sends nothing twice).
func (s *Store) RecordBudgetCheck(ns, month string, alerts []string, exceeded bool) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ns = model.NamespaceOf(ns)
	old := s.budgets[ns]
	if old == nil {
		return nil, fmt.Errorf("budget of namespace %q: %w", ns, ErrNotFound)
	}
	b := *old
	if b.Month != month {
		b.Month, b.Alerts, b.Exceeded = month, nil, false
	}
	b.Alerts = slices.Clone(b.Alerts)
	var fresh []string
	for _, a := range alerts {
		if !slices.Contains(b.Alerts, a) {
			b.Alerts = append(b.Alerts, a)
			fresh = append(fresh, a)
		}
	}
	sort.Strings(b.Alerts)
	b.Exceeded = exceeded
	s.budgets[ns] = &b
	s.editLocked(func(v *view) { v.blocked = s.blockedLocked() })
	return fresh, nil
}

// Budget returns namespace ns's budget.
func (s *Store) Budget(ns string) (model.Budget, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b, ok := s.budgets[model.NamespaceOf(ns)]
	if !ok {
		return model.Budget{}, fmt.Errorf("budget of namespace %q: %w", model.NamespaceOf(ns), ErrNotFound)
	}
	return *b, nil
}

// Budgets lists the budgets, by namespace.
func (s *Store) Budgets() []model.Budget {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []model.Budget
	for _, b := range s.allBudgetsLocked() {
		out = append(out, *b)
	}
	return out
}

func (s *Store) allBudgetsLocked() []*model.Budget {
	out := make([]*model.Budget, 0, len(s.budgets))
	for _, b := range s.budgets {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out
}

// BudgetBlocks reports whether namespace ns's budget refuses its
// invocations at now: its hard limit was reached in now's month (UTC).
// It reads without the store's lock (every invocation asks).
func (s *Store) BudgetBlocks(ns string, now time.Time) bool {
	month, ok := s.view.Load().blocked[model.NamespaceOf(ns)]
	return ok && month == now.UTC().Format("2006-01")
}
