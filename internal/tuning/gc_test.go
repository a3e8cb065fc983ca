package tuning

import (
	"context"
	"runtime/debug"
	"testing"
)

func TestHeapFloorLeavesAnExplicitGOGCAlone(t *testing.T) {
	t.Setenv("GOGC", "") // set: left alone
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	KeepHeapFloor(t.Context(), 1<<40)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GOGC set in the environment, but the floor changed GOGC to %d", got)
	}
}

func TestHeapFloorWithoutGOGC(t *testing.T) {
	if _, set := lookupGOGC(); set {
		t.Skip("GOGC is set for this test run")
	}
	prev := debug.SetGCPercent(100)
	defer debug.SetGCPercent(prev)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	KeepHeapFloor(ctx, 1<<40) // far above any test's live heap
	if got := debug.SetGCPercent(100); got <= 100 {
		t.Fatalf("GOGC %d under a heap floor far above the live heap", got)
	}
}
