package python

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"nimbus/internal/sandbox"
)

// memoryHog allocates 48 MB it touches and writes, then reads back, a
// 4 MB file in /tmp (page cache, or the sandbox's tmpfs). Little CPU: an
// instance of 128 MB gets a small share of one (ran with 16 MB of random
// bytes, a call took 27 s here on a busy day).
const memoryHog = `
import os, tempfile
def handler(event, context):
    held = bytearray(48 << 20)
    for i in range(0, len(held), 4096):
        held[i] = 1
    path = os.path.join(tempfile.gettempdir(), "nimbus-hog-%d" % os.getpid())
    with open(path, "wb") as f:
        f.write(b"x" * (4 << 20))
    with open(path, "rb") as f:
        n = len(f.read())
    os.unlink(path)
    return n
`

// The most memory an invocation reports is its instance's own: at least
// what its handler held, and never more than its memory size, however
// much the process that started the instance once held. (The kernel
// carries ru_maxrss across execve, and the worker starts sandboxes with
// vfork: a worker that once held 270 MB made a 128 MB function report
// max_memory_mb 271.)
func TestMaxMemoryIsTheInstancesOwn(t *testing.T) {
	// Raise this process's peak resident set far over the function's
	// memory size, as a busy worker's is, then give it back.
	ballast := make([]byte, 384<<20)
	for i := 0; i < len(ballast); i += os.Getpagesize() {
		ballast[i] = 1
	}
	runtime.KeepAlive(ballast)
	ballast = nil
	debug.FreeOSMemory()

	executors := map[string]sandbox.Executor{"as a plain process": sandbox.NewProcessExecutor()}
	if e := sandbox.TestIsolatedExecutor(t); e != nil {
		executors["in a sandbox"] = e
	}
	for name, e := range executors {
		t.Run(name, func(t *testing.T) {
			inst := startTest(t, memoryHog, func(c *InstanceConfig) { c.MemoryMB, c.Executor = 128, e })
			for _, id := range []string{"first", "second"} {
				resp := invoke(t, inst, id, "{}", time.Minute)
				if resp.ErrorType != "" {
					t.Fatalf("%s invocation: %s %s", id, resp.ErrorType, resp.Payload)
				}
				if resp.MaxMemoryMB < 48 || resp.MaxMemoryMB > 128 {
					t.Errorf("%s invocation reports max memory %d MB; want at least the 48 MB the handler held and at most the 128 MB limit", id, resp.MaxMemoryMB)
				}
			}
		})
	}
}

// A sandboxed instance reports the memory its cgroup holds: a few MB
// idle, more once its handler keeps 32 MB, never over its limit. A plain
// process cannot tell.
func TestASandboxedInstanceReportsItsMemory(t *testing.T) {
	const keeper = "kept = []\ndef handler(e, c):\n    kept.append(b'x' * (32 << 20))\n    return len(kept)\n"
	if _, ok := startTest(t, keeper).MemoryBytes(); ok {
		t.Error("a plain process reports its memory")
	}
	e := sandbox.TestIsolatedExecutor(t)
	if e == nil {
		t.Skip("no sandbox here")
	}
	inst := startTest(t, keeper, func(c *InstanceConfig) { c.MemoryMB, c.Executor = 128, e })
	idle, ok := inst.MemoryBytes()
	if !ok || idle <= 0 || idle > 64<<20 {
		t.Fatalf("an idle sandbox reports %d bytes (%v); want a few MB", idle, ok)
	}
	if resp := invoke(t, inst, "r", "{}", 10*time.Second); resp.ErrorType != "" {
		t.Fatalf("%s %s", resp.ErrorType, resp.Payload)
	}
	held, ok := inst.MemoryBytes()
	if !ok || held < idle+30<<20 || held > 128<<20 {
		t.Fatalf("a sandbox that keeps 32 MB reports %d bytes (idle: %d); want about 32 MB more, within its 128 MB", held, idle)
	}
}

// The peak is read again whenever the instance has grown: a handler that
// keeps 16 MB more at each invocation reports a peak that grows with it
// (the bootstrap skips the read, which costs tens of microseconds, only
// while the process has taken no page fault since the last).
func TestMaxMemoryFollowsAGrowingInstance(t *testing.T) {
	const grower = "kept = []\ndef handler(e, c):\n    b = bytearray(16 << 20)\n    for i in range(0, len(b), 4096):\n        b[i] = 1\n    kept.append(b)\n    return len(kept)\n"
	inst := startTest(t, grower, func(c *InstanceConfig) { c.MemoryMB = 256 })
	last := 0
	for n := 1; n <= 4; n++ {
		resp := invoke(t, inst, fmt.Sprintf("r%d", n), "{}", 20*time.Second)
		if resp.ErrorType != "" {
			t.Fatalf("invocation %d: %s %s", n, resp.ErrorType, resp.Payload)
		}
		if resp.MaxMemoryMB < 16*n || resp.MaxMemoryMB <= last {
			t.Fatalf("invocation %d, holding %d MB: max memory %d MB (the last said %d); want at least %d and more than the last", n, 16*n, resp.MaxMemoryMB, last, 16*n)
		}
		last = resp.MaxMemoryMB
	}
}
