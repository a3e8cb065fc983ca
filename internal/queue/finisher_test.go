package queue

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"nimbus/internal/fsm"
)

// holdFirstFinish makes cp's first Finish command wait, once it has
// begun, until release is called; entered closes when it has begun.
func holdFirstFinish(cp *testControl) (entered <-chan struct{}, release func()) {
	in, out := make(chan struct{}), make(chan struct{})
	var once, rel sync.Once
	cp.setBefore(func(t fsm.CommandType, _ []byte) error {
		if t != fsm.FinishType {
			return nil
		}
		first := false
		once.Do(func() { first = true })
		if first {
			close(in)
			<-out
		}
		return nil
	})
	return in, func() { rel.Do(func() { close(out) }) }
}

// startFinisher runs a finisher until stop is called or the test ends;
// done collects the request IDs of the outcomes it reports done.
func startFinisher(t *testing.T, cp *testControl, sink *logSink) (f *finisher, done *doneLog, stop func()) {
	f = newFinisher(cp, sink.logger())
	done = &doneLog{}
	f.onDone = done.add
	var once sync.Once
	stop = func() { once.Do(f.close) }
	t.Cleanup(stop)
	return f, done, stop
}

type doneLog struct {
	mu  sync.Mutex
	ids []string
}

func (d *doneLog) add(o *Outcome) {
	d.mu.Lock()
	d.ids = append(d.ids, o.Item.RequestID)
	d.mu.Unlock()
}

func (d *doneLog) list() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.ids...)
}

// leased queues and leases events id0..id(n-1) and returns their
// successful outcomes with their notes.
func leased(t *testing.T, cp *testControl, n int) ([]fsm.Outcome, []*Outcome) {
	var items []queueItem
	for i := range n {
		items = append(items, newEvent(fmt.Sprintf("id%d", i), "f"))
	}
	enqueue(t, cp, items...)
	now := time.Now().UTC()
	var leases []fsm.LeaseRequest
	for _, q := range items {
		leases = append(leases, fsm.LeaseRequest{RequestID: q.RequestID, Until: now.Add(time.Hour)})
	}
	res, err := fsm.Apply(withDefaultTimeout(t), cp, fsm.Lease{Leases: leases, Now: now})
	if err != nil || len(res.Epochs) != n {
		t.Fatalf("leasing: %v, %d leases", err, len(res.Epochs))
	}
	var outs []fsm.Outcome
	var notes []*Outcome
	for _, q := range items {
		outs = append(outs, fsm.Outcome{RequestID: q.RequestID, Epoch: res.Epochs[q.RequestID], Kind: fsm.OutcomeComplete, Record: record{Status: statusSuccess}})
		notes = append(notes, &Outcome{Item: q, Condition: "Success"})
	}
	return outs, notes
}

func TestTheFinisherCommitsOutcomesInBatchesOfAtMost512(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	outs, notes := leased(t, cp, 1001)
	entered, release := holdFirstFinish(cp)
	defer release()
	f, done, _ := startFinisher(t, cp, sink)

	// The first outcome's commit is held while the 1000 others arrive.
	f.add(outs[0], notes[0])
	<-entered
	for i := 1; i < len(outs); i++ {
		f.add(outs[i], notes[i])
	}
	release()
	waitFor(t, "every outcome to be done", func() bool { return len(done.list()) == len(outs) })
	var sizes []int
	for _, c := range commands[fsm.Finish](t, cp, fsm.FinishType) {
		sizes = append(sizes, len(c.Outcomes))
	}
	if fmt.Sprint(sizes) != "[1 512 488]" {
		t.Fatalf("Finish commands of %v outcomes; want [1 512 488]", sizes)
	}
	if n := len(cp.Store().QueueItems()); n != 0 {
		t.Fatalf("%d events still queued", n)
	}
	for i, id := range done.list() {
		if id != outs[i].RequestID {
			t.Fatalf("outcome %d done is %s; want %s (in order)", i, id, outs[i].RequestID)
		}
	}
}

func TestTheFinisherReportsRefusedOutcomesAndDoesNotCallTheHookForThem(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	outs, notes := leased(t, cp, 3)
	f, done, _ := startFinisher(t, cp, sink)

	stale := outs[1]
	stale.Epoch++
	unknown := fsm.Outcome{RequestID: "unknown", Epoch: 1, Kind: fsm.OutcomeComplete}
	f.add(outs[0], notes[0])
	f.add(stale, notes[1])
	f.add(unknown, &Outcome{Item: newEvent("unknown", "f")})
	f.add(outs[2], nil) // accepted, with nothing to tell

	// The four may be committed in up to four batches: wait for the last.
	waitFor(t, "the refusals to be reported and id2 to complete", func() bool {
		_, queued := cp.Store().QueueItem("id2")
		return sink.has("async outcome refused", "id1") && sink.has("async outcome refused", "unknown") && !queued
	})
	if got := fmt.Sprint(done.list()); got != "[id0]" {
		t.Fatalf("outcomes done %s; want [id0]", got)
	}
	if sink.has("async outcome refused", "id0") || sink.has("async outcome refused", "id2") {
		t.Fatal("an accepted outcome was reported refused")
	}
	for id, want := range map[string]bool{"id0": false, "id1": true, "id2": false} {
		if _, queued := cp.Store().QueueItem(id); queued != want {
			t.Errorf("%s queued: %v; want %v", id, queued, want)
		}
	}
}

func TestAFinishThatFailsToCommitIsLoggedAndTheNextOneGoesThrough(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	outs, notes := leased(t, cp, 2)
	var fail atomic.Bool
	fail.Store(true)
	cp.setBefore(func(fsm.CommandType, []byte) error {
		if fail.Load() {
			return errors.New("leadership lost")
		}
		return nil
	})
	f, done, _ := startFinisher(t, cp, sink)

	f.add(outs[0], notes[0])
	waitFor(t, "the failed commit to be logged", func() bool { return sink.has("committing async outcomes", "") })
	fail.Store(false)
	f.add(outs[1], notes[1])
	waitFor(t, "the next outcome to be done", func() bool { return len(done.list()) == 1 })
	if got := fmt.Sprint(done.list()); got != "[id1]" {
		t.Fatalf("outcomes done %s; want [id1]", got)
	}
	// The lost outcome's event keeps its lease, which expires: then the
	// dispatcher runs it again.
	if q, ok := cp.Store().QueueItem("id0"); !ok || q.LeaseUntil.IsZero() {
		t.Fatalf("id0: %+v, %v; want it leased still", q, ok)
	}
}

func TestClosingTheFinisherCommitsWhatIsPending(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	outs, notes := leased(t, cp, 20)
	entered, release := holdFirstFinish(cp)
	f, done, stop := startFinisher(t, cp, sink)
	f.add(outs[0], notes[0])
	<-entered
	for i := 1; i < len(outs); i++ {
		f.add(outs[i], notes[i])
	}
	closed := make(chan struct{})
	go func() {
		stop()
		close(closed)
	}()
	release()
	<-closed
	if n := len(done.list()); n != len(outs) {
		t.Fatalf("%d outcomes done after close; want %d", n, len(outs))
	}
	if n := len(cp.Store().QueueItems()); n != 0 {
		t.Fatalf("%d events still queued after close", n)
	}
}
