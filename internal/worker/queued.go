package worker

import (
	"slices"
	"sync"
)

// queuedRuns are the request IDs of the queued (asynchronous) events a
// worker holds now: running in a slot or waiting for one. The leader's
// dispatcher learns them from heartbeats when it takes office, to tell
// the events an earlier leader leased that still run (adopted) from those
// that died with it (run again at once). The zero value is ready for
// use; safe for concurrent use.
type queuedRuns struct {
	mu  sync.Mutex
	ids map[string]int // a request ID offered twice at once counts twice
}

func (q *queuedRuns) add(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ids == nil {
		q.ids = map[string]int{}
	}
	q.ids[id]++
}

func (q *queuedRuns) remove(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ids[id]--; q.ids[id] <= 0 {
		delete(q.ids, id)
	}
}

// list returns at most limit of the IDs, sorted, and reports whether
// that is all of them.
func (q *queuedRuns) list(limit int) ([]string, bool) {
	q.mu.Lock()
	out := make([]string, 0, min(len(q.ids), limit))
	for id := range q.ids {
		out = append(out, id)
	}
	q.mu.Unlock()
	slices.Sort(out)
	if len(out) > limit {
		return out[:limit], false
	}
	return out, true
}

// RunningQueued returns the request IDs of the queued events
// (Request.Queued) the worker holds now, from the moment it is offered
// one until its Invoke returns: running, or waiting for a slot. An
// invocation whose caller goes away (its context ends) is cut off — its
// instance killed — before it leaves the list, so an event missing from
// the list runs nowhere on this worker. It returns at most limit IDs and
// reports whether that is all of them; a worker holds at most its slots
// and the few events that wait for one (see placement's Room), so a
// limit a little above its slots is never reached in practice.
func (w *Worker) RunningQueued(limit int) ([]string, bool) { return w.queued.list(limit) }

// RunningQueuedLimit is the longest list of queued events a worker with
// slots reports (RunningQueued): its slots and a margin for those waiting
// for one.
func RunningQueuedLimit(slots int) int { return slots + 64 }
