package fsm

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

func item(id, fn string) model.QueueItem {
	return model.QueueItem{RequestID: id, Function: fn, Event: json.RawMessage(`{}`), Trigger: "async", EnqueuedAt: t0}
}

func TestEnqueueIsIdempotentByRequestID(t *testing.T) {
	f, s := newFSM()
	res := apply(t, f, EnqueueType, Enqueue{Items: []model.QueueItem{item("a", "f"), item("b", "f"), item("a", "f")}}).(EnqueueResult)
	if res.Queued != 2 || len(s.QueueItems()) != 2 {
		t.Fatalf("queued %d, items %d; want 2 and 2", res.Queued, len(s.QueueItems()))
	}
	if r, _ := s.Record("a"); r.Status != model.StatusQueued || r.Trigger != "async" {
		t.Fatalf("record of a: %+v", r)
	}
	items := s.QueueItems()
	if items[0].RequestID != "a" || items[0].Seq >= items[1].Seq {
		t.Fatal("items are not in arrival order")
	}
}

func TestALateResultFromAnExpiredLeaseIsRefused(t *testing.T) {
	f, s := newFSM()
	apply(t, f, EnqueueType, Enqueue{Items: []model.QueueItem{item("a", "f")}})
	l1 := apply(t, f, LeaseType, Lease{Leases: []LeaseRequest{{RequestID: "a", Until: t0.Add(time.Minute)}}, Now: t0}).(LeaseResult)
	if l1.Epochs["a"] != 1 {
		t.Fatalf("first lease: %+v", l1)
	}
	// A second lease while the first holds is refused.
	if l := apply(t, f, LeaseType, Lease{Leases: []LeaseRequest{{RequestID: "a", Until: t0.Add(2 * time.Minute)}}, Now: t0.Add(time.Second)}).(LeaseResult); len(l.Epochs) != 0 {
		t.Fatalf("a held lease was granted again: %+v", l)
	}
	// The lease expires; the dispatcher leases again (epoch 2).
	l2 := apply(t, f, LeaseType, Lease{Leases: []LeaseRequest{{RequestID: "a", Until: t0.Add(3 * time.Minute)}}, Now: t0.Add(2 * time.Minute)}).(LeaseResult)
	if l2.Epochs["a"] != 2 {
		t.Fatalf("lease after expiry: %+v", l2)
	}
	late := apply(t, f, FinishType, Finish{Outcomes: []Outcome{{RequestID: "a", Epoch: 1, Kind: OutcomeComplete, Record: model.Invocation{Status: model.StatusSuccess}}}}).(FinishResult)
	if late.Refused["a"] == "" {
		t.Fatal("a result for epoch 1 was accepted after epoch 2 was leased")
	}
	ok := apply(t, f, FinishType, Finish{Outcomes: []Outcome{{RequestID: "a", Epoch: 2, Kind: OutcomeComplete, Record: model.Invocation{Status: model.StatusSuccess}}}}).(FinishResult)
	if len(ok.Refused) != 0 || len(s.QueueItems()) != 0 {
		t.Fatalf("completing the current lease: %+v, queue %d", ok, len(s.QueueItems()))
	}
	if r, _ := s.Record("a"); r.Status != model.StatusSuccess || r.Attempts != 2 {
		t.Fatalf("final record: %+v", r)
	}
}

func TestRetriesThenDeadLetterThenRedrive(t *testing.T) {
	f, s := newFSM()
	apply(t, f, EnqueueType, Enqueue{Items: []model.QueueItem{item("a", "f")}})
	lease := func(now time.Time) uint64 {
		return apply(t, f, LeaseType, Lease{Leases: []LeaseRequest{{RequestID: "a", Until: now.Add(time.Minute)}}, Now: now}).(LeaseResult).Epochs["a"]
	}
	e := lease(t0)
	apply(t, f, FinishType, Finish{Outcomes: []Outcome{{RequestID: "a", Epoch: e, Kind: OutcomeRetry, NotBefore: t0.Add(time.Minute), LastError: "KeyError"}}})
	if q, _ := s.QueueItem("a"); q.Leased(t0) || !q.NotBefore.Equal(t0.Add(time.Minute)) || q.Attempts != 1 {
		t.Fatalf("after retry: %+v", q)
	}
	e = lease(t0.Add(time.Minute))
	apply(t, f, FinishType, Finish{Outcomes: []Outcome{{RequestID: "a", Epoch: e, Kind: OutcomeDeadLetter, Reason: model.ReasonRetriesExhausted, LastError: "KeyError"}}, Now: t0.Add(2 * time.Minute)})
	dls := s.DeadLetters("", "f")
	if len(dls) != 1 || dls[0].Reason != model.ReasonRetriesExhausted || dls[0].Attempts != 2 {
		t.Fatalf("dead letters: %+v", dls)
	}
	if r, _ := s.Record("a"); r.Status != model.StatusDeadLetter {
		t.Fatalf("record: %+v", r)
	}
	moved := apply(t, f, RedriveType, Redrive{IDs: []string{"a", "missing"}, Now: t0.Add(time.Hour)}).(RedriveResult)
	if moved.Moved != 1 || len(s.DeadLetters("", "")) != 0 || len(s.QueueItems()) != 1 {
		t.Fatalf("redrive moved %d; dead letters %d, queue %d", moved.Moved, len(s.DeadLetters("", "")), len(s.QueueItems()))
	}
	if r, _ := s.Record("a"); r.Status != model.StatusQueued {
		t.Fatalf("record after redrive: %+v", r)
	}
}

func TestAFunctionDestinationIsQueuedWithTheOutcome(t *testing.T) {
	f, s := newFSM()
	apply(t, f, EnqueueType, Enqueue{Items: []model.QueueItem{item("a", "f")}})
	e := apply(t, f, LeaseType, Lease{Leases: []LeaseRequest{{RequestID: "a", Until: t0.Add(time.Minute)}}, Now: t0}).(LeaseResult).Epochs["a"]
	apply(t, f, FinishType, Finish{Outcomes: []Outcome{{RequestID: "a", Epoch: e, Kind: OutcomeComplete,
		Record: model.Invocation{Status: model.StatusSuccess}, Enqueue: []model.QueueItem{item("a-dest", "g")}}}})
	if q, ok := s.QueueItem("a-dest"); !ok || q.Function != "g" {
		t.Fatal("the destination's event was not queued")
	}
}

func TestEachScheduleSlotFiresOnce(t *testing.T) {
	f, s := newFSM()
	apply(t, f, PutScheduleType, PutSchedule{Schedule: model.Schedule{Name: "tick", Function: "f", Expression: "@every 1s", CreatedAt: t0}})
	fire := func(slot time.Time, id string) any {
		it := item(id, "f")
		return apply(t, f, FireScheduleType, FireSchedule{Name: "tick", Slot: slot, Item: &it})
	}
	if res := fire(t0.Add(time.Second), "r1"); res != (None{}) {
		t.Fatalf("first fire: %v", res)
	}
	for _, slot := range []time.Time{t0.Add(time.Second), t0} {
		res := fire(slot, "r-dup")
		if err, ok := res.(error); !ok || !errors.Is(err, state.ErrSlotFired) {
			t.Fatalf("a second fire of slot %v: want ErrSlotFired, got %v", slot, res)
		}
	}
	sc, _ := s.Schedule("default/tick")
	if sc.Fires != 1 || sc.LastRequest != "r1" || len(s.QueueItems()) != 1 {
		t.Fatalf("schedule %+v, queue %d", sc, len(s.QueueItems()))
	}
}

func TestABatchOfFiresRefusesOnlyTheSlotsAlreadyFired(t *testing.T) {
	f, s := newFSM()
	for _, n := range []string{"a", "b"} {
		apply(t, f, PutScheduleType, PutSchedule{Schedule: model.Schedule{Name: n, Function: "f", Expression: "@every 1s", CreatedAt: t0}})
	}
	slot := t0.Add(time.Second)
	ia, ib := item("ra", "f"), item("rb", "f")
	apply(t, f, FireScheduleType, FireSchedule{Name: "a", Slot: slot, Item: &ia})
	res := apply(t, f, FireSchedulesType, FireSchedules{Fires: []FireSchedule{{Name: "a", Slot: slot, Item: &ia}, {Name: "b", Slot: slot, Item: &ib}}}).(FireSchedulesResult)
	if len(res.Refused) != 1 || res.Refused["default/a"] == "" {
		t.Fatalf("refused: %+v", res.Refused)
	}
	if sc, _ := s.Schedule("default/b"); sc.Fires != 1 || len(s.QueueItems()) != 2 {
		t.Fatalf("b: %+v, queue %d", sc, len(s.QueueItems()))
	}
}

func TestRetentionKeepsTheRecordsOfQueuedEvents(t *testing.T) {
	f, s := newFSM()
	apply(t, f, EnqueueType, Enqueue{Items: []model.QueueItem{item("q1", "f"), item("q2", "f")}})
	ret := model.Retention{PerFunction: 1, MaxAge: time.Hour}
	apply(t, f, RecordInvocationsType, RecordInvocations{Records: []model.Invocation{{ID: "done", Function: "f", Start: t0.Add(time.Minute), Status: model.StatusSuccess}}, Retention: ret, Now: t0.Add(2 * time.Hour)})
	if !hasRecord(s, "q1") || !hasRecord(s, "q2") {
		t.Fatal("retention removed the records of events still queued")
	}
}
