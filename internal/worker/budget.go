package worker

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The memory budget bounds the instances a worker keeps, idle or busy:
// Config.InstanceMemory bytes, each instance counted at its size (below).
// When a new instance would not fit, idle instances go, the least
// recently used first across all functions, sparing the provisioned
// ones; when busy instances alone exceed it, the new one starts all the
// same (slots bound what runs at once, the budget what stays warm), and
// idle ones go as they are released until the worker is within it.

// unmeasuredSize is what an instance counts before it is measured, and
// always where the executor cannot measure it (plain processes): a
// Python 3.11 interpreter holds about 10 MB resident, 4.2-4.6 MB of it
// its own (what a sandbox's cgroup is charged for an idle instance); 16
// MiB errs toward keeping fewer instances than fit.
const unmeasuredSize = 16 << 20

// measurePeriod is how often the idle reaper measures every instance
// again: a warm instance's footprint grows with what its function
// caches, and a measure is one cgroup file read.
const measurePeriod = 5 * time.Second

// sizeOf is what an instance of a function of memoryMB counts when it
// measures measured bytes (0: not measured): the measure, or
// unmeasuredSize, never more than the function's memory size (its
// cgroup's limit).
func sizeOf(measured int64, memoryMB int) int64 {
	if measured <= 0 {
		measured = unmeasuredSize
	}
	if memoryMB > 0 {
		measured = min(measured, int64(memoryMB)<<20)
	}
	return measured
}

// DefaultInstanceMemory is the budget of a worker not told one: a
// quarter of the host's memory (1 GiB where /proc/meminfo cannot be
// read). A quarter, because the budget counts idle instances at their
// footprint (a few MB) while a busy one may grow to its function's
// memory size, up to slots × that at once, and the host also holds the
// page cache of code and runtimes, the worker, and in nimbus dev the
// server; at ~4 MB an instance, a quarter of 8 GB keeps about 500 warm.
func DefaultInstanceMemory() int64 {
	if n := memTotal("/proc/meminfo"); n > 0 {
		return n / 4
	}
	return 1 << 30
}

// memTotal reads MemTotal from a meminfo file, in bytes (0 if it
// cannot).
func memTotal(path string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// reserveLocked counts an instance about to start (of a function of
// memoryMB) against the budget, evicting idle instances to make room,
// and returns the size it counts at. Needs w.mu.
func (w *Worker) reserveLocked(memoryMB int, now time.Time) int64 {
	size := sizeOf(0, memoryMB)
	w.evictLocked(size, now)
	w.instances++
	w.used += size
	return size
}

// unreserveLocked undoes reserveLocked for an instance that did not
// start. Needs w.mu.
func (w *Worker) unreserveLocked(size int64) {
	w.instances--
	w.used -= size
}

// uncountLocked takes i out of the worker's instances and their memory
// (once: later calls do nothing) and out of the live ones. Needs w.mu.
func (w *Worker) uncountLocked(i *instance) {
	if i.counted {
		i.counted = false
		w.instances--
		w.used -= i.size
	}
	delete(w.live, i)
}

// evictLocked closes idle instances, the least recently used first across
// all functions and sparing the provisioned ones, until need more bytes
// fit in the budget or no idle instance is left to close; it returns how
// many it closed. Needs w.mu.
func (w *Worker) evictLocked(need int64, now time.Time) int {
	n := 0
	for w.used+need > w.cfg.InstanceMemory {
		p, k := w.leastRecentlyUsedLocked(now)
		if p == nil {
			break
		}
		i := p.idle[k]
		p.idle = slices.Delete(p.idle, k, k+1)
		w.closeLocked(i)
		n++
	}
	return n
}

// fitsLocked reports whether need more bytes fit in the budget once every
// idle instance that may be evicted is. Needs w.mu.
func (w *Worker) fitsLocked(need int64, now time.Time) bool {
	free := w.cfg.InstanceMemory - w.used
	for _, p := range w.pools {
		keep := p.spared(now)
		for _, i := range p.idle {
			if !keep[i] {
				free += i.size
			}
		}
	}
	return need <= free
}

// leastRecentlyUsedLocked finds the idle instance used longest ago that
// is not spared: its pool and its index there (nil if none). Needs w.mu.
func (w *Worker) leastRecentlyUsedLocked(now time.Time) (*pool, int) {
	var best *pool
	bestK := 0
	for _, p := range w.pools {
		keep := p.spared(now)
		// A pool's idle instances are in the order of their last use.
		for k, i := range p.idle {
			if keep[i] {
				continue
			}
			if best == nil || i.lastUsed.Before(best.idle[bestK].lastUsed) {
				best, bestK = p, k
			}
			break
		}
	}
	return best, bestK
}

// measure counts inst at the memory its sandbox holds now, where the
// executor can tell; it takes no lock while it reads.
func (w *Worker) measure(inst *instance) {
	n, ok := inst.MemoryBytes()
	w.mu.Lock()
	defer w.mu.Unlock()
	if ok && inst.counted {
		size := sizeOf(n, inst.memoryMB)
		w.used += size - inst.size
		inst.size = size
	}
}

// measureAll measures every live instance again, then closes idle ones
// (least recently used first) while the worker is over its budget.
func (w *Worker) measureAll(now time.Time) {
	w.mu.Lock()
	all := make([]*instance, 0, len(w.live))
	for i := range w.live {
		all = append(all, i)
	}
	w.mu.Unlock()
	for _, i := range all {
		w.measure(i)
	}
	w.mu.Lock()
	w.evictLocked(0, now)
	w.mu.Unlock()
}
