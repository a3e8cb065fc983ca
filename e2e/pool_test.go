package e2e

import (
	"encoding/json"
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
