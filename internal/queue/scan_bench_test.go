package queue

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/state"
)

// BenchmarkScanBacklog is one read of a queue of 200,000 ready events of
// 1,000 functions (scan): what the dispatcher does up to ten times a
// second while such a backlog lasts.
func BenchmarkScanBacklog(b *testing.B) {
	s := state.New()
	cp := &testControl{store: s, w: fsm.Direct(fsm.New(s, slog.New(slog.DiscardHandler)))}
	ctx := context.Background()
	for i := range 1000 {
		if _, err := fsm.Apply(ctx, cp, fsm.UpsertFunction{Function: newFunction(fmt.Sprintf("f%04d", i)), Now: time.Now().UTC()}); err != nil {
			b.Fatal(err)
		}
	}
	var items []queueItem
	for i := range 200_000 {
		items = append(items, newEvent(fmt.Sprintf("r%06d", i), fmt.Sprintf("f%04d", i%1000)))
		if len(items) == 1000 {
			if _, err := fsm.Apply(ctx, cp, fsm.Enqueue{Items: items}); err != nil {
				b.Fatal(err)
			}
			items = nil
		}
	}
	d := NewDispatcher(cp, nil, Hooks{}, slog.New(slog.DiscardHandler))
	b.ReportAllocs()
	for b.Loop() {
		d.scan(time.Now().UTC(), functionsOf(s))
	}
}
