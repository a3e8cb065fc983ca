package service

import (
	"fmt"
	"slices"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

// UsageQuery selects usage: a namespace (state.AllNamespaces for every
// one), a function or all ("" ), the window [From, To) (zero From: the
// start of the current month, UTC; zero To: now) and a grouping
// (model.UsageBy*).
type UsageQuery struct {
	Namespace, Function string
	From, To            time.Time
	By                  string
}

var usageGroupings = []string{model.UsageTotal, model.UsageByDay, model.UsageByHour, model.UsageByFunc, model.UsageByNS}

// Usage adds up what the selection used over the window from the metric
// history (it outlives the records), and returns the query with its
// window resolved. The window must start within what the history keeps:
// days for 2 years by default, hours for 90 days when grouped by hour; a
// namespace that does not exist is state.ErrNotFound.
func (s *Service) Usage(q UsageQuery, now time.Time) (UsageQuery, []model.UsageRow, error) {
	if !slices.Contains(usageGroupings, q.By) {
		return q, nil, state.Errorf(state.ErrInvalid, "cannot group usage by %q: by day, hour, function or namespace", q.By)
	}
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() {
		q.From = monthStart(now)
	}
	if !q.To.After(q.From) {
		return q, nil, state.Errorf(state.ErrInvalid, "the window from %s to %s is empty", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	_, hours, days := s.store.MetricRetention()
	keep, what := days, "days"
	if q.By == model.UsageByHour {
		keep, what = hours, "hours"
	}
	if now.Sub(q.From) > keep {
		return q, nil, state.Errorf(state.ErrInvalid, "%s is older than the %s of usage history the cluster keeps by %s (--metric-%s)",
			q.From.Format(time.RFC3339), humanDuration(keep), what[:len(what)-1], what)
	}
	if q.Namespace != state.AllNamespaces {
		if _, err := s.store.Namespace(q.Namespace); err != nil {
			return q, nil, err
		}
	}
	return q, s.store.Usage(q.Namespace, q.Function, q.From, q.To, q.By), nil
}

// monthStart is the start of t's month, UTC.
func monthStart(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// forecastWindow is how far back the rate a forecast extends reaches.
const forecastWindow = 7 * 24 * time.Hour

// Cost prices month ("YYYY-MM"; "" for the current one, UTC) of
// namespace ns (state.AllNamespaces for every one, each at its own
// prices) and forecasts the whole month from the recent rate: the usage
// of the last seven days (or of the month so far, when shorter) per
// second, times the seconds left. A month that has not begun, or that
// starts before the days the history keeps, is state.ErrInvalid.
func (s *Service) Cost(ns, month string, now time.Time) (model.CostReport, error) {
	from := monthStart(now)
	if month != "" {
		t, err := time.Parse("2006-01", month)
		if err != nil {
			return model.CostReport{}, state.Errorf(state.ErrInvalid, "month %q is not a month such as 2026-12 (YYYY-MM)", month)
		}
		from = t.UTC()
	}
	if from.After(now) {
		return model.CostReport{}, state.Errorf(state.ErrInvalid, "month %s has not begun", from.Format("2006-01"))
	}
	end := from.AddDate(0, 1, 0)
	to := end
	if now.Before(end) {
		to = now
	}
	if _, _, days := s.store.MetricRetention(); now.Sub(from) > days {
		return model.CostReport{}, state.Errorf(state.ErrInvalid, "month %s is older than the %s of usage history the cluster keeps (--metric-days)", from.Format("2006-01"), humanDuration(days))
	}
	if ns != state.AllNamespaces {
		if _, err := s.store.Namespace(ns); err != nil {
			return model.CostReport{}, err
		}
	}
	rep := model.CostReport{Month: from.Format("2006-01"), From: from, To: to, Complete: !end.After(now)}
	used := map[string]model.UsageRow{}
	for _, r := range s.store.Usage(ns, "", from, to, model.UsageByNS) {
		used[r.Namespace] = r
	}
	recent := map[string]model.UsageRow{}
	recentFrom := to.Add(-forecastWindow)
	if recentFrom.Before(from) {
		recentFrom = from
	}
	if !rep.Complete {
		for _, r := range s.store.Usage(ns, "", recentFrom, to, model.UsageByNS) {
			recent[r.Namespace] = r
		}
	}
	names := []string{model.NamespaceOf(ns)}
	if ns == state.AllNamespaces {
		names = names[:0]
		for _, n := range s.store.Namespaces() {
			names = append(names, n.Name)
		}
		for n := range used {
			if !slices.Contains(names, n) {
				names = append(names, n) // removed since
			}
		}
		slices.Sort(names)
	}
	for _, n := range names {
		u := used[n]
		p, _ := s.store.Prices(n)
		c := model.NamespaceCost{Namespace: n, Prices: p, Requests: u.Requests, GBSeconds: u.GBSeconds, ProvisionedGBSeconds: u.ProvisionedGBSeconds}
		c.BilledRequests, c.BilledGBSeconds, c.RequestCost, c.ComputeCost = p.Price(u.Requests, u.GBSeconds)
		c.ProvisionedCost = u.ProvisionedGBSeconds * p.PerProvisionedGBSecond
		c.Total = c.RequestCost + c.ComputeCost + c.ProvisionedCost
		c.Forecast = model.Forecast{Requests: u.Requests, GBSeconds: u.GBSeconds, ProvisionedGBSeconds: u.ProvisionedGBSeconds, Total: c.Total}
		if r, span := recent[n], to.Sub(recentFrom).Seconds(); !rep.Complete && span > 0 {
			left := end.Sub(to).Seconds()
			c.Forecast.Requests += int64(float64(r.Requests) / span * left)
			c.Forecast.GBSeconds += r.GBSeconds / span * left
			c.Forecast.ProvisionedGBSeconds += r.ProvisionedGBSeconds / span * left
			_, _, rc, cc := p.Price(c.Forecast.Requests, c.Forecast.GBSeconds)
			c.Forecast.Total = rc + cc + c.Forecast.ProvisionedGBSeconds*p.PerProvisionedGBSecond
		}
		rep.Namespaces = append(rep.Namespaces, c)
	}
	return rep, nil
}

// humanDuration renders a retention as days when it is whole days.
func humanDuration(d time.Duration) string {
	if d >= 24*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}
