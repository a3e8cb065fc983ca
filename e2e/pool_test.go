package e2e

import (
	"encoding/json"
	"maps"
	"os"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// poolProbe reports what an instance can see of earlier instances: /tmp,
// module state, environment, and its code directory.
const poolProbe = `
import os
seen = []
def handler(event, context):
    out = {
        "tmp": sorted(os.listdir("/tmp")),
        "leak_env": os.environ.get("LEAKED"),
        "task": sorted(os.listdir("/var/task")),
        "name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME"),
        "memory": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        "handler": os.environ.get("_HANDLER"),
        "mine": os.environ.get("MINE"),
        "cwd": os.getcwd(),
        "seen": list(seen),
    }
    seen.append(context.function_name)
    open("/tmp/left-by-" + context.function_name, "w").write("x")
    os.environ["LEAKED"] = context.function_name
    try:
        open("/var/task/new", "w")
        out["task_writable"] = True
    except OSError:
        out["task_writable"] = False
    return out
`

// TestPreStartedSandboxesServeOneFunctionEach runs functions on sandboxes
// started ahead of need (the default --prestart 2): each instance sees
// only its own code, environment and /tmp, never another's.
func TestPreStartedSandboxesServeOneFunctionEach(t *testing.T) {
	parallel(t)
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	data := t.TempDir()
	n := startDev(t, data, "--prestart", "2")
	type seen struct {
		Tmp          []string `json:"tmp"`
		LeakEnv      *string  `json:"leak_env"`
		Task         []string `json:"task"`
		Name         string   `json:"name"`
		Memory       string   `json:"memory"`
		Handler      string   `json:"handler"`
		Mine         string   `json:"mine"`
		Cwd          string   `json:"cwd"`
		Seen         []string `json:"seen"`
		TaskWritable bool     `json:"task_writable"`
	}
	for i, fn := range []string{"pool-a", "pool-b", "pool-c", "pool-d"} {
		extra := map[string]string{"extra_" + fn + ".py": "# only in " + fn}
		files := map[string]string{"main.py": poolProbe}
		for k, v := range extra {
			files[k] = v
		}
		cfg := map[string]any{"memory": 256 + 128*i, "env": map[string]string{"MINE": fn}}
		if status, e := n.deployJSON(fn, cfg, zipOf(t, files)); status != 201 {
			t.Fatalf("deploy %s: %d %+v", fn, status, e)
		}
		r := n.mustCLI(0, "invoke", fn)
		var s seen
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
			t.Fatalf("%s answered %q: %v", fn, r.stdout, err)
		}
		if len(s.Tmp) != 0 || s.LeakEnv != nil || len(s.Seen) != 0 {
			t.Errorf("%s saw another instance's state: tmp %v, env %v, module %v", fn, s.Tmp, s.LeakEnv, s.Seen)
		}
		if strings.Join(s.Task, ",") != "extra_"+fn+".py,main.py" || s.TaskWritable || s.Cwd != "/var/task" {
			t.Errorf("%s: /var/task %v writable=%v cwd %s", fn, s.Task, s.TaskWritable, s.Cwd)
		}
		if s.Name != fn || s.Mine != fn || s.Handler != "main.handler" || s.Memory != strings.TrimSpace(jsonNumber(256+128*i)) {
			t.Errorf("%s has the wrong environment: %+v", fn, s)
		}
	}
	// Shells are unmounted when the node stops.
	n.stop()
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), data) {
		t.Fatalf("mounts under the data directory remain after nimbus dev stopped:\n%s", b)
	}
}

func jsonNumber(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestProvisionedInstancesAreReadyAndStay checks provisioned concurrency:
// a function with provisioned: 1 has an instance started before its
// first invocation, which is therefore warm, and that instance outlives
// the idle timeout that stops an ordinary function's.
func TestProvisionedInstancesAreReadyAndStay(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--prestart", "0", "--idle-timeout", "1s")
	if status, e := n.deployJSON("ready", map[string]any{"provisioned": 1}, zipOf(t, map[string]string{"main.py": okHandler})); status != 201 {
		t.Fatalf("deploy: %d %+v", status, e)
	}
	if status, e := n.deployJSON("ordinary", map[string]any{}, zipOf(t, map[string]string{"main.py": okHandler})); status != 201 {
		t.Fatalf("deploy: %d %+v", status, e)
	}
	if status, e := n.deployJSON("too-many", map[string]any{"provisioned": 3, "reserved_concurrency": 2}, zipOf(t, map[string]string{"main.py": okHandler})); status != 400 || !strings.Contains(e.Error.Message, "provisioned") {
		t.Fatalf("provisioned beyond reserved concurrency: %d %+v", status, e)
	}
	warm := func() int {
		_, _, b := n.do("GET", "/v1/cluster", "", nil)
		var c client.Cluster
		json.Unmarshal(b, &c)
		total := 0
		for _, w := range c.Workers {
			total += w.WarmInstances
		}
		return total
	}
	waitFor(t, 60*time.Second, "the provisioned instance is ready", func() bool { return warm() == 1 })
	cold := func(fn string) bool {
		status, h, b := n.do("POST", "/v1/functions/"+fn+"/invoke", "", nil)
		if status != 200 {
			t.Fatalf("invoke %s: %d %s", fn, status, b)
		}
		return h.Get(client.HeaderColdStart) == "true"
	}
	if cold("ready") {
		t.Error("the first invocation of a provisioned function was a cold start")
	}
	if !cold("ordinary") {
		t.Error("the first invocation of an ordinary function was warm")
	}
	// Both idle now; after the idle timeout only the provisioned one is left.
	waitFor(t, 60*time.Second, "the ordinary instance retires", func() bool { return warm() == 1 })
	if cold("ready") {
		t.Error("the provisioned instance did not outlive the idle timeout")
	}
	if !cold("ordinary") {
		t.Error("the ordinary instance outlived the idle timeout")
	}
}

// poolPolluter leaves, when asked, every kind of state an instance can
// hold behind in its sandbox, and reports what of such state it finds:
// module globals, builtins and sys.modules, environment variables
// (os.environ and putenv), files in /tmp, open descriptors (a file, a
// pipe, a raw inheritable descriptor), the working directory.
const poolPolluter = `
import builtins, os, stat, sys
KEPT = []

def _fds():
    out = {}
    for fd in range(256):
        try:
            st = os.fstat(fd)
        except OSError:
            continue
        try:
            target = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            target = "?"
        if target.startswith("pipe:"):
            target = "pipe"  # inode numbers differ from instance to instance
        out[str(fd)] = "%s %s" % (stat.S_IFMT(st.st_mode), target)
    return out

def _child_env(name):
    # What a child process inherits (putenv does not show in os.environ).
    try:
        import subprocess
        return subprocess.run([sys.executable, "-I", "-S", "-c", "import os; print(os.getenv(%r, ''), end='')" % name],
                              capture_output=True, timeout=10).stdout.decode()
    except Exception as e:
        return None

def handler(event, context):
    me = context.function_name
    if event.get("pollute"):
        builtins.NIMBUS_LEAK = me
        sys.modules["nimbus_leak"] = sys
        KEPT.append(me)
        os.environ["NIMBUS_LEAK"] = me
        os.putenv("NIMBUS_LEAK_PUTENV", me)
        with open("/tmp/closed-by-" + me, "w") as f:
            f.write("secret of " + me)
        KEPT.append(open("/tmp/open-by-" + me, "w"))
        r, w = os.pipe()
        os.set_inheritable(r, True)
        os.set_inheritable(w, True)
        raw = os.open("/tmp/raw-by-" + me, os.O_CREAT | os.O_RDWR)
        os.set_inheritable(raw, True)
        KEPT.extend([r, w, raw])
        os.chdir("/tmp")
    return {
        "builtins": getattr(builtins, "NIMBUS_LEAK", None),
        "module": "nimbus_leak" in sys.modules,
        "globals": list(KEPT[:1]),
        "env": sorted(k for k in os.environ if "LEAK" in k),
        "putenv": _child_env("NIMBUS_LEAK_PUTENV"),
        "tmp": sorted(os.listdir("/tmp")),
        "fds": _fds(),
        "cwd": os.getcwd(),
    }
`

// poolView is what poolPolluter reports.
type poolView struct {
	Builtins *string           `json:"builtins"`
	Module   bool              `json:"module"`
	Globals  []string          `json:"globals"`
	Env      []string          `json:"env"`
	Putenv   *string           `json:"putenv"`
	Tmp      []string          `json:"tmp"`
	FDs      map[string]string `json:"fds"`
	Cwd      string            `json:"cwd"`
}

// TestPoolSandboxStateNeverReachesAnotherFunction is issue 7's isolation
// test for pre-started sandboxes: a function's instance fills its sandbox
// with state of every kind; the next function to take a sandbox from the
// same pool finds none of it. Each sandbox is shown to come from the pool
// (an idle shell before the invocation, a cold start) and to be a
// different one from the polluter's, which is still alive: shells are
// never reused, so nothing needs resetting.
func TestPoolSandboxStateNeverReachesAnotherFunction(t *testing.T) {
	parallel(t)
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	// A pool that does not grow with the deploys: the shells seen idle
	// before each invoke are all there are.
	n := startDev(t, t.TempDir(), "--prestart", "2", "--prestart-most", "2")
	// The handler starts a Python child; at 128 MB an instance has a
	// small share of a CPU, and the default 3 s timeout was once too
	// short on a busy machine.
	for _, fn := range []string{"pool-control", "pool-polluter", "pool-next"} {
		if status, e := n.deployJSON(fn, map[string]any{"timeout": "60s"}, zipOf(t, map[string]string{"main.py": poolPolluter})); status != 201 {
			t.Fatalf("deploy %s: %d %+v", fn, status, e)
		}
	}
	// fromPool invokes fn, which has no instance yet, and returns what it
	// saw and the sandbox that served it, checking that this sandbox was
	// an idle pre-started shell of the pool just before.
	fromPool := func(fn string, event map[string]any) (poolView, string) {
		t.Helper()
		var shells map[string][]int
		waitFor(t, 30*time.Second, "the pool holds two idle sandboxes", func() bool {
			shells = idleShellsOf(n)
			return len(shells) >= 2
		})
		before := sandboxesOf(n)
		status, h, b := apiCallH(t, n, "POST", "/v1/functions/"+fn+"/invoke", mustJSON(t, event))
		if status != 200 || h.Get(client.HeaderFunctionError) != "" || h.Get(client.HeaderColdStart) != "true" {
			t.Fatalf("%s: %d cold=%q %s", fn, status, h.Get(client.HeaderColdStart), b)
		}
		var v poolView
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s answered %s: %v", fn, b, err)
		}
		fresh := newSandboxes(before, sandboxesOf(n))
		if len(fresh) != 1 {
			t.Fatalf("%s: %d new instance sandboxes, want 1: %v", fn, len(fresh), fresh)
		}
		for id := range fresh {
			if _, ok := shells[id]; !ok {
				t.Fatalf("%s ran in sandbox %s, which was not one of the pool's idle shells %v", fn, id, shells)
			}
			return v, id
		}
		panic("unreachable")
	}

	control, controlBox := fromPool("pool-control", map[string]any{})
	if control.Builtins != nil || control.Module || len(control.Globals) != 0 || len(control.Env) != 0 || len(control.Tmp) != 0 || control.Cwd != "/var/task" {
		t.Fatalf("a fresh instance already holds state: %+v", control)
	}
	if len(control.FDs) == 0 {
		t.Fatal("the probe sees no open descriptors at all")
	}

	// The polluter's second invocation, on its own warm instance, sees all
	// it left: the probe detects every kind of state it then looks for.
	_, pollutedBox := fromPool("pool-polluter", map[string]any{"pollute": true})
	var self poolView
	observe(t, n, "pool-polluter", map[string]any{}, &self)
	if self.Builtins == nil || !self.Module || len(self.Globals) == 0 || len(self.Env) == 0 || len(self.Tmp) != 3 ||
		len(self.FDs) < len(control.FDs)+4 || self.Cwd != "/tmp" || self.Putenv == nil || *self.Putenv != "pool-polluter" {
		t.Fatalf("the probe does not see the polluter's own state: %+v (a fresh instance: %+v)", self, control)
	}

	t.Logf("fresh: %+v\npolluter, warm: %+v", control, self)
	next, nextBox := fromPool("pool-next", map[string]any{})
	if next.Builtins != nil || next.Module || len(next.Globals) != 0 || len(next.Env) != 0 || len(next.Tmp) != 0 ||
		next.Cwd != "/var/task" || next.Putenv == nil || *next.Putenv != "" {
		t.Errorf("state of pool-polluter reached pool-next: %+v", next)
	}
	if !maps.Equal(next.FDs, control.FDs) {
		t.Errorf("pool-next has other descriptors open than a fresh instance:\n%v\nfresh:\n%v", next.FDs, control.FDs)
	}
	if controlBox == pollutedBox || pollutedBox == nextBox || controlBox == nextBox {
		t.Fatalf("a sandbox served two functions: %s %s %s", controlBox, pollutedBox, nextBox)
	}
	if _, alive := sandboxesOf(n)[pollutedBox]; !alive {
		t.Fatalf("the polluter's sandbox %s is gone: it should still serve the polluter", pollutedBox)
	}
	var again poolView
	observe(t, n, "pool-polluter", map[string]any{}, &again)
	if again.Builtins == nil || again.Cwd != "/tmp" {
		t.Fatalf("the polluter lost its own warm state: %+v", again)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
