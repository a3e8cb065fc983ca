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
		s.schedLog.add(qn)
		return false
	}
	s.schedules[qn] = &sc
	s.schedLog.add(qn)
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
	s.schedLog.add(name)
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
	s.schedLog.add(name)
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
	s.schedLog.add(name)
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
// no particular order, and the count of schedule changes they are as of
// (see ScheduleChanges). keep is called for every schedule under the
// store's read lock: it must be quick, must not call the store, and must
// neither keep nor change sc. The scheduler reads every schedule with it
// once a term, then only those that change.
func (s *Store) SchedulesWhere(keep func(sc *model.Schedule) bool) ([]model.Schedule, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []model.Schedule
	for _, sc := range s.schedules {
		if keep(sc) {
			out = append(out, *sc)
		}
	}
	return out, s.schedLog.count
}

// ScheduleChanges returns the qualified names of the schedules put,
// removed, enabled, disabled or fired after the first since changes (a
// name once for each change), and the count to ask from next time. ok
// is false when the store no longer knows them all (it keeps the last
// changeLogKeep, and a restore changes every schedule): the caller then
// reads every schedule (SchedulesWhere).
func (s *Store) ScheduleChanges(since uint64) (names []string, next uint64, ok bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.schedLog.since(since)
}

// changeLog is the names of what changed, in the order of the changes:
// the last changeLogKeep or more of them, and how many there were.
type changeLog struct {
	names []string // changes first..count
	first uint64   // the number of the change names[0] is
	count uint64
}

// changeLogKeep is how many changes a changeLog keeps at least: ten
// passes' worth of fires of 10,000 schedules that fire every second.
const changeLogKeep = 100_000

func (l *changeLog) add(name string) {
	if len(l.names) >= 2*changeLogKeep {
		drop := len(l.names) - changeLogKeep
		l.names = append(l.names[:0], l.names[drop:]...)
		clear(l.names[changeLogKeep:cap(l.names)])
		l.first += uint64(drop)
	}
	l.names = append(l.names, name)
	l.count++
}

// forget drops what the log knows: every name may have changed.
func (l *changeLog) forget() {
	l.count++
	l.names, l.first = nil, l.count
}

func (l *changeLog) since(n uint64) ([]string, uint64, bool) {
	if n < l.first || n > l.count {
		return nil, l.count, false
	}
	return slices.Clone(l.names[n-l.first:]), l.count, true
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
