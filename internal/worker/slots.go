package worker

import (
	"context"
	"sync"
	"time"
)

// slotSet is a worker's slots: the right to run one invocation each. An
// invocation that finds none free may wait for one; a waiting
// synchronous invocation gets the next slot that frees before any
// waiting queued event (Request.Queued), each kind first come first
// served: an async backlog parked at the worker never starves sync
// calls, and a slot never idles while a queued event waits for it.
type slotSet struct {
	mu      sync.Mutex
	size    int
	used    int
	waiting [2][]chan struct{} // sync, queued; a slot is handed over by closing the channel
}

func newSlotSet(size int) *slotSet { return &slotSet{size: size} }

// acquire takes a slot, waiting up to wait (0: not at all) for one; it
// reports whether it got one.
func (s *slotSet) acquire(ctx context.Context, wait time.Duration, queued bool) bool {
	s.mu.Lock()
	if s.used < s.size {
		s.used++
		s.mu.Unlock()
		return true
	}
	if wait <= 0 {
		s.mu.Unlock()
		return false
	}
	k := 0
	if queued {
		k = 1
	}
	ch := make(chan struct{})
	s.waiting[k] = append(s.waiting[k], ch)
	s.mu.Unlock()

	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ch:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, c := range s.waiting[k] {
		if c == ch {
			s.waiting[k] = append(s.waiting[k][:i], s.waiting[k][i+1:]...)
			return false
		}
	}
	return true // handed over as the wait ended: it is ours
}

// release frees a slot, or hands it to the first waiter (sync first).
func (s *slotSet) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.waiting {
		if len(s.waiting[k]) > 0 {
			close(s.waiting[k][0])
			s.waiting[k] = s.waiting[k][1:]
			return
		}
	}
	s.used--
}

// inUse is how many slots are taken.
func (s *slotSet) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

// waiters is how many invocations wait for a slot.
func (s *slotSet) waiters() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiting[0]) + len(s.waiting[1])
}
