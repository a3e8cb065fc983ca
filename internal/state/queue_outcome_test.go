package state

import (
	"testing"
	"time"

	"nimbus/internal/model"
)

func TestADeadLetteredRecordShowsItsLastAttemptAndIsAnOutcomeOnce(t *testing.T) {
	s := New()
	var outcomes []model.Invocation
	s.ObserveRecordOutcomes(func(r model.Invocation) { outcomes = append(outcomes, r) })
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Enqueue([]model.QueueItem{{RequestID: "a", Function: "f", Trigger: "async", EnqueuedAt: t0}})
	attempt := func(rev int64, ms float64) model.Invocation {
		return model.Invocation{Revision: rev, Start: t0.Add(time.Second), DurationMS: ms, MemoryMB: 128, MaxMemoryMB: 40, LogTail: "boom", Worker: "w1"}
	}
	epoch, err := s.Lease("a", t0.Add(time.Minute), t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Retry("a", epoch, t0.Add(2*time.Second), "ValueError", false, attempt(1, 12)); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Record("a"); r.Status != model.StatusQueued || r.Revision != 1 || r.DurationMS != 12 {
		t.Errorf("retried record = %+v, want queued with the attempt's figures", r)
	}
	if epoch, err = s.Lease("a", t0.Add(time.Minute), t0.Add(3*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetter("a", epoch, model.ReasonRetriesExhausted, "KeyError", t0.Add(4*time.Second), attempt(2, 30)); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Record("a")
	if r.Status != model.StatusDeadLetter || r.Revision != 2 || r.DurationMS != 30 || r.MemoryMB != 128 || r.MaxMemoryMB != 40 || r.ErrorType != "KeyError" || r.Attempts != 2 {
		t.Errorf("dead-letter record = %+v, want the last attempt's figures", r)
	}

	// The record updated in place (its destination noted) is not a new
	// outcome.
	r.Destination = "delivered"
	s.AddRecords([]model.Invocation{r}, nil, model.DefaultRetention(), t0.Add(5*time.Second))
	var statuses []string
	for _, o := range outcomes {
		statuses = append(statuses, o.Status)
	}
	want := []string{model.StatusQueued, model.StatusRunning, model.StatusQueued, model.StatusRunning, model.StatusDeadLetter}
	if len(statuses) != len(want) {
		t.Fatalf("outcomes observed: %v, want %v", statuses, want)
	}
	for i := range want {
		if statuses[i] != want[i] {
			t.Fatalf("outcomes observed: %v, want %v", statuses, want)
		}
	}
}

func TestADeadLetterDecidedWithoutARunKeepsTheLastAttemptsFigures(t *testing.T) {
	s := New()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.Enqueue([]model.QueueItem{{RequestID: "a", Function: "f", Trigger: "async", EnqueuedAt: t0}})
	epoch, _ := s.Lease("a", t0.Add(time.Minute), t0)
	s.Retry("a", epoch, t0.Add(time.Hour), "ValueError", false, model.Invocation{Revision: 3, Start: t0.Add(time.Second), DurationMS: 7, MemoryMB: 256})
	// Too old to try again: given up on with no attempt of its own.
	if err := s.DeadLetter("a", 0, model.ReasonEventAgeExceeded, "ValueError", t0.Add(7*time.Hour), model.Invocation{}); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Record("a"); r.Status != model.StatusDeadLetter || r.Revision != 3 || r.DurationMS != 7 || r.MemoryMB != 256 {
		t.Errorf("dead-letter record = %+v, want the figures of its last attempt", r)
	}
}
