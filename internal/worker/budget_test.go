package worker

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"nimbus/internal/model"
	"nimbus/internal/sandbox"
)

// warm reports which of fns have an idle instance of their revision.
func warm(w *Worker, fns ...model.Function) map[string]bool {
	out := map[string]bool{}
	for _, fn := range fns {
		out[fn.Name] = w.HasWarm(fn.QualifiedName(), fn.Revision)
	}
	return out
}

func wantWarm(t *testing.T, w *Worker, want map[string]bool, fns ...model.Function) {
	t.Helper()
	got := warm(w, fns...)
	for name, v := range want {
		if got[name] != v {
			t.Errorf("warm instances %v; want %v", got, want)
			return
		}
	}
}

// Under the process executor no instance can be measured: each counts
// unmeasuredSize, so a budget of n of them keeps n.
func TestTheBudgetEvictsTheLeastRecentlyUsedAcrossFunctions(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 1, InstanceMemory: 3 * unmeasuredSize})
	a, b, c, d := deploy(t, blobs, "a", 1, counter), deploy(t, blobs, "b", 1, counter),
		deploy(t, blobs, "c", 1, counter), deploy(t, blobs, "d", 1, counter)
	for _, fn := range []model.Function{a, b, c} {
		invoke(t, w, fn)
	}
	if res := invoke(t, w, a); res.Cold {
		t.Fatal("three instances did not fit a budget of three")
	}
	invoke(t, w, d) // b was used longest ago
	wantWarm(t, w, map[string]bool{"a": true, "b": false, "c": true, "d": true}, a, b, c, d)
	invoke(t, w, c)
	invoke(t, w, b) // now a was
	wantWarm(t, w, map[string]bool{"a": false, "b": true, "c": true, "d": true}, a, b, c, d)
	if st := w.Status(); st.Instances != 3 || st.InstanceMemoryUsed != 3*unmeasuredSize || st.InstanceMemory != 3*unmeasuredSize {
		t.Fatalf("status %+v; want 3 instances using the whole budget", st)
	}
}

// Provisioned instances are neither evicted for others nor started past
// the budget; the other idle instances make room for them.
func TestTheBudgetSparesProvisionedInstances(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 1, InstanceMemory: 2 * unmeasuredSize})
	p, q, r := deploy(t, blobs, "p", 1, counter), deploy(t, blobs, "q", 1, counter), deploy(t, blobs, "r", 1, counter)
	a, b := deploy(t, blobs, "a", 1, counter), deploy(t, blobs, "b", 1, counter)
	w.Provision(p, 1)
	waitFor(t, "p's provisioned instance is ready", func() bool { return w.HasWarm(p.QualifiedName(), 1) })
	invoke(t, w, a)
	invoke(t, w, b) // p was used longest ago, but is provisioned
	wantWarm(t, w, map[string]bool{"p": true, "a": false, "b": true}, p, a, b)

	w.Provision(q, 1) // b makes room
	waitFor(t, "q's provisioned instance is ready", func() bool { return w.HasWarm(q.QualifiedName(), 1) })
	wantWarm(t, w, map[string]bool{"p": true, "q": true, "b": false}, p, q, b)
	w.Provision(r, 1) // no room: nothing starts
	if st := w.Status(); st.Instances != 2 || st.InstanceMemoryUsed != 2*unmeasuredSize {
		t.Fatalf("status %+v; want the two provisioned instances only", st)
	}
	if res := invoke(t, w, p); res.Cold {
		t.Fatal("p's provisioned instance was evicted")
	}
}

// Slots bound what runs, the budget only what is kept: an invocation
// starts an instance past the budget when the busy ones fill it, and idle
// ones go until the worker is within it again.
func TestTheBudgetBoundsWhatIsKeptNotWhatRuns(t *testing.T) {
	w, blobs := testWorker(t, Config{Slots: 2, InstanceMemory: unmeasuredSize})
	hold := deploy(t, blobs, "hold", 1, "import os, time\ndef handler(e, c):\n    while not os.path.exists(e['path']):\n        time.sleep(0.01)\n    return 'released'\n")
	other := deploy(t, blobs, "other", 1, counter)
	path := filepath.Join(t.TempDir(), "release")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res, err := w.Invoke(context.Background(), Request{RequestID: "hold", Function: hold, Payload: []byte(`{"path": "` + path + `"}`)})
		if err != nil || string(res.Payload) != `"released"` {
			t.Errorf("the held invocation: %s %v", res.Payload, err)
		}
	}()
	waitFor(t, "the held invocation runs", func() bool { return w.Status().InUse == 1 })
	if res := invoke(t, w, other); string(res.Payload) != "1" {
		t.Fatalf("other answered %s", res.Payload)
	}
	wantWarm(t, w, map[string]bool{"other": false}, other)
	if st := w.Status(); st.Instances != 1 || st.InstanceMemoryUsed != unmeasuredSize {
		t.Fatalf("status %+v; want only the busy instance", st)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	wantWarm(t, w, map[string]bool{"hold": true}, hold)
}

// In a sandbox an instance counts at what its cgroup holds: an idle one,
// a few MB, less than the estimate for instances that cannot be measured.
func TestSandboxedInstancesCountAtTheirFootprint(t *testing.T) {
	e := sandbox.TestIsolatedExecutor(t)
	if e == nil {
		t.Skip("no sandbox here")
	}
	w, blobs := testWorker(t, Config{Slots: 1, Executor: e})
	fn := deploy(t, blobs, "count", 1, counter)
	invoke(t, w, fn)
	if st := w.Status(); st.Instances != 1 || st.InstanceMemoryUsed <= 0 || st.InstanceMemoryUsed >= unmeasuredSize {
		t.Fatalf("status %+v; want one instance counted at its measure, under %d bytes", st, unmeasuredSize)
	}
}
