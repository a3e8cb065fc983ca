package waitfor

import (
	"sync/atomic"
	"testing"
	"time"
)

// Poll returns as soon as the condition holds, and false once the
// timeout has passed without it.
func TestPollReturnsWhenTheConditionHoldsOrTheTimeoutPasses(t *testing.T) {
	var n atomic.Int32
	if !Poll(time.Minute, func() bool { return n.Add(1) == 3 }) || n.Load() != 3 {
		t.Fatalf("Poll stopped after %d calls; want true after 3", n.Load())
	}
	start := time.Now()
	if Poll(50*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never holds: Poll said it did")
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("Poll gave up before its timeout")
	}
}
