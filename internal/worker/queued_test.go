package worker

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

func TestQueuedEventsAreListedFromTheirOfferUntilTheyReturn(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 1})
	slow := deploy(t, blobs, "slow", 1, "import time\ndef handler(e, c):\n    time.sleep(60)\n")
	running := func() []string { ids, _ := w.RunningQueued(RunningQueuedLimit(1)); return ids }

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, r := range []Request{
		{RequestID: "q1", Function: slow, Payload: []byte("{}"), Queued: true},
		{RequestID: "sync", Function: slow, Payload: []byte("{}")}, // not queued: never listed
		{RequestID: "q2", Function: slow, Payload: []byte("{}"), Queued: true, SlotWait: 60e9},
	} {
		if i > 0 {
			waitFor(t, "q1 holds the slot", func() bool { return w.Status().InUse == 1 })
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = w.Invoke(ctx, r)
		}()
	}
	// q1 runs, q2 waits for the slot (the sync one was refused at once).
	waitFor(t, "q1 and q2 listed", func() bool { return slices.Equal(running(), []string{"q1", "q2"}) })
	if ids, all := w.RunningQueued(1); !slices.Equal(ids, []string{"q1"}) || all {
		t.Fatalf("RunningQueued(1) = %v, %v; want [q1], false", ids, all)
	}

	// The caller goes away (its RPC stream died with its leader): both
	// are cut off, q1's instance killed, and neither is listed.
	cancel()
	wg.Wait()
	if !errors.Is(errs[0], context.Canceled) || !errors.Is(errs[1], ErrNoCapacity) {
		t.Fatalf("errors %v, want q1 canceled and the sync call refused", errs)
	}
	if ids, all := w.RunningQueued(10); len(ids) != 0 || !all {
		t.Fatalf("after the caller went away: %v, %v; want none", ids, all)
	}
	waitFor(t, "q1's instance gone and its slot free", func() bool { st := w.Status(); return st.Instances == 0 && st.InUse == 0 })
}
