// Package scheduler owns schedules: their expressions (expr.go) and the
// leader's fire loop, which turns each due slot into one Raft command that
// records the slot and enqueues the invocation together, so that no slot
// fires twice whoever leads.
package scheduler

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// DefaultStartingDeadline is how late a slot may still fire (a slot
// missed while there was no leader); older slots are counted as missed.
const DefaultStartingDeadline = 60 * time.Second

// Control is what the scheduler needs of the Raft node.
type Control interface {
	Store() *state.Store
	fsm.Writer
}

// Loop fires due schedules. Run it on the leader only.
type Loop struct {
	cp       Control
	deadline time.Duration
	period   time.Duration
	log      *slog.Logger
	// Fired, when set, is called after each committed fire (to wake the
	// dispatcher).
	Fired func()

	mu    sync.Mutex
	exprs map[string]Expr // by timezone + expression

	// next remembers each enabled schedule's first slot after the one it
	// last fired (or its creation), by qualified name, and slots has them
	// in time order, so that a pass looks only at the schedules that are
	// due and those that changed since the last (state.ScheduleChanges):
	// a pass over 10,000 schedules read every one of them, ten times a
	// second. An entry of slots whose nextSlot is no longer next's is
	// stale, and dropped when it comes up. gen is the count of changes
	// next is as of, and read whether it was ever filled. Used by Run
	// alone.
	next  map[string]*nextSlot
	slots slotHeap
	gen   uint64
	read  bool
}

// nextSlot is a schedule's first slot after from, as computed from its
// expression in its time zone (ok false: there is none).
type nextSlot struct {
	from           time.Time
	expr, timezone string
	at             time.Time
	ok             bool
}

// slotEntry is a schedule's next slot in Loop.slots.
type slotEntry struct {
	name string // qualified
	next *nextSlot
}

// slotHeap is a min-heap of slot entries by time (container/heap).
type slotHeap []slotEntry

func (h slotHeap) Len() int           { return len(h) }
func (h slotHeap) Less(i, j int) bool { return h[i].next.at.Before(h[j].next.at) }
func (h slotHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *slotHeap) Push(x any)        { *h = append(*h, x.(slotEntry)) }
func (h *slotHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = slotEntry{}
	*h = old[:len(old)-1]
	return e
}

// NewLoop returns a fire loop with the given starting deadline (0 for
// the default).
func NewLoop(cp Control, startingDeadline time.Duration, log *slog.Logger) *Loop {
	if startingDeadline <= 0 {
		startingDeadline = DefaultStartingDeadline
	}
	return &Loop{cp: cp, deadline: startingDeadline, period: 100 * time.Millisecond, log: log, exprs: map[string]Expr{},
		next: map[string]*nextSlot{}}
}

// Compile parses a schedule's expression in its time zone, with a cache.
func (l *Loop) Compile(sc model.Schedule) (Expr, error) {
	key := sc.Timezone + "\x00" + sc.Expression
	l.mu.Lock()
	e, ok := l.exprs[key]
	l.mu.Unlock()
	if ok {
		return e, nil
	}
	e, err := ParseIn(sc.Expression, sc.Timezone)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.exprs[key] = e
	l.mu.Unlock()
	return e, nil
}

// ParseIn parses expr in the named time zone ("" for UTC).
func ParseIn(expr, tz string) (Expr, error) {
	loc := time.UTC
	if tz != "" {
		var err error
		if loc, err = time.LoadLocation(tz); err != nil {
			return nil, fmt.Errorf("%w: time zone %q: %v", ErrBadExpression, tz, err)
		}
	}
	return Parse(expr, loc)
}

// fireBatch bounds the fires per Raft entry.
const fireBatch = 1000

// Run fires due slots until ctx ends. Each pass gathers every due fire
// and commits them in batches (many per Raft entry).
func (l *Loop) Run(ctx context.Context) {
	t := time.NewTicker(l.period)
	defer t.Stop()
	for {
		now := time.Now().UTC()
		var fires []fsm.FireSchedule
		for _, sc := range l.dueSchedules(now) {
			if f, ok := l.due(sc, now); ok {
				fires = append(fires, f)
			}
		}
		// Batches go to Raft together: it pipelines them, so a pass of
		// many fires costs about one commit, not one per batch.
		var wg sync.WaitGroup
		for len(fires) > 0 && ctx.Err() == nil {
			n := min(len(fires), fireBatch)
			wg.Add(1)
			go func(batch []fsm.FireSchedule) {
				defer wg.Done()
				l.commit(ctx, batch)
			}(fires[:n])
			fires = fires[n:]
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// dueSchedules returns the enabled schedules with a slot at or before
// now that they have not fired, sorted by namespace and name. It reads
// every schedule on its first pass (and when the store no longer knows
// what changed since the last), and otherwise only those that changed
// since and those whose next slot has come.
func (l *Loop) dueSchedules(now time.Time) []model.Schedule {
	store := l.cp.Store()
	changed, gen, ok := store.ScheduleChanges(l.gen)
	if !l.read || !ok || len(l.slots) > 2*len(l.next)+1024 {
		l.readAll(store)
	} else {
		slices.Sort(changed)
		for _, name := range slices.Compact(changed) {
			sc, err := store.Schedule(name)
			if err != nil {
				delete(l.next, name) // removed
				continue
			}
			l.note(name, &sc)
		}
		l.gen = gen
	}
	var out []model.Schedule
	var popped []slotEntry
	for len(l.slots) > 0 && !l.slots[0].next.at.After(now) {
		e := heap.Pop(&l.slots).(slotEntry)
		if l.next[e.name] != e.next {
			continue // stale: the schedule changed, or is gone
		}
		popped = append(popped, e)
		if sc, err := store.Schedule(e.name); err == nil {
			out = append(out, sc)
		}
	}
	// Due until its fire is committed, and the change it makes is read.
	for _, e := range popped {
		heap.Push(&l.slots, e)
	}
	slices.SortFunc(out, func(a, b model.Schedule) int {
		return strings.Compare(model.QualifiedName(a.Namespace, a.Name), model.QualifiedName(b.Namespace, b.Name))
	})
	return out
}

// readAll reads every schedule into next and slots afresh (keeping the
// next slots that still hold).
func (l *Loop) readAll(store *state.Store) {
	old := l.next
	l.next, l.slots, l.read = make(map[string]*nextSlot, len(old)), l.slots[:0], false
	_, l.gen = store.SchedulesWhere(func(sc *model.Schedule) bool {
		name := model.QualifiedName(sc.Namespace, sc.Name)
		if n := old[name]; n != nil {
			l.next[name] = n // note keeps it if it still holds
		}
		l.note(name, sc)
		return false
	})
	heap.Init(&l.slots)
	l.read = true
}

// note brings what next and slots hold of a schedule up to date with sc.
func (l *Loop) note(name string, sc *model.Schedule) {
	if sc.Disabled {
		delete(l.next, name)
		return
	}
	from := sc.LastSlot
	if from.IsZero() {
		from = sc.CreatedAt
	}
	n := l.next[name]
	same := n != nil && n.from.Equal(from) && n.expr == sc.Expression && n.timezone == sc.Timezone
	if !same {
		n = &nextSlot{from: from, expr: sc.Expression, timezone: sc.Timezone}
		if e, err := l.Compile(*sc); err == nil {
			n.at, n.ok = e.Next(from)
		}
		l.next[name] = n
	}
	switch {
	case !n.ok:
	case !l.read: // readAll is filling slots: it makes them a heap after
		l.slots = append(l.slots, slotEntry{name, n})
	case !same: // (the same one is in slots already)
		heap.Push(&l.slots, slotEntry{name, n})
	}
}

func (l *Loop) commit(ctx context.Context, fires []fsm.FireSchedule) {
	// Stamp the events when their batch goes to Raft, not when the pass
	// began, so that enqueued_at minus the slot is the true lag.
	now := time.Now().UTC()
	for i := range fires {
		if fires[i].Item != nil {
			item := *fires[i].Item
			item.EnqueuedAt = now
			fires[i].Item = &item
		}
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := fsm.Apply(actx, l.cp, fsm.FireSchedules{Fires: fires}); err != nil {
		if ctx.Err() == nil {
			l.log.Debug("schedule fires not committed", "count", len(fires), "err", err)
		}
		return
	}
	if l.Fired != nil {
		l.Fired()
	}
}

// due returns the fire for the latest due slot of sc, if any; earlier due
// slots collapse into it (counted as missed), and a latest slot older
// than the starting deadline is itself only counted.
func (l *Loop) due(sc model.Schedule, now time.Time) (fsm.FireSchedule, bool) {
	e, err := l.Compile(sc)
	if err != nil {
		return fsm.FireSchedule{}, false
	}
	from := sc.LastSlot
	if from.IsZero() {
		from = sc.CreatedAt
	}
	slots := Slots(e, from, now, 100000)
	if len(slots) == 0 {
		return fsm.FireSchedule{}, false
	}
	latest := slots[len(slots)-1]
	missed := int64(len(slots) - 1)
	cmd := fsm.FireSchedule{Namespace: sc.Namespace, Name: sc.Name, Slot: latest.UTC(), Missed: missed}
	switch {
	case now.Sub(latest) > l.deadline:
		cmd.Missed++
	case sc.Policy == "forbid" && l.stillRunning(sc.LastRequest):
		cmd.Missed++
	default:
		cmd.Item = &model.QueueItem{
			RequestID:  FireID(sc.Namespace, sc.Name, latest),
			Namespace:  sc.Namespace,
			Function:   sc.Function,
			Event:      fireEvent(sc, latest),
			Trigger:    "schedule:" + sc.Name,
			EnqueuedAt: now,
		}
	}
	return cmd, true
}

// stillRunning reports whether the previous fire's invocation has not
// reached a terminal state.
func (l *Loop) stillRunning(requestID string) bool {
	if requestID == "" {
		return false
	}
	rec, err := l.cp.Store().Record(requestID)
	if err != nil {
		return false
	}
	return rec.Status == model.StatusQueued || rec.Status == model.StatusRunning
}

// FireID is the request ID of a schedule's fire for a slot: the same on
// every server, so a fire is idempotent. Outside the default namespace
// it names the namespace too (names hold no ':').
func FireID(ns, name string, slot time.Time) string {
	if model.NamespaceOf(ns) != model.DefaultNamespace {
		name = ns + ":" + name
	}
	return fmt.Sprintf("sched-%s-%d", name, slot.Unix())
}

// fireEvent is the schedule's own event, or an EventBridge-style
// scheduled event.
func fireEvent(sc model.Schedule, slot time.Time) json.RawMessage {
	if len(sc.Event) > 0 {
		return sc.Event
	}
	b, _ := json.Marshal(map[string]any{
		"version":     "0",
		"id":          FireID(sc.Namespace, sc.Name, slot),
		"detail-type": "Scheduled Event",
		"source":      "nimbus.scheduler",
		"time":        slot.UTC().Format(time.RFC3339),
		"resources":   []string{"schedule/" + sc.Name},
		"detail":      map[string]any{},
	})
	return b
}

// NextFire returns a schedule's next fire time after now, if any.
func (l *Loop) NextFire(sc model.Schedule, now time.Time) (time.Time, bool) {
	e, err := l.Compile(sc)
	if err != nil || sc.Disabled {
		return time.Time{}, false
	}
	return e.Next(now)
}
