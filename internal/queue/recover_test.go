package queue

import (
	"slices"
	"sync"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/placement"
)

func TestANewTermDecidesTheFateOfEachLease(t *testing.T) {
	now := time.Now().UTC()
	leased := func(id string, epoch uint64, until time.Time) queueItem {
		q := newEvent(id, "f")
		q.Epoch, q.LeaseUntil, q.Attempts = epoch, until, 1
		return q
	}
	earlier := map[string]uint64{"old": 3}
	running := placement.Census{Running: map[string]bool{"old": true}}
	none := placement.Census{Running: map[string]bool{}}
	for _, tc := range []struct {
		name   string
		q      queueItem
		census placement.Census
		want   leaseFate
	}{
		{"an earlier term's lease on an event a worker reports running is adopted", leased("old", 3, now.Add(time.Hour)), running, leaseAdopted},
		{"an earlier term's lease on an event no worker reports running is lost", leased("old", 3, now.Add(time.Hour)), none, leaseLost},
		{"an earlier term's lease is adopted when a worker's report is partial",
			leased("old", 3, now.Add(time.Hour)), placement.Census{Running: map[string]bool{}, Partial: true}, leaseAdopted},
		{"a lease of this term (the event leased again since) is untouched", leased("old", 4, now.Add(time.Hour)), none, leaseUntouched},
		{"a lease of this term on an event not leased at its start is untouched", leased("new", 1, now.Add(time.Hour)), none, leaseUntouched},
		{"an expired lease is left to the expiry path", leased("old", 3, now.Add(-time.Second)), none, leaseUntouched},
		{"an event retried since (no lease) is untouched", leased("old", 3, time.Time{}), none, leaseUntouched},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fateOf(tc.q, earlier, tc.census, now); got != tc.want {
				t.Fatalf("fate %d, want %d", got, tc.want)
			}
		})
	}
}

// censusWorker is a fakeWorker whose workers report running the queued
// events in running, after pending polls of the census (0: at once);
// pending < 0 never reports.
type censusWorker struct {
	*fakeWorker
	mu      sync.Mutex
	running []string
	pending int
	polls   int
	since   []time.Time
}

func (w *censusWorker) RunningQueued(since time.Time) placement.Census {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	w.since = append(w.since, since)
	c := placement.Census{Running: map[string]bool{}}
	if w.pending < 0 || w.polls <= w.pending {
		c.Pending = []string{"w1"}
		return c
	}
	for _, id := range w.running {
		c.Running[id] = true
	}
	return c
}

func TestANewTermRunsAgainAtOnceTheEarlierLeasesNoWorkerRunsAndAdoptsTheOthers(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	// A 10-minute timeout and an hour's retry delay: only the new path
	// runs "lost" again within the test.
	deploy(t, cp, newFunction("f", withRetries(2), withRetryDelay(time.Hour)))
	enqueue(t, cp, newEvent("lost", "f"), newEvent("adopted", "f"))
	// An earlier term leased both (an hour's lease) and died.
	leasedAt := time.Now().UTC()
	lostEpoch := lease(t, cp, "lost", leasedAt)
	adoptedEpoch := lease(t, cp, "adopted", leasedAt)

	w := &censusWorker{fakeWorker: newWorker(4, always(okResult(`1`))), running: []string{"adopted"}, pending: 3}
	d := NewDispatcher(cp, w, Hooks{}, sink.logger())
	end, ended := runTerm(t, d)
	defer func() { end(); close(w.stop); <-ended }()

	waitFor(t, "lost to succeed", func() bool { r, _ := recordOf(cp, "lost"); return r.Status == statusSuccess })
	if r, _ := recordOf(cp, "lost"); r.Attempts != 2 {
		t.Fatalf("lost: %d attempts; want 2 (the earlier term's and the run)", r.Attempts)
	}
	_, o, ok := finishOf(t, cp, "lost", fsm.OutcomeRetry)
	if !ok || o.LastError != placement.ErrorWorkerLost || o.Epoch != lostEpoch || o.Refund || o.NotBefore.After(time.Now()) {
		t.Fatalf("lost's retry %+v (%v); want Sandbox.WorkerLost under its lease's epoch %d, counted, to run now", o, ok, lostEpoch)
	}
	w.mu.Lock()
	polls, since := w.polls, slices.Clone(w.since)
	w.mu.Unlock()
	if polls < 4 {
		t.Fatalf("the census was taken %d times; want the dispatcher to wait while a worker was pending (4 at least)", polls)
	}
	for _, s := range since {
		if !s.Equal(since[0]) || s.Before(leasedAt) {
			t.Fatalf("census since %v; want the term's start every time (after the earlier lease, %v)", since, leasedAt)
		}
	}

	// The adopted event is left to its worker: not run here, its lease
	// as it was.
	q, ok := cp.Store().QueueItem("adopted")
	if !ok || q.Epoch != adoptedEpoch || !q.Leased(time.Now()) || q.Attempts != 1 {
		t.Fatalf("adopted: %+v (%v); want still leased under epoch %d", q, ok, adoptedEpoch)
	}
	if n := len(w.callsOf("adopted")); n != 0 {
		t.Fatalf("adopted ran %d times here; want none (a worker runs it)", n)
	}
	if _, _, ok := finishOf(t, cp, "adopted", fsm.OutcomeRetry); ok {
		t.Fatal("the adopted event was retried")
	}
	// Its run's outcome, committed by the deposed dispatcher under its
	// epoch, is accepted.
	if _, err := fsm.Apply(withDefaultTimeout(t), cp, fsm.Finish{Outcomes: []fsm.Outcome{
		{RequestID: "adopted", Epoch: adoptedEpoch, Kind: fsm.OutcomeComplete, Record: record{Status: statusSuccess}}}, Now: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	if r, _ := recordOf(cp, "adopted"); r.Status != statusSuccess || r.Attempts != 1 {
		t.Fatalf("adopted's record %+v; want success in 1 attempt", r)
	}
}

func TestANewTermLeavesItsOwnLeasesAlone(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("f"))
	enqueue(t, cp, newEvent("old", "f"))
	lease(t, cp, "old", time.Now().UTC())
	// The census comes late; meanwhile this term leases and runs "mine",
	// which its worker holds (and does not report: it is this term's).
	release := make(chan struct{})
	started := make(chan string, 1)
	w := &censusWorker{fakeWorker: newWorker(4, held(started, release)), pending: -1}
	d := NewDispatcher(cp, w, Hooks{}, sink.logger())
	d.censusWait = time.Hour
	end, ended := runTerm(t, d)
	defer func() { end(); close(w.stop); <-ended }()
	enqueue(t, cp, newEvent("mine", "f"))
	select {
	case id := <-started:
		if id != "mine" {
			t.Fatalf("ran %s; want mine", id)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("mine was not run")
	}
	w.mu.Lock()
	w.pending = 0 // the workers report: nothing runs
	w.mu.Unlock()
	waitFor(t, "old to be retried", func() bool { _, _, ok := finishOf(t, cp, "old", fsm.OutcomeRetry); return ok })
	if _, _, ok := finishOf(t, cp, "mine", fsm.OutcomeRetry); ok {
		t.Fatal("this term's own lease was retried")
	}
	close(release)
	waitFor(t, "mine to succeed", func() bool { r, _ := recordOf(cp, "mine"); return r.Status == statusSuccess })
	if r, _ := recordOf(cp, "mine"); r.Attempts != 1 {
		t.Fatalf("mine: %d attempts; want 1", r.Attempts)
	}
}

func TestAWorkerThatNeverReportsIsTakenAsRunningNothing(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("f", withRetries(0), withDestinations("", "function:g")))
	deploy(t, cp, newFunction("g"))
	enqueue(t, cp, newEvent("r1", "f"))
	lease(t, cp, "r1", time.Now().UTC())
	w := &censusWorker{fakeWorker: newWorker(4, always(okResult(`1`))), pending: -1}
	d := NewDispatcher(cp, w, Hooks{}, sink.logger())
	d.censusWait = 100 * time.Millisecond
	end, ended := runTerm(t, d)
	defer func() { end(); close(w.stop); <-ended }()
	// No retries left: lost, it is dead-lettered to its failure
	// destination, as an expired lease would be.
	waitFor(t, "r1 to be dead-lettered", func() bool { _, ok := deadLetterOf(cp, "r1"); return ok })
	if dl, _ := deadLetterOf(cp, "r1"); dl.Reason != retriesExhausted || dl.LastError != placement.ErrorWorkerLost || dl.Attempts != 1 {
		t.Fatalf("dead letter %+v", dl)
	}
	finish, _, _ := finishOf(t, cp, "r1", fsm.OutcomeDeadLetter)
	if dest := destinationIn(finish, "r1-retriesexhausted"); dest == nil || dest.Function != "g" {
		t.Fatalf("the dead letter's Finish does not queue its destination: %+v", finish)
	}
	if !sink.has("workers sent no heartbeat since the term began: taken as running no queued event", "") {
		t.Error("the workers that never reported were not logged")
	}
}

func TestATermThatEndsAsItLeasesStartsNothing(t *testing.T) {
	cp, sink := newControl(t), newLogSink(t)
	deploy(t, cp, newFunction("f"))
	enqueue(t, cp, newEvent("r1", "f"))
	// The term ends while its Lease is being committed (a leader deposed
	// mid-pass); the Lease commits all the same.
	leasing, commit := make(chan struct{}), make(chan struct{})
	var once sync.Once
	cp.setBefore(func(ct fsm.CommandType, _ []byte) error {
		if ct == fsm.LeaseType {
			once.Do(func() { close(leasing); <-commit })
		}
		return nil
	})
	w := newWorker(4, always(okResult(`1`)))
	d := NewDispatcher(cp, w, Hooks{}, sink.logger())
	end, ended := runTerm(t, d)
	waitClosed(t, "the Lease to be under way", leasing)
	end()
	waitFor(t, "the dispatcher to know its term ended", func() bool { d.mu.Lock(); defer d.mu.Unlock(); return d.ending })
	close(commit)
	waitClosed(t, "the term to end", ended)
	// The event leased as the term ended never ran: it went back to the
	// queue, its attempt refunded.
	if n := len(w.callsOf("r1")); n != 0 {
		t.Fatalf("r1 ran %d times after its term ended; want none", n)
	}
	if q, ok := cp.Store().QueueItem("r1"); !ok || q.Leased(time.Now()) || q.Attempts != 0 {
		t.Fatalf("r1 %+v (%v); want it back in the queue, unleased, no attempt counted", q, ok)
	}
}
