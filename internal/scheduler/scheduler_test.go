package scheduler

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

type testControl struct {
	store *state.Store
	fsm.Writer
}

func (c testControl) Store() *state.Store { return c.store }

func testLoop(t testing.TB) (*Loop, *state.Store) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := state.New()
	return NewLoop(testControl{s, fsm.Direct(fsm.New(s, log))}, 0, log), s
}

// bruteDue is what a pass chose before it remembered next slots: every
// enabled schedule with a slot after its last one (or its creation) and
// at or before now.
func bruteDue(l *Loop, s *state.Store, now time.Time) []string {
	var out []string
	for _, sc := range s.Schedules("") {
		if sc.Disabled {
			continue
		}
		if _, ok := l.due(sc, now); ok {
			out = append(out, sc.Name)
		}
	}
	return out
}

func names(scs []model.Schedule) []string {
	var out []string
	for _, sc := range scs {
		out = append(out, sc.Name)
	}
	return out
}

func TestAPassPicksTheDueSchedulesAsAFullScanDoes(t *testing.T) {
	l, s := testLoop(t)
	rng := rand.New(rand.NewPCG(1, 2))
	exprs := []string{"@every 1s", "@every 7s", "rate(1 minute)", "30 * * * * *", "cron(0 12 * * ? *)", "cron(0 0 1 1 ? 2001)", "@hourly"}
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for i := range 500 {
		sc := model.Schedule{Name: fmt.Sprintf("s%03d", i), Namespace: "default", Function: "f", Expression: exprs[rng.IntN(len(exprs))],
			CreatedAt: t0.Add(-time.Duration(rng.IntN(600)) * time.Second), Disabled: rng.IntN(10) == 0}
		if rng.IntN(2) == 0 {
			sc.Timezone = "Europe/Paris"
		}
		s.PutSchedule(sc)
	}
	for step := range 120 {
		now := t0.Add(time.Duration(step) * 700 * time.Millisecond)
		got, want := names(l.dueSchedules(now)), bruteDue(l, s, now)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("at %v: the pass picked %d schedules, a full scan %d:\n%v\n%v", now, len(got), len(want), got, want)
		}
		// Fire what is due, as the FSM records it: the last slot moves.
		for _, name := range want {
			sc, _ := s.Schedule(model.QualifiedName("default", name))
			f, _ := l.due(sc, now)
			sc.LastSlot = f.Slot
			s.PutSchedule(sc)
		}
		if step == 60 {
			// A schedule put again with another expression is seen anew.
			sc, _ := s.Schedule(model.QualifiedName("default", "s007"))
			sc.Expression, sc.LastSlot = "@every 1s", time.Time{}
			s.PutSchedule(sc)
		}
		// Schedules come, go, are disabled and enabled, and change their
		// expression or only their function, between passes.
		for range rng.IntN(4) {
			name := model.QualifiedName("default", fmt.Sprintf("s%03d", rng.IntN(520)))
			sc, err := s.Schedule(name)
			switch op := rng.IntN(5); {
			case err != nil:
				s.PutSchedule(model.Schedule{Name: name[len("default/"):], Namespace: "default", Function: "f",
					Expression: exprs[rng.IntN(len(exprs))], CreatedAt: now.Add(-time.Duration(rng.IntN(60)) * time.Second)})
			case op == 0:
				s.DeleteSchedule(name)
			case op == 1:
				s.SetScheduleEnabled(name, sc.Disabled, now)
			case op == 2:
				sc.Expression = exprs[rng.IntN(len(exprs))]
				s.PutSchedule(sc)
			default:
				sc.Function = "g"
				s.PutSchedule(sc)
			}
		}
		if step == 90 {
			// A restore (an operator's, or a snapshot from the leader)
			// may change every schedule: the next pass reads them all.
			var buf bytes.Buffer
			snap := state.New()
			for _, sc := range s.Schedules("") {
				if sc.Name < "s250" { // the rest are gone, and these changed
					sc.LastSlot = time.Time{}
					if sc.Name < "s120" {
						sc.Expression = "cron(0 0 1 1 ? 2001)" // no slot after its creation
					}
					snap.PutSchedule(sc)
				}
			}
			if _, err := snap.CaptureUnordered().WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			if err := s.Restore(&buf); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// BenchmarkPassOverTenThousandSchedules is one pass of the fire loop
// over 10,000 schedules that fire once a minute, none due: a scan that
// works out each one's slots, and the loop's pass.
func BenchmarkPassOverTenThousandSchedules(b *testing.B) {
	l, s := testLoop(b)
	now := time.Date(2026, 12, 7, 10, 0, 30, 500e6, time.UTC)
	for i := range 10000 {
		sc := model.Schedule{Name: fmt.Sprintf("s%05d", i), Namespace: "default", Function: "f",
			Expression: fmt.Sprintf("%d * * * * *", i%60), CreatedAt: now.Add(-time.Hour)}
		f, _ := l.due(sc, now) // each has fired its latest slot
		sc.LastSlot = f.Slot
		s.PutSchedule(sc)
	}
	if n := len(bruteDue(l, s, now)); n != 0 {
		b.Fatalf("%d schedules due, want none", n)
	}
	b.Run("a full scan", func(b *testing.B) {
		for b.Loop() {
			bruteDue(l, s, now)
		}
	})
	b.Run("the due and changed schedules", func(b *testing.B) {
		for b.Loop() {
			l.dueSchedules(now)
		}
	})
}
