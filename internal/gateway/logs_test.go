package gateway

import (
	"fmt"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/worker"
)

// Logs carried by records merge with stored ones: a stored log wins over
// its record's tail, records without a log (queued or running async
// invocations) take no place, and the newest limit come oldest first.
func TestMergeLogs(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 18, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	stored := []model.LogEntry{{RequestID: "long", Function: "f", Time: at(2), Log: "whole long log"}}
	recs := []model.Invocation{
		{ID: "long", Function: "f", Start: at(2), LogTail: "its tail"},
		{ID: "short", Function: "f", Start: at(1), LogTail: "short log"},
		{ID: "newest", Function: "f", Start: at(3), LogTail: "newest log"},
	}
	// A backlog of 100 queued async invocations, newer than all of them.
	for i := range 100 {
		recs = append([]model.Invocation{{ID: fmt.Sprintf("queued-%d", i), Function: "f", Start: at(100 + i)}}, recs...)
	}
	got := mergeLogs(stored, recs, 100)
	want := []string{"short log", "whole long log", "newest log"}
	if len(got) != len(want) {
		t.Fatalf("got %d logs, want %d: %+v", len(got), len(want), got)
	}
	for i, e := range got {
		if e.Log != want[i] || e.Truncated {
			t.Fatalf("log %d: %q (truncated %v), want %q", i, e.Log, e.Truncated, want[i])
		}
	}
	if got := mergeLogs(stored, recs, 2); len(got) != 2 || got[0].Log != "whole long log" || got[1].Log != "newest log" {
		t.Fatalf("limit 2: %+v", got)
	}
	// A record's full 4 KB tail of a log stored elsewhere is marked truncated.
	big := model.Invocation{ID: "big", Function: "f", Start: at(4), LogTail: string(make([]byte, worker.LogTailBytes))}
	if got := mergeLogs(nil, []model.Invocation{big}, 10); len(got) != 1 || !got[0].Truncated {
		t.Fatalf("a 4 KB tail: %+v", got)
	}
}
