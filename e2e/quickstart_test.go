package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"nimbus/pkg/client"
)

// TestQuickstart follows the README: init, deploy, invoke, logs, records;
// then a restart on the same data keeps everything.
func TestQuickstart(t *testing.T) {
	parallel(t)
	data := t.TempDir()
	n := startDev(t, data)

	info, err := os.Stat(filepath.Join(data, "admin.token"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin.token: want mode 0600, got %v (%v)", info.Mode(), err)
	}

	work := t.TempDir()
	fnDir := filepath.Join(work, "greeter")
	if r := n.cliIn(work, "", "init", "greeter"); r.code != 0 {
		t.Fatalf("init: %+v", r)
	}
	for _, f := range []string{"main.py", "nimbus.yaml"} {
		if _, err := os.Stat(filepath.Join(fnDir, f)); err != nil {
			t.Fatalf("init did not write %s: %v", f, err)
		}
	}
	r := n.mustCLI(0, "deploy", fnDir)
	if !strings.Contains(r.stdout, "greeter") || !strings.Contains(r.stdout, "revision") {
		t.Fatalf("deploy output lacks the name or revision:\n%s", r.stdout)
	}
	r = n.mustCLI(0, "invoke", "greeter", "--data", `{"name":"Ada"}`)
	if !strings.Contains(r.stdout, "Ada") {
		t.Fatalf("invoke result does not greet Ada: %q", r.stdout)
	}

	// The example from the README, deployed from the repository.
	n.mustCLI(0, "deploy", "../examples/hello")
	r = n.mustCLI(0, "invoke", "hello", "--data", `{"name":"you"}`, "--tail")
	var out map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out["message"] != "Hello, you!" {
		t.Fatalf("hello answered %q (%v)", r.stdout, err)
	}
	if !strings.Contains(r.stderr, "greeting you from hello") || !strings.Contains(r.stderr, "REPORT RequestId:") {
		t.Fatalf("--tail did not print the log to stderr:\n%s", r.stderr)
	}
	// The event may come on stdin too.
	if r := n.cli(`{"name":"stdin"}`, "invoke", "hello"); r.code != 0 || !strings.Contains(r.stdout, "Hello, stdin!") {
		t.Fatalf("invoke from stdin: %+v", r)
	}

	// Logs and records arrive in the next batch: poll for them.
	waitFor(t, patience, "the logs show the greeting", func() bool {
		r := n.cli("", "logs", "hello")
		return r.code == 0 && strings.Contains(r.stdout, "greeting you from hello") && strings.Contains(r.stdout, "START RequestId:")
	})
	var recs []client.Invocation
	waitFor(t, patience, "both hello invocations are recorded", func() bool {
		r := n.cli("", "invocations", "hello", "-o", "json")
		recs = nil
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &recs) == nil && len(recs) == 2
	})
	newest, oldest := recs[0], recs[1]
	if !oldest.ColdStart || newest.ColdStart {
		t.Errorf("want the first invocation cold and the second warm, got %v then %v", oldest.ColdStart, newest.ColdStart)
	}
	if oldest.Status != "success" || oldest.Revision != 1 || oldest.BilledMS < 1 || oldest.MaxMemoryMB <= 0 || oldest.Trigger != "sync" {
		t.Errorf("record lacks what the spec lists: %+v", oldest)
	}
	if !strings.Contains(oldest.LogTail, "REPORT RequestId: "+oldest.ID) {
		t.Errorf("record's log tail lacks its REPORT line: %q", oldest.LogTail)
	}
	r = n.mustCLI(0, "invocations")
	if !strings.Contains(r.stdout, newest.ID) {
		t.Errorf("invocations table lacks %s:\n%s", newest.ID, r.stdout)
	}
	r = n.mustCLI(0, "logs", "hello", "--request", oldest.ID)
	if !strings.Contains(r.stdout, oldest.ID) || strings.Contains(r.stdout, newest.ID) {
		t.Errorf("logs --request shows other invocations:\n%s", r.stdout)
	}

	r = n.mustCLI(0, "ls")
	if !strings.Contains(r.stdout, "hello") || !strings.Contains(r.stdout, "greeter") {
		t.Fatalf("ls:\n%s", r.stdout)
	}
	var cl client.Cluster
	r = n.mustCLI(0, "cluster", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &cl); err != nil || len(cl.Servers) != 1 || cl.Servers[0].Role != "leader" || len(cl.Workers) != 1 {
		t.Fatalf("cluster: %s (%v)", r.stdout, err)
	}

	// Restart on the same data: functions, records and logs survive.
	n.stop()
	if leftovers := instancesOf(t, data); leftovers != "" {
		t.Fatalf("instances still running after shutdown:\n%s", leftovers)
	}
	n = startDev(t, data)
	r = n.mustCLI(0, "get", "hello", "-o", "json")
	var fn client.Function
	if err := json.Unmarshal([]byte(r.stdout), &fn); err != nil || fn.Revision != 1 || fn.Env["GREETING"] != "Hello" {
		t.Fatalf("after restart, hello is %s (%v)", r.stdout, err)
	}
	r = n.mustCLI(0, "invocations", "hello", "-o", "json")
	recs = nil
	if err := json.Unmarshal([]byte(r.stdout), &recs); err != nil || len(recs) != 2 {
		t.Fatalf("after restart, records: %s", r.stdout)
	}
	r = n.mustCLI(0, "logs", "hello")
	if !strings.Contains(r.stdout, "greeting you from hello") {
		t.Fatalf("after restart, logs:\n%s", r.stdout)
	}
	n.mustCLI(0, "invoke", "hello")
}

// instancesOf lists processes still running the bootstrap of this data
// directory's worker.
func instancesOf(t *testing.T, data string) string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-af", filepath.Join(data, "worker")).Output()
	return strings.TrimSpace(string(out))
}

// TestOrdersExample runs the standard-library example with its event file.
func TestOrdersExample(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustCLI(0, "deploy", "../examples/orders")
	r := n.mustCLI(0, "invoke", "orders", "--data", "@../examples/orders/event.json")
	var out struct {
		Customers    map[string]string `json:"customers"`
		LargestOrder struct {
			ID    string `json:"id"`
			Total string `json:"total"`
		} `json:"largest_order"`
		RemainingMS int `json:"remaining_ms"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("orders answered %q: %v", r.stdout, err)
	}
	if out.Customers["ada"] != "19.25" || out.Customers["grace"] != "6.30" || out.LargestOrder.ID != "o3" {
		t.Fatalf("wrong totals: %+v", out)
	}
	if out.RemainingMS <= 0 || out.RemainingMS > 10000 {
		t.Fatalf("remaining time %d ms is not within the 10s timeout", out.RemainingMS)
	}
	// A bad event is the function's own error: exit 1, error JSON on stdout.
	r = n.mustCLI(1, "invoke", "orders", "--data", `{"orders": 3}`)
	var fe struct{ ErrorType, ErrorMessage string }
	if err := json.Unmarshal([]byte(r.stdout), &fe); err != nil || fe.ErrorType != "ValueError" || !strings.Contains(fe.ErrorMessage, "must be a list") {
		t.Fatalf("function error: %q (%v)", r.stdout, err)
	}
}
