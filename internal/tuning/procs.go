package tuning

import (
	"context"
	"os"
	"runtime"
	"time"
)

// LeaveCPUsToInstances gives the Go scheduler of a node that hosts
// instances (nimbus dev, nimbus worker) half the CPUs it would take, at
// least one, while at most one invocation runs at a time, and all of them
// while invocations run side by side; unless GOMAXPROCS is set in the
// environment. It samples busy (the worker's slots in use) until ctx
// ends, and returns then.
//
// Half while invocations come one at a time: the node's own work is
// I/O-bound (HTTP, pipes, Raft) and the CPU-bound work is the instances',
// in other processes. With a processor per CPU, every goroutine made
// ready while another runs (net/http's background read on each request, a
// pipe or socket becoming readable) wakes a second thread on another CPU,
// and that wake-up, on a VM an idle vCPU's, lands just where the instance
// is about to run. On this 2-core VM (bench/results.md, nimbus bench
// --quick): one processor instead of two gave warm p50 0.106-0.149 ms in
// 8 runs against 0.138-0.192 in 16, warm_ratio <= 2 in 6 of 8 runs
// against 7 of 16, cold starts no worse.
//
// All while invocations overlap: then the node's one processor is what
// limits throughput (at concurrency 32 it was 85-90 % busy, with a fifth
// of the machine idle), and the wake-ups have work to wake to. Eight
// alternating quick runs on 2026-12-02: 6,012-6,989 rps with one processor,
// 7,408-9,513 with two.
//
// The other cost of half: a long CPU-bound goroutine of the node (a large
// deploy's unzip, a login's argon2id) shares fewer processors with
// invocations, and the scheduler preempts it only every 10 ms.
func LeaveCPUsToInstances(ctx context.Context, busy func() int) {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return
	}
	g := newProcsGovernor(runtime.GOMAXPROCS(0))
	runtime.GOMAXPROCS(g.current)
	if g.low == g.high {
		return
	}
	every(ctx, procsSample, func() {
		if n, changed := g.next(busy()); changed {
			runtime.GOMAXPROCS(n)
		}
	})
}

const (
	// procsSample is how often the governor looks at the worker's load.
	procsSample = 25 * time.Millisecond
	// procsCalm is how many samples in a row with at most one invocation
	// running bring the processors back down: a second.
	procsCalm = 40
)

// procsGovernor decides the node's processor count from samples of the
// invocations running: high as soon as two or more run at once, low again
// once procsCalm samples in a row saw at most one. Each change stops the
// world for a moment, so it changes only on a change of regime.
type procsGovernor struct {
	low, high, current int
	calm               int // samples in a row with at most one running
}

func newProcsGovernor(cpus int) *procsGovernor {
	low := max(1, cpus/2)
	return &procsGovernor{low: low, high: max(cpus, low), current: low}
}

// next takes a sample (the invocations running now) and returns the
// processor count and whether it changed.
func (g *procsGovernor) next(busy int) (int, bool) {
	if busy >= 2 {
		g.calm = 0
		if g.current != g.high {
			g.current = g.high
			return g.current, true
		}
		return g.current, false
	}
	g.calm++
	if g.current != g.low && g.calm >= procsCalm {
		g.current = g.low
		return g.current, true
	}
	return g.current, false
}
