package state

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"nimbus/internal/model"
)

// ErrSlotFired is returned when a schedule's slot has already fired (or a
// later one has): each slot fires at most once, whoever leads.
var ErrSlotFired = errors.New("slot already fired")

// PutSchedule creates or replaces a schedule, keeping what the scheduler
// recorded of an existing one (last slot, counts) unless the expression
// or time zone changed.
func (s *Store) PutSchedule(sc model.Schedule) (created bool) {
	sc.Namespace = model.NamespaceOf(sc.Namespace)
	qn := model.QualifiedName(sc.Namespace, sc.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.schedules[qn]; ok {
		sc.CreatedAt, sc.Fires, sc.Missed = old.CreatedAt, old.Fires, old.Missed
		sc.LastSlot, sc.LastRequest = old.LastSlot, old.LastRequest
		s.schedules[qn] = &sc
		return false
	}
	s.schedules[qn] = &sc
	return true
}

// DeleteSchedule removes a schedule. Schedules are named by their
// qualified name (model.QualifiedName) in every method but PutSchedule.
func (s *Store) DeleteSchedule(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.schedules[name]; !ok {
		return fmt.Errorf("schedule %q: %w", name, ErrNotFound)
	}
	delete(s.schedules, name)
	return nil
}

// SetScheduleEnabled enables or disables a schedule. Enabling does not
// replay the slots that passed while it was disabled: firing resumes
// from now.
func (s *Store) SetScheduleEnabled(name string, enabled bool, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.schedules[name]
	if !ok {
		return fmt.Errorf("schedule %q: %w", name, ErrNotFound)
	}
	sc := *old
	if enabled && sc.Disabled && sc.LastSlot.Before(now) {
		sc.LastSlot = now
	}
	sc.Disabled = !enabled
	s.schedules[name] = &sc
	return nil
}

// FireSchedule records that a schedule fired for slot and enqueues its
// event, unless that slot (or a later one) already fired. missed counts
// older slots skipped (past the starting deadline, or under forbid).
func (s *Store) FireSchedule(name string, slot time.Time, missed int64, item *model.QueueItem) error {
	s.mu.Lock()
	old, ok := s.schedules[name]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("schedule %q: %w", name, ErrNotFound)
	}
	if old.Disabled && item != nil {
		s.mu.Unlock()
		return fmt.Errorf("schedule %q is disabled: %w", name, ErrSlotFired)
	}
	if !slot.After(old.LastSlot) {
		s.mu.Unlock()
		return fmt.Errorf("schedule %q slot %s: %w", name, slot.Format(time.RFC3339), ErrSlotFired)
	}
	sc := *old
	sc.LastSlot = slot
	sc.Missed += missed
	if item != nil {
		sc.Fires++
		sc.LastRequest = item.RequestID
	}
	s.schedules[name] = &sc
	s.mu.Unlock()
	if item != nil {
		s.Enqueue([]model.QueueItem{*item})
	}
	return nil
}

// Schedule returns one schedule.
func (s *Store) Schedule(name string) (model.Schedule, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	sc, ok := s.schedules[name]
	if !ok {
		return model.Schedule{}, fmt.Errorf("schedule %q: %w", name, ErrNotFound)
	}
	return *sc, nil
}

// SchedulesWhere returns copies of the schedules keep reports true of, in
// no particular order. keep is called for every schedule under the
// store's read lock: it must be quick, must not call the store, and must
// neither keep nor change sc. The scheduler's pass over every schedule
// ten times a second uses it to copy only the due ones.
func (s *Store) SchedulesWhere(keep func(sc *model.Schedule) bool) []model.Schedule {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []model.Schedule
	for _, sc := range s.schedules {
		if keep(sc) {
			out = append(out, *sc)
		}
	}
	return out
}

// Schedules returns the schedules of namespace ns ("" for every
// namespace), sorted by namespace and name.
func (s *Store) Schedules(ns string) []model.Schedule {
	s.mu.RLock()
	out := make([]model.Schedule, 0, len(s.schedules))
	for _, sc := range s.schedules {
		if ns == "" || sc.Namespace == ns {
			out = append(out, *sc)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b model.Schedule) int {
		if a.Namespace == b.Namespace { // the same "ns/" before the names
			return strings.Compare(a.Name, b.Name)
		}
		return strings.Compare(model.QualifiedName(a.Namespace, a.Name), model.QualifiedName(b.Namespace, b.Name))
	})
	return out
}
