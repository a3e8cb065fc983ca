package placement

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// fakeTarget is a worker that answers from a script.
type fakeTarget struct {
	id       string
	inUse    int
	slots    int
	warm     bool
	healthy  bool
	refuse   error // returned by Invoke when set
	invoked  int
	waitSeen time.Duration
	runtimes []string // nil: python3.11
}

func (f *fakeTarget) Invoke(ctx context.Context, req worker.Request) (worker.Result, error) {
	f.invoked++
	f.waitSeen = req.SlotWait
	if f.refuse != nil && (req.SlotWait == 0 || !errors.Is(f.refuse, worker.ErrNoCapacity)) {
		return worker.Result{}, f.refuse
	}
	return worker.Result{WorkerID: f.id}, nil
}
func (f *fakeTarget) Retire(string) {}
func (f *fakeTarget) Status() client.Worker {
	return client.Worker{ID: f.id, Slots: f.slots, InUse: f.inUse, Healthy: f.healthy}
}
func (f *fakeTarget) HasWarm(string, int64) bool { return f.warm }
func (f *fakeTarget) Runtimes() []string {
	if f.runtimes == nil {
		return []string{"python3.11"}
	}
	return f.runtimes
}

type fakeSource []Target

func (s fakeSource) Targets() []Target { return s }

func req() worker.Request {
	return worker.Request{RequestID: "r", Function: model.Function{FunctionConfig: model.FunctionConfig{Name: "f"}, Revision: 1}}
}

func TestAWarmWorkerIsPreferredThenTheLeastLoaded(t *testing.T) {
	busy := &fakeTarget{id: "busy", slots: 4, inUse: 3, healthy: true}
	idle := &fakeTarget{id: "idle", slots: 4, inUse: 0, healthy: true}
	warm := &fakeTarget{id: "warm", slots: 4, inUse: 3, healthy: true, warm: true}
	p := New(fakeSource{busy, idle, warm})
	res, err := p.Invoke(context.Background(), req())
	if err != nil || res.WorkerID != "warm" {
		t.Fatalf("want the warm worker, got %q %v", res.WorkerID, err)
	}
	warm.warm = false
	if res, _ := p.Invoke(context.Background(), req()); res.WorkerID != "idle" {
		t.Fatalf("want the least loaded worker, got %q", res.WorkerID)
	}
}

func TestRefusalsFallThroughAndUnhealthyWorkersAreSkipped(t *testing.T) {
	full := &fakeTarget{id: "full", slots: 1, healthy: true, refuse: worker.ErrNoCapacity}
	gone := &fakeTarget{id: "gone", slots: 8, healthy: true, refuse: ErrUnreachable}
	sick := &fakeTarget{id: "sick", slots: 8, healthy: false}
	ok := &fakeTarget{id: "ok", slots: 1, inUse: 1, healthy: true}
	p := New(fakeSource{full, gone, sick, ok})
	res, err := p.Invoke(context.Background(), req())
	if err != nil || res.WorkerID != "ok" {
		t.Fatalf("got %q %v", res.WorkerID, err)
	}
	if sick.invoked != 0 {
		t.Fatal("an unhealthy worker was offered work")
	}
}

func TestWhenEveryWorkerIsFullTheRequestWaitsThenIsRefused(t *testing.T) {
	a := &fakeTarget{id: "a", slots: 1, inUse: 1, healthy: true, refuse: worker.ErrNoCapacity}
	b := &fakeTarget{id: "b", slots: 1, inUse: 1, healthy: true, refuse: worker.ErrNoCapacity}
	p := New(fakeSource{a, b})
	full := p.rank(req().Function)[0].(*fakeTarget) // the one tried first
	res, err := p.Invoke(context.Background(), req())
	if err != nil || res.WorkerID != full.id || full.invoked != 2 || full.waitSeen != DefaultSlotWait {
		t.Fatalf("want a second offer to the first worker, waiting for a slot: %q %v (offers %d, wait %v)", res.WorkerID, err, full.invoked, full.waitSeen)
	}
	// An event from the queue waits at a worker too (behind any sync
	// call waiting there: see worker.slotSet), even with no slot wait set
	// for sync calls.
	full.invoked = 0
	p.SlotWait = 0
	queued := req()
	queued.Queued = true
	if res, err := p.Invoke(context.Background(), queued); err != nil || res.WorkerID != full.id || full.invoked != 2 || full.waitSeen != DefaultSlotWait {
		t.Fatalf("a queued event: want a second offer waiting for a slot, got %q %v (offers %d, wait %v)", res.WorkerID, err, full.invoked, full.waitSeen)
	}
	p.SlotWait = 0
	if _, err := p.Invoke(context.Background(), req()); !errors.Is(err, worker.ErrNoCapacity) {
		t.Fatalf("without a slot wait: want ErrNoCapacity, got %v", err)
	}
}

func TestNoWorkersAtAll(t *testing.T) {
	p := New(fakeSource{})
	if _, err := p.Invoke(context.Background(), req()); !errors.Is(err, ErrNoWorkers) {
		t.Fatalf("want ErrNoWorkers, got %v", err)
	}
	gone := &fakeTarget{id: "gone", slots: 1, healthy: true, refuse: ErrUnreachable}
	if _, err := New(fakeSource{gone}).Invoke(context.Background(), req()); !errors.Is(err, ErrNoWorkers) {
		t.Fatalf("only unreachable workers: want ErrNoWorkers, got %v", err)
	}
}

func TestRoomAndRuntimesCountHealthyWorkersOnly(t *testing.T) {
	p := New(fakeSource{
		&fakeTarget{id: "a", slots: 4, inUse: 1, healthy: true},
		&fakeTarget{id: "b", slots: 4, inUse: 0, healthy: false},
		&fakeTarget{id: "c", slots: 2, inUse: 3, healthy: true}, // both busy, one waiting
	})
	// a: 3 free slots and one waiter; b: unhealthy; c: its waiter is there.
	if n := p.Room(); n != 4 {
		t.Fatalf("room %d, want 4", n)
	}
	if rts := p.Runtimes(); len(rts) != 1 || rts[0] != "python3.11" {
		t.Fatalf("runtimes %v", rts)
	}
}

// Only a worker that offers a function's runtime runs it, however idle
// the others are; none offering it is a clear error naming what they
// offer.
func TestOnlyWorkersWithTheRuntimeAreOffered(t *testing.T) {
	old := &fakeTarget{id: "old", slots: 4, healthy: true}
	newer := &fakeTarget{id: "newer", slots: 4, inUse: 3, healthy: true, runtimes: []string{"python3.13", "python3.11"}}
	p := New(fakeSource{old, newer})
	r := req()
	r.Function.Runtime = "python3.13"
	for range 3 {
		if res, err := p.Invoke(context.Background(), r); err != nil || res.WorkerID != "newer" {
			t.Fatalf("python3.13 ran on %q (%v)", res.WorkerID, err)
		}
	}
	if old.invoked != 0 {
		t.Fatalf("the worker without python3.13 was offered %d invocations", old.invoked)
	}
	r.Function.Runtime = "python3.99"
	if _, err := p.Invoke(context.Background(), r); !errors.Is(err, ErrNoWorkers) || !strings.Contains(err.Error(), "python3.99") || !strings.Contains(err.Error(), "python3.13") {
		t.Fatalf("a runtime no worker offers: %v", err)
	}
	// One worker (nimbus dev) without the runtime: the same error.
	if _, err := New(fakeSource{old}).Invoke(context.Background(), r); !errors.Is(err, ErrNoWorkers) || !strings.Contains(err.Error(), "python3.99") {
		t.Fatalf("the one worker lacks the runtime: %v", err)
	}
}
