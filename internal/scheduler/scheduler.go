// Package scheduler owns schedules: their expressions (expr.go) and the
// leader's fire loop, which turns each due slot into one Raft command that
// records the slot and enqueues the invocation together, so that no slot
// fires twice whoever leads.
package scheduler

import (
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

	// next remembers each schedule's first slot after the one it last
	// fired (or its creation), so that a pass looks at every schedule
	// without copying it or computing its slots: only the due ones are
	// copied and worked out. An entry is good while the schedule's
	// last slot, expression and time zone are those it was computed
	// from. Used by Run alone.
	next   map[scheduleKey]*nextSlot
	passes uint64
}

type scheduleKey struct{ namespace, name string }

// nextSlot is a schedule's first slot after from, as computed from its
// expression in its time zone (ok false: there is none).
type nextSlot struct {
	from           time.Time
	expr, timezone string
	at             time.Time
	ok             bool
	pass           uint64 // the last pass that saw the schedule
}

// forgetEvery is how many passes go between two sweeps of next for
// schedules that are gone (a minute at the default period).
const forgetEvery = 600

// NewLoop returns a fire loop with the given starting deadline (0 for
// the default).
func NewLoop(cp Control, startingDeadline time.Duration, log *slog.Logger) *Loop {
	if startingDeadline <= 0 {
		startingDeadline = DefaultStartingDeadline
	}
	return &Loop{cp: cp, deadline: startingDeadline, period: 100 * time.Millisecond, log: log, exprs: map[string]Expr{},
		next: map[scheduleKey]*nextSlot{}}
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
// now that they have not fired, sorted by namespace and name: a pass
// over every schedule that reads what next remembers of it, and
// computes its next slot only when it changed (fired, or was put
// again) since.
func (l *Loop) dueSchedules(now time.Time) []model.Schedule {
	l.passes++
	pass := l.passes
	out := l.cp.Store().SchedulesWhere(func(sc *model.Schedule) bool {
		if sc.Disabled {
			return false
		}
		from := sc.LastSlot
		if from.IsZero() {
			from = sc.CreatedAt
		}
		k := scheduleKey{sc.Namespace, sc.Name}
		n := l.next[k]
		if n == nil || !n.from.Equal(from) || n.expr != sc.Expression || n.timezone != sc.Timezone {
			n = &nextSlot{from: from, expr: sc.Expression, timezone: sc.Timezone}
			if e, err := l.Compile(*sc); err == nil {
				n.at, n.ok = e.Next(from)
			}
			l.next[k] = n
		}
		n.pass = pass
		return n.ok && !n.at.After(now)
	})
	if pass%forgetEvery == 0 {
		for k, n := range l.next {
			if n.pass != pass {
				delete(l.next, k)
			}
		}
	}
	slices.SortFunc(out, func(a, b model.Schedule) int {
		return strings.Compare(model.QualifiedName(a.Namespace, a.Name), model.QualifiedName(b.Namespace, b.Name))
	})
	return out
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
