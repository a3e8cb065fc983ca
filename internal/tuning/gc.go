// Package tuning owns the process-wide runtime settings a Nimbus node
// makes: the garbage collector's heap floor and the processors the Go
// scheduler uses. They belong to the process, so only cmd/nimbus turns
// them on (see main.go); the node packages never call them themselves.
package tuning

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// HeapFloor is the smallest heap goal a node's garbage collector works
// towards (see KeepHeapFloor).
const HeapFloor = 64 << 20

func lookupGOGC() (string, bool) { return os.LookupEnv("GOGC") }

// KeepHeapFloor tunes the garbage collector so that its heap goal is at
// least floor bytes, until ctx ends. A node's live heap is small (a few
// MB) while every invocation allocates some kilobytes (its request, its
// record, its log, their Raft entry and log-store pages), so with the
// default GOGC=100 the collector ran every ~150 warm invocations here,
// each cycle a stop-the-world pause of 0.2-0.3 ms on the invoke path.
// While the live heap is under half the floor, GOGC is raised so that the
// goal is the floor; above, GOGC is 100 again: the floor costs at most
// floor bytes of memory. An explicit GOGC in the environment is left
// alone.
func KeepHeapFloor(ctx context.Context, floor uint64) {
	if _, set := lookupGOGC(); set {
		return
	}
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := 100
	tune := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() != metrics.KindUint64 {
			return
		}
		live := max(sample[0].Value.Uint64(), 1<<20)
		want := 100
		if live < floor/2 {
			want = int(floor*100/live) - 100 // goal = live * (1 + GOGC/100) = floor
		}
		// Only changes of more than a fifth are worth a call.
		if want*5 > current*6 || want*6 < current*5 {
			debug.SetGCPercent(want)
			current = want
		}
	}
	tune()
	go every(ctx, time.Second, tune)
}

// every calls f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
