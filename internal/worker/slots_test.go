package worker

import (
	"context"
	"fmt"
	"nimbus/internal/waitfor"
	"testing"
	"time"
)

// A slot that frees goes to a waiting sync invocation before any queued
// event that waited longer, each kind first come first served; a wait
// that ends leaves the line.
func TestAFreedSlotGoesToAWaitingSyncCallBeforeAQueuedEvent(t *testing.T) {
	s := newSlotSet(1)
	ctx := context.Background()
	if !s.acquire(ctx, 0, false) {
		t.Fatal("the free slot was refused")
	}
	if s.acquire(ctx, 0, true) {
		t.Fatal("a second slot was given without waiting")
	}
	got := make(chan string, 3)
	wait := func(name string, queued bool) {
		go func() {
			if s.acquire(ctx, time.Minute, queued) {
				got <- name
			}
		}()
	}
	waiters := func(n int) {
		t.Helper()
		waitfor.Until(t, 10*time.Second, fmt.Sprintf("%d waiters", n), func() bool { return s.waiters() == n })
	}
	wait("queued 1", true)
	waiters(1)
	wait("queued 2", true)
	waiters(2)
	wait("sync", false)
	waiters(3)
	for _, want := range []string{"sync", "queued 1", "queued 2"} {
		s.release()
		if name := <-got; name != want {
			t.Fatalf("the freed slot went to %s; want %s", name, want)
		}
	}
	if n := s.inUse(); n != 1 {
		t.Fatalf("%d in use; want the one the last waiter holds", n)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if s.acquire(short, time.Minute, false) {
		t.Fatal("a wait whose context ended got a slot")
	}
	if s.acquire(ctx, 10*time.Millisecond, true) {
		t.Fatal("a wait that timed out got a slot")
	}
	if n := s.waiters(); n != 0 {
		t.Fatalf("%d waiters after their waits ended; want 0", n)
	}
	s.release()
	if n := s.inUse(); n != 0 {
		t.Fatalf("%d in use after every slot was released; want 0", n)
	}
}
