package service

import (
	"context"
	"encoding/json"
	"math"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/scheduler"
	"nimbus/internal/state"
)

// withNextFire fills in when an enabled schedule fires next.
func withNextFire(sc model.Schedule) model.Schedule {
	if e, err := scheduler.ParseIn(sc.Expression, sc.Timezone); err == nil && !sc.Disabled {
		if next, ok := e.Next(time.Now()); ok {
			sc.NextFire = next.UTC()
		}
	}
	return sc
}

// Schedules lists namespace ns's schedules, those of function fn only
// when fn is not "".
func (s *Service) Schedules(ns, fn string) []model.Schedule {
	out, _ := s.SchedulesAfter(ns, fn, "", math.MaxInt)
	return out
}

// SchedulesAfter is a page of namespace ns's schedules (of function fn
// only, unless ""), by name: the first n named after after, and whether
// more follow. Only the page's next fires are computed.
func (s *Service) SchedulesAfter(ns, fn, after string, n int) ([]model.Schedule, bool) {
	out := []model.Schedule{}
	for _, sc := range s.store.Schedules(ns) {
		if fn != "" && sc.Function != fn || after != "" && sc.Name <= after {
			continue
		}
		if len(out) == n {
			return out, true
		}
		out = append(out, withNextFire(sc))
	}
	return out, false
}

// Schedule is schedule name of namespace ns.
func (s *Service) Schedule(ns, name string) (model.Schedule, error) {
	sc, err := s.store.Schedule(model.QualifiedName(ns, name))
	if err != nil {
		return sc, err
	}
	return withNextFire(sc), nil
}

// PutSchedule creates or replaces schedule sc in namespace ns after
// checking its function, expression, time zone, policy and event; it
// reports whether the schedule is new. Its fire history starts afresh.
func (s *Service) PutSchedule(ctx context.Context, ns string, sc model.Schedule) (model.Schedule, bool, error) {
	switch {
	case sc.Function == "":
		return sc, false, state.Errorf(state.ErrInvalid, "a schedule needs a function")
	case sc.Policy != "" && sc.Policy != "allow" && sc.Policy != "forbid":
		return sc, false, state.Errorf(state.ErrInvalid, "policy %q is not allow or forbid", sc.Policy)
	case len(sc.Event) > 0 && !json.Valid(sc.Event):
		return sc, false, state.Errorf(state.ErrInvalid, "the schedule's event is not valid JSON")
	}
	sc.Namespace = ns
	if err := s.checkTarget(ns, sc.Function); err != nil {
		return sc, false, err
	}
	if _, err := scheduler.ParseIn(sc.Expression, sc.Timezone); err != nil {
		return sc, false, state.Errorf(state.ErrInvalid, "%v", err)
	}
	sc.CreatedAt = time.Now().UTC()
	sc.LastSlot, sc.LastRequest, sc.Fires, sc.Missed, sc.NextFire = time.Time{}, "", 0, 0, time.Time{}
	res, err := fsm.Apply(ctx, s.d.Control, fsm.PutSchedule{Schedule: sc})
	if err != nil {
		return sc, false, err
	}
	stored, err := s.Schedule(ns, sc.Name)
	return stored, res.Created, err
}

// DeleteSchedule removes schedule name of namespace ns and returns it.
func (s *Service) DeleteSchedule(ctx context.Context, ns, name string) (model.Schedule, error) {
	sc, err := s.store.Schedule(model.QualifiedName(ns, name))
	if err != nil {
		return sc, err
	}
	_, err = fsm.Apply(ctx, s.d.Control, fsm.DeleteSchedule{Namespace: ns, Name: name})
	return sc, err
}

// EnableSchedule enables or disables schedule name of namespace ns.
func (s *Service) EnableSchedule(ctx context.Context, ns, name string, enabled bool) (model.Schedule, error) {
	if _, err := fsm.Apply(ctx, s.d.Control, fsm.EnableSchedule{Namespace: ns, Name: name, Enabled: enabled, Now: time.Now().UTC()}); err != nil {
		return model.Schedule{}, err
	}
	return s.Schedule(ns, name)
}

// PreviewSchedule returns the next n fire times of expression in time
// zone tz ("" for UTC) after now, in that zone, or why the expression
// does not parse (a *scheduler.ExprError names the field at fault).
func (s *Service) PreviewSchedule(expression, tz string, now time.Time, n int) ([]time.Time, error) {
	e, err := scheduler.ParseIn(expression, tz)
	if err != nil {
		return nil, state.Errorf(state.ErrInvalid, "%v", err)
	}
	loc := time.UTC
	if tz != "" {
		loc, _ = time.LoadLocation(tz) // ParseIn loaded it
	}
	var out []time.Time
	for t := now; len(out) < n; {
		next, ok := e.Next(t)
		if !ok {
			break
		}
		out = append(out, next.In(loc))
		t = next
	}
	return out, nil
}
