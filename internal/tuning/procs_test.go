package tuning

import "testing"

func TestProcsGovernorFollowsOverlappingInvocations(t *testing.T) {
	g := newProcsGovernor(4)
	if g.current != 2 || g.low != 2 || g.high != 4 {
		t.Fatalf("4 CPUs: %+v; want half (2) to start with, all (4) at most", g)
	}
	step := func(busy, want int, wantChanged bool) {
		t.Helper()
		if n, changed := g.next(busy); n != want || changed != wantChanged {
			t.Fatalf("after a sample of %d running: %d processors (changed %v); want %d (%v)", busy, n, changed, want, wantChanged)
		}
	}
	// One invocation at a time, however long: half the CPUs.
	for range 3 * procsCalm {
		step(1, 2, false)
	}
	step(0, 2, false)
	// Two at once: all of them, at once.
	step(2, 4, true)
	step(8, 4, false)
	// Calm for one sample short of procsCalm: still all.
	for range procsCalm - 1 {
		step(1, 4, false)
	}
	// Overlap again restarts the count.
	step(3, 4, false)
	for range procsCalm - 1 {
		step(0, 4, false)
	}
	step(0, 2, true)
	step(0, 2, false)
}

func TestProcsGovernorOnOneCPU(t *testing.T) {
	g := newProcsGovernor(1)
	if g.low != 1 || g.high != 1 || g.current != 1 {
		t.Fatalf("1 CPU: %+v; want 1 throughout", g)
	}
	if n, changed := g.next(32); n != 1 || changed {
		t.Fatalf("1 CPU under load: %d (changed %v)", n, changed)
	}
}
