// Package waitfor is the tests' one way to wait for an outcome: poll a
// condition until it holds or a deadline passes, never sleep a guessed
// time. Deadlines are generous (the machine may be busy); the poll
// interval is short.
package waitfor

import (
	"testing"
	"time"
)

// Interval is how often Until polls.
const Interval = 10 * time.Millisecond

// Until polls cond every Interval until it holds, and fails the test,
// naming what it waited for, if timeout passes first.
func Until(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("timed out after %v waiting until %s", timeout, what)
	}
}

// Poll polls cond every Interval until it holds (true) or timeout passes
// (false).
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(Interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		<-tick.C
	}
	return true
}
