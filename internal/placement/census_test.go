package placement

import (
	"log/slog"
	"slices"
	"testing"
	"time"

	"nimbus/internal/rpc/rpcpb"
)

func TestRegistryCensusCountsAWorkerFromItsSecondHeartbeatSince(t *testing.T) {
	r := NewRegistry(nil, time.Minute, 0, slog.New(slog.DiscardHandler))
	if c := r.RunningQueued(time.Now()); !c.Listening {
		t.Fatalf("a registry younger than its dead-after time: %+v, want Listening (a live worker may not have been heard yet)", c)
	}
	r.started = time.Now().Add(-time.Minute)
	beat := func(id string, running []string, complete bool) {
		r.Heartbeat(&rpcpb.WorkerHeartbeat{WorkerId: id, Address: id + ":1", Slots: 2, Running: running, RunningComplete: complete})
	}
	beat("w1", []string{"old"}, true)
	beat("w2", nil, true)
	since := time.Now()
	waitUntilAfter(since)

	c := r.RunningQueued(since)
	if !slices.Equal(c.Pending, []string{"w1", "w2"}) || len(c.Running) != 0 {
		t.Fatalf("before any heartbeat since: %+v, want both pending", c)
	}
	// The first heartbeat that arrives since may have been taken before.
	beat("w1", []string{"a"}, true)
	if c := r.RunningQueued(since); !slices.Equal(c.Pending, []string{"w1", "w2"}) {
		t.Fatalf("after one heartbeat of w1: pending %v, want both", c.Pending)
	}
	beat("w1", []string{"a", "b"}, true)
	beat("w2", nil, true)
	beat("w2", []string{"c"}, true)
	c = r.RunningQueued(since)
	if len(c.Pending) != 0 || c.Partial || !c.Running["a"] || !c.Running["b"] || !c.Running["c"] || c.Running["old"] {
		t.Fatalf("after two heartbeats each: %+v, want a, b and c running, none pending", c)
	}
	if c.Listening {
		t.Fatalf("a registry a minute younger than its dead-after time says it is listening")
	}
	beat("w2", []string{"c"}, false) // cut at its bound, or an older worker
	if c := r.RunningQueued(since); !c.Partial {
		t.Fatalf("a report that is not the whole list: %+v, want Partial", c)
	}
}

func TestRegistryCensusLeavesOutDeadWorkers(t *testing.T) {
	r := NewRegistry(nil, time.Nanosecond, time.Hour, slog.New(slog.DiscardHandler))
	r.Heartbeat(&rpcpb.WorkerHeartbeat{WorkerId: "w1", Address: "w1:1", Running: []string{"a"}, RunningComplete: true})
	since := time.Now()
	waitUntilAfter(since)
	if c := r.RunningQueued(since); len(c.Pending) != 0 || len(c.Running) != 0 {
		t.Fatalf("census of a dead worker: %+v, want nothing pending or running", c)
	}
}

// waitUntilAfter returns once the clock has moved past t (its resolution
// may be coarse).
func waitUntilAfter(t time.Time) {
	for !time.Now().After(t) {
	}
}
