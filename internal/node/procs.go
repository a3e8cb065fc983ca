package node

import (
	"os"
	"runtime"
)

// leaveCPUsToInstances gives the Go scheduler of a node that hosts
// instances (nimbus dev, nimbus worker) half the CPUs it would take, at
// least one, unless GOMAXPROCS is set in the environment. The node's own
// work is I/O-bound (HTTP, pipes, Raft); the CPU-bound work is the
// instances', in other processes. With a processor per CPU, every
// goroutine made ready while another runs (net/http's background read on
// each request, a pipe or socket becoming readable) wakes a second thread
// on another CPU, and that wake-up, on a VM an idle vCPU's, lands just
// where the instance is about to run. On this 2-core VM (bench/results.md,
// nimbus bench --quick): one processor instead of two gave warm p50
// 0.106-0.149 ms in 8 runs against 0.138-0.192 in 16, warm_ratio <= 2 in 6
// of 8 runs against 7 of 16, cold starts and throughput no worse. The
// cost: a long CPU-bound goroutine of the node (a large deploy's unzip, a
// login's argon2id) shares fewer processors with invocations, and the
// scheduler preempts it only every 10 ms.
func leaveCPUsToInstances() {
	if _, set := os.LookupEnv("GOMAXPROCS"); set {
		return
	}
	runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)/2))
}
