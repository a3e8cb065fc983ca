package queue

import (
	"slices"
	"testing"

	"nimbus/internal/model"
)

func ids(items []*model.QueueItem) []string {
	out := make([]string, len(items))
	for i, q := range items {
		out[i] = q.RequestID
	}
	return out
}

func item(id, ns, fn, trigger string) *model.QueueItem {
	return &model.QueueItem{RequestID: id, Namespace: ns, Function: fn, Trigger: trigger}
}

// Ready events are offered schedule fires first, then round-robin over
// namespaces, and within a namespace round-robin over its functions,
// each lane in arrival order; the rounds visit lanes in the order of
// their oldest event.
func TestFairOrderServesScheduleFiresFirstThenRoundRobinsNamespacesAndFunctions(t *testing.T) {
	ready := []*model.QueueItem{ // in arrival order
		item("a1", "", "flood", "async"),
		item("a2", "", "flood", "async"),
		item("a3", "", "flood", "async"),
		item("a4", "", "flood", "async"),
		item("b1", "team", "f", "async"),
		item("s1", "", "tick", "schedule:every-minute"),
		item("c1", "", "other", "destination:flood"),
		item("b2", "team", "f", "async"),
		item("a5", "", "flood", "async"),
		item("d1", "team", "g", "async"),
		item("s2", "team", "tock", "schedule:hourly"),
	}
	got := ids(fairOrder(ready))
	want := []string{
		"s1", "s2", // schedule fires, oldest first
		// round 1: the default namespace (oldest event a1) serves flood,
		// then team serves f; round 2: default's other, team's g; then
		// what is left, in turn.
		"a1", "b1", "c1", "d1", "a2", "b2", "a3", "a4", "a5",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("order %v\nwant  %v", got, want)
	}
	if len(fairOrder(nil)) != 0 {
		t.Fatal("no events: want none")
	}
}

// A flood of one function does not hold back another function's event
// by more than a round: whatever the flood's length, the other event is
// second.
func TestAFloodOfOneFunctionDoesNotHoldBackAnother(t *testing.T) {
	var ready []*model.QueueItem
	for range 10000 {
		ready = append(ready, item("flood", "", "flood", "async"))
	}
	ready = append(ready, item("late", "", "late", "async"))
	if got := fairOrder(ready); got[1].RequestID != "late" || len(got) != len(ready) {
		t.Fatalf("the late event came at %d of %d", slices.IndexFunc(got, func(q *model.QueueItem) bool { return q.RequestID == "late" }), len(got))
	}
}
