package worker

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"nimbus/internal/sandbox"
)

// A deploy announces a cold start: the pool stocks one more sandbox for
// each function deployed and not started yet. The stocked sandboxes
// wait at the lowest CPU priority; the one a function takes runs at the
// normal priority.
func TestDeploysGrowThePoolWhoseSandboxesWaitInTheBackground(t *testing.T) {
	e := sandboxOrSkip(t)
	w, blobs := testWorker(t, Config{Slots: 2, Executor: e, Prestart: 1})
	handler := "import os\ndef handler(e, c):\n    return os.nice(0)\n"
	var fns []string
	for _, name := range []string{"a", "b", "c"} {
		fn := deploy(t, blobs, name, 1, handler+"# "+name+"\n")
		fn.Runtime = w.cfg.Runtimes[0].Name
		w.Prefetch(fn)
		fns = append(fns, name)
	}
	waitFor(t, "the pool holds one sandbox plus one per function announced", func() bool { return w.prestarted.count() >= 1+len(fns) })
	w.prestarted.mu.Lock()
	for _, list := range w.prestarted.ready {
		for _, inst := range list {
			if nice, err := unix.Getpriority(unix.PRIO_PROCESS, inst.Pid()); err != nil || 20-nice != 19 {
				t.Errorf("a waiting sandbox runs at nice %d (%v), want 19", 20-nice, err)
			}
		}
	}
	w.prestarted.mu.Unlock()
	fn := deploy(t, blobs, "a", 1, handler+"# a\n")
	fn.Runtime = w.cfg.Runtimes[0].Name
	if got := strings.TrimSpace(string(invoke(t, w, fn).Payload)); got != "0" {
		t.Errorf("the function runs at nice %s, want 0", got)
	}
}

// sandboxOrSkip is the isolating executor, or skips the test where this
// host cannot build sandboxes.
func sandboxOrSkip(t *testing.T) *sandbox.IsolatedExecutor {
	t.Helper()
	e := sandbox.TestIsolatedExecutor(t)
	if e == nil {
		t.Skip("pre-started sandboxes need the isolating executor")
	}
	return e
}

// A pre-started sandbox that never answers the init frame (stopped here)
// holds its cold start for the start timeout, and the invocation then
// fails saying so: it does not try a fresh start with no time left.
func TestAPreStartedSandboxThatHangsFailsAsTheStartTimeout(t *testing.T) {
	e := sandboxOrSkip(t)
	w, blobs := testWorker(t, Config{Slots: 2, Executor: e, Prestart: 1, StartTimeout: 3 * time.Second})
	waitFor(t, "the pool holds a sandbox", func() bool { return w.prestarted.count() >= 1 })
	w.prestarted.mu.Lock()
	for _, list := range w.prestarted.ready {
		for _, inst := range list {
			if err := unix.Kill(inst.Pid(), unix.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.prestarted.mu.Unlock()
	fn := deploy(t, blobs, "hangs", 1, "def handler(e, c):\n    return 1\n")
	fn.Runtime = w.cfg.Runtimes[0].Name
	_, err := w.Invoke(context.Background(), Request{RequestID: "r", Function: fn, Payload: []byte("{}")})
	if err == nil || !strings.Contains(err.Error(), "did not finish within the start timeout of 3s in a pre-started sandbox") {
		t.Fatalf("invoke through a stopped pre-started sandbox: %v, want the start timeout named", err)
	}
	// The next cold start, from a sandbox the pool starts afresh, works.
	waitFor(t, "the pool holds a sandbox again", func() bool { return w.prestarted.count() >= 1 })
	if got := strings.TrimSpace(string(invoke(t, w, fn).Payload)); got != "1" {
		t.Errorf("the function answered %q after the stopped sandbox, want 1", got)
	}
}
