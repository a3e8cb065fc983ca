package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// The sandbox tests deploy hostile Python handlers to a real `nimbus dev`
// and check, as a user would, what the handler could observe and what
// became of the platform. Handlers report what they saw as JSON (errno
// names, counts, listings). This file holds the shared helpers and the
// resource bombs; sandbox_host_test.go checks what the host hides and
// sandbox_hostile_test.go attacks on the platform itself.

// sandboxNode starts a dev node that runs functions in the sandbox, with
// a reference function "bystander" deployed. It skips when not root.
func sandboxNode(t *testing.T, extra ...string) *devNode {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root (namespaces, cgroups, mounts)")
	}
	n := startDev(t, t.TempDir(), extra...)
	var cl client.Cluster
	r := n.mustCLI(0, "cluster", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &cl); err != nil || len(cl.Workers) != 1 || !strings.Contains(cl.Workers[0].Executor, "sandbox") {
		t.Fatalf("the node does not run functions in the sandbox: %s (%v)", r.stdout, err)
	}
	deployPy(t, n, "bystander", nil, bystanderHandler)
	return n
}

// bystanderHandler counts its invocations in module state, so a caller
// can tell whether the same warm instance answered.
const bystanderHandler = `
calls = 0
def handler(event, context):
    global calls
    calls += 1
    return {'ok': True, 'calls': calls}
`

// pyPrelude is prepended to every hostile handler.
const pyPrelude = `import errno, json, os, sys

def errname(e):
    return errno.errorcode.get(e.errno, str(e.errno))
`

// deployPy deploys src as main.py of function name.
func deployPy(t *testing.T, n *devNode, name string, cfg map[string]any, src string) {
	t.Helper()
	if cfg == nil {
		cfg = map[string]any{}
	}
	code := zipOf(t, map[string]string{"main.py": pyPrelude + src})
	body, _ := json.Marshal(map[string]any{"config": cfg, "code_zip_base64": code})
	status, b := apiCall(t, n, "PUT", "/v1/functions/"+name, body)
	if status != 200 && status != 201 {
		t.Fatalf("deploying %s: %d %s", name, status, b)
	}
}

var apiClient = &http.Client{Timeout: 90 * time.Second}

// apiCall sends an authenticated JSON request; unlike n.do it reports
// failures on t, so subtests may use it.
func apiCall(t *testing.T, n *devNode, method, path string, body []byte) (int, []byte) {
	t.Helper()
	status, _, b := apiCallH(t, n, method, path, body)
	return status, b
}

func apiCallH(t *testing.T, n *devNode, method, path string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, n.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// invocation is what a synchronous invoke answered.
type invocation struct {
	id        string
	errorType string // "" on success
	body      []byte // the result, or the error JSON
}

// invoke invokes fn with event and fails the test unless the platform
// answered 200 (a function error is still a 200).
func invoke(t *testing.T, n *devNode, fn string, event any) invocation {
	t.Helper()
	inv, err := tryInvoke(n, fn, event)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// tryInvoke is invoke for goroutines other than the test's.
func tryInvoke(n *devNode, fn string, event any) (invocation, error) {
	if event == nil {
		event = map[string]any{}
	}
	payload, _ := json.Marshal(event)
	req, _ := http.NewRequest("POST", n.url+"/v1/functions/"+fn+"/invoke", bytes.NewReader(payload))
	req.Header.Set("Authorization", "Bearer "+n.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := apiClient.Do(req)
	if err != nil {
		return invocation{}, fmt.Errorf("invoking %s: %w", fn, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return invocation{}, fmt.Errorf("invoking %s: %d %s", fn, resp.StatusCode, b)
	}
	inv := invocation{id: resp.Header.Get(client.HeaderRequestID), body: b}
	if resp.Header.Get(client.HeaderFunctionError) != "" {
		var fe struct {
			ErrorType string `json:"errorType"`
		}
		if err := json.Unmarshal(b, &fe); err != nil || fe.ErrorType == "" {
			return inv, fmt.Errorf("invoking %s: a function error without an errorType: %.300s", fn, b)
		}
		inv.errorType = fe.ErrorType
	}
	return inv, nil
}

// observe invokes fn, requires success and decodes the result into out.
func observe(t *testing.T, n *devNode, fn string, event any, out any) {
	t.Helper()
	inv := invoke(t, n, fn, event)
	if inv.errorType != "" {
		t.Fatalf("%s failed with %s: %.2000s", fn, inv.errorType, inv.body)
	}
	if err := json.Unmarshal(inv.body, out); err != nil {
		t.Fatalf("%s answered %.2000s: %v", fn, inv.body, err)
	}
}

// mustFailWith invokes fn and requires the given errorType.
func mustFailWith(t *testing.T, n *devNode, fn string, event any, errorType string) invocation {
	t.Helper()
	inv := invoke(t, n, fn, event)
	if inv.errorType != errorType {
		t.Fatalf("%s: got errorType %q, want %s; body: %.500s", fn, inv.errorType, errorType, inv.body)
	}
	return inv
}

// record polls until the invocation's record is stored and returns it.
func record(t *testing.T, n *devNode, id string) client.Invocation {
	t.Helper()
	var rec client.Invocation
	waitFor(t, patience, "invocation "+id+" is recorded", func() bool {
		status, b := apiCall(t, n, "GET", "/v1/invocations/"+id, nil)
		return status == 200 && json.Unmarshal(b, &rec) == nil
	})
	return rec
}

// platformAnswers checks that the node still serves: the bystander
// function answers, and `nimbus cluster` shows a healthy worker.
func platformAnswers(t *testing.T, n *devNode) {
	t.Helper()
	select {
	case <-n.done:
		t.Fatalf("nimbus dev exited:\n%s", n.out.String())
	default:
	}
	var res struct{ OK bool }
	observe(t, n, "bystander", nil, &res)
	if !res.OK {
		t.Fatalf("the bystander answered without ok")
	}
	r := n.cli("", "cluster", "-o", "json")
	var cl client.Cluster
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &cl) != nil || len(cl.Workers) != 1 || !cl.Workers[0].Healthy {
		t.Fatalf("nimbus cluster: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// sandboxesOf maps the cgroup name of each live instance sandbox of the node (the
// executor names them i<worker pid>-<n>, somewhere below a nimbus/
// cgroup) to the host pids in it. The pool's pre-started sandboxes that
// have no function yet are left out, also while they are being built: a
// background refill makes those at any moment.
func sandboxesOf(n *devNode) map[string][]int {
	out := allSandboxesOf(n)
	for id := range out {
		if n.idleShell(id) {
			delete(out, id)
		}
	}
	return out
}

// idleShellsOf maps the pre-started sandboxes of the node that still wait
// for a function (ready or still being built) to their host pids.
func idleShellsOf(n *devNode) map[string][]int {
	out := allSandboxesOf(n)
	for id := range out {
		if !n.idleShell(id) {
			delete(out, id)
		}
	}
	return out
}

// allSandboxesOf is sandboxesOf with the pool's idle sandboxes.
func allSandboxesOf(n *devNode) map[string][]int {
	// The sandboxes are named after the process running the worker:
	// nimbus dev itself, or the child it re-executes in a mount namespace
	// of its own.
	return sandboxesOfWorkers(append([]int{n.cmd.Process.Pid}, childrenOf(n.cmd.Process.Pid)...))
}

// sandboxesOfWorkers maps the cgroup name of each sandbox that one of the
// worker processes workers made (named i<worker pid>-<n>) to the host pids
// in it, whether or not those workers still run.
func sandboxesOfWorkers(workers []int) map[string][]int {
	var prefixes []string
	for _, w := range workers {
		prefixes = append(prefixes, "i"+strconv.Itoa(w)+"-")
	}
	hasPrefix := func(id string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(id, p) {
				return true
			}
		}
		return false
	}
	out := map[string][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			// hierarchy-id:controllers:path
			f := strings.SplitN(line, ":", 3)
			if len(f) != 3 || !strings.Contains(f[2], "/nimbus/") {
				continue
			}
			if id := path.Base(f[2]); hasPrefix(id) {
				out[id] = append(out[id], pid)
				break
			}
		}
	}
	return out
}

// idleShell reports whether sandbox id is a pre-started one that has not
// been given a function. It asks the worker's side, which is the same
// whether the sandbox is ready, still being built or long running:
//
//   - a pre-started sandbox has a shell, the host side of its /var/task,
//     at <data>/worker/sandbox/shells/<id>. The executor makes the shell
//     before the sandbox's cgroup and removes it only after the cgroup,
//     so a sandbox whose processes are visible at all has it; a sandbox
//     started with its code (no pool) never has one.
//   - giving the sandbox its function binds the code onto the shell, in
//     the worker's mount namespace: a second mount at the shell's path
//     in the mountinfo of the worker, whose pid names the sandbox
//     (i<worker pid>-<n>).
func (n *devNode) idleShell(id string) bool {
	shell := filepath.Join(n.data, "worker", "sandbox", "shells", id)
	if _, err := os.Stat(shell); err != nil {
		return false // no shell: started with its code
	}
	worker, _, ok := strings.Cut(strings.TrimPrefix(id, "i"), "-")
	if !ok {
		return false
	}
	b, err := os.ReadFile("/proc/" + worker + "/mountinfo")
	if err != nil {
		return false // the worker is gone, and its sandboxes with it
	}
	return mountsAt(string(b), shell) < 2
}

// mountsAt counts the mounts stacked at dir in a mountinfo table (field
// 5 is the mount point, with space, tab, newline and backslash escaped
// in octal).
func mountsAt(mountinfo, dir string) int {
	esc := strings.NewReplacer("\\", "\\134", " ", "\\040", "\t", "\\011", "\n", "\\012").Replace(dir)
	count := 0
	for _, line := range strings.Split(mountinfo, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[4] == esc {
			count++
		}
	}
	return count
}

// workerPid is the process that runs the node's worker: the child that
// nimbus dev re-executes in a mount namespace of its own, or nimbus dev
// itself when it did not.
func (n *devNode) workerPid() int {
	if kids := childrenOf(n.cmd.Process.Pid); len(kids) == 1 {
		return kids[0]
	}
	return n.cmd.Process.Pid
}

// childrenOf lists a process's children, whichever of its threads
// started them (/proc/PID/task/*/children).
func childrenOf(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(c); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// newSandboxes returns the sandboxes of now that are not in before. Both
// come from sandboxesOf, which leaves the pool's unassigned sandboxes out.
func newSandboxes(before, now map[string][]int) map[string][]int {
	out := map[string][]int{}
	for id, pids := range now {
		if _, ok := before[id]; !ok {
			out[id] = pids
		}
	}
	return out
}

// procStatusKB reads a "kB" field (VmRSS, VmHWM) of /proc/<pid>/status.
func procStatusKB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			kb, _ := strconv.Atoi(f[1])
			return kb
		}
	}
	t.Fatalf("/proc/%d/status has no %s", pid, field)
	return 0
}

// filesNamed lists the files under root whose name contains marker.
func filesNamed(root, marker string) []string {
	var found []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), marker) {
			found = append(found, p)
		}
		return nil
	})
	return found
}

// TestSandboxContainsResourceBombs throws processes, threads, memory,
// CPU, time, output and disk at the limits and checks that each is
// contained and that the platform keeps answering.
func TestSandboxContainsResourceBombs(t *testing.T) {
	n := sandboxNode(t)
	n1 := n.workerPid()

	t.Run("a fork loop stops below pids max", func(t *testing.T) {
		deployPy(t, n, "forks", map[string]any{"timeout": "30s"}, `
def handler(event, context):
    r, w = os.pipe()
    kids, err = [], None
    while len(kids) < 1000:
        try:
            pid = os.fork()
        except OSError as e:
            err = errname(e)
            break
        if pid == 0:
            os.close(w)
            os.read(r, 1)
            os._exit(0)
        kids.append(pid)
    os.close(w)
    for pid in kids:
        os.waitpid(pid, 0)
    return {'started': len(kids), 'error': err}
`)
		var res struct {
			Started int
			Error   string
		}
		observe(t, n, "forks", nil, &res)
		if res.Started >= 64 || res.Error != "EAGAIN" {
			t.Fatalf("started %d children, stopped by %q; want fewer than 64, stopped by EAGAIN", res.Started, res.Error)
		}
		platformAnswers(t, n)
	})

	t.Run("a true fork bomb ends in a sandbox error and leaves nothing running", func(t *testing.T) {
		deployPy(t, n, "forkbomb", map[string]any{"timeout": "2s"}, `
def handler(event, context):
    while True:
        try:
            os.fork()
        except OSError:
            pass
`)
		before := sandboxesOf(n)
		inv := invoke(t, n, "forkbomb", nil)
		if !strings.HasPrefix(inv.errorType, "Sandbox.") {
			t.Fatalf("got errorType %q, want a Sandbox.* error; body %.300s", inv.errorType, inv.body)
		}
		t.Logf("the fork bomb ended with %s", inv.errorType)
		waitFor(t, patience, "the fork bomb's sandbox is gone", func() bool {
			return len(newSandboxes(before, sandboxesOf(n))) == 0
		})
		platformAnswers(t, n)
	})

	t.Run("a thread loop stops below pids max", func(t *testing.T) {
		deployPy(t, n, "threads", map[string]any{"timeout": "30s"}, `
import threading
def handler(event, context):
    stop = threading.Event()
    threads, err = [], None
    while len(threads) < 1000:
        th = threading.Thread(target=stop.wait)
        try:
            th.start()
        except RuntimeError as e:
            err = str(e)
            break
        threads.append(th)
    stop.set()
    for th in threads:
        th.join()
    return {'started': len(threads), 'error': err}
`)
		var res struct {
			Started int
			Error   string
		}
		observe(t, n, "threads", nil, &res)
		if res.Started >= 64 || res.Error == "" {
			t.Fatalf("started %d threads (error %q); want fewer than 64 and an error", res.Started, res.Error)
		}
		platformAnswers(t, n)
	})

	t.Run("a memory bomb is killed as Sandbox.OutOfMemory", func(t *testing.T) {
		deployPy(t, n, "hog", map[string]any{"memory": 128, "timeout": "30s"}, `
def handler(event, context):
    b = []
    while True:
        b.append(bytearray(10 << 20))
`)
		inv := mustFailWith(t, n, "hog", nil, "Sandbox.OutOfMemory")
		if rec := record(t, n, inv.id); rec.Status != client.StatusFailed || rec.ErrorType != "Sandbox.OutOfMemory" {
			t.Fatalf("record: status %q errorType %q", rec.Status, rec.ErrorType)
		}
		platformAnswers(t, n)
	})

	t.Run("memory limits are the function's, in a pre-started sandbox too", func(t *testing.T) {
		// Pre-started sandboxes wait with the default 128 MB; one given a
		// function of 256 MB must get its limit raised, and one of 128 MB
		// keeps the default (the memory bomb above).
		deployPy(t, n, "big", map[string]any{"memory": 256, "timeout": "30s"}, `
def handler(event, context):
    b = bytearray(event["mb"] << 20)
    for i in range(0, len(b), 4096):
        b[i] = 1
    return [len(b) >> 20, context.memory_limit_in_mb]
`)
		if inv := invoke(t, n, "big", map[string]any{"mb": 180}); inv.errorType != "" || string(inv.body) != "[180, 256]" {
			t.Fatalf("a 256 MB function touching 180 MB: %s %.300s", inv.errorType, inv.body)
		}
		mustFailWith(t, n, "big", map[string]any{"mb": 300}, "Sandbox.OutOfMemory")
		platformAnswers(t, n)
	})

	for _, c := range []struct{ name, body string }{
		{"a busy loop", "    while True:\n        pass\n"},
		{"an endless sleep", "    time.sleep(1e9)\n"},
	} {
		t.Run(c.name+" times out, is recorded as failed, and leaves nothing running", func(t *testing.T) {
			fn := "stuck-" + strings.ReplaceAll(strings.TrimPrefix(strings.TrimPrefix(c.name, "a "), "an "), " ", "-")
			// The handler leaves a child behind, which must go too.
			deployPy(t, n, fn, map[string]any{"timeout": "1s"}, "import time\ndef handler(event, context):\n"+
				"    if os.fork() == 0:\n        time.sleep(600)\n        os._exit(0)\n"+c.body)
			before := sandboxesOf(n)
			inv := mustFailWith(t, n, fn, nil, "Sandbox.Timeout")
			rec := record(t, n, inv.id)
			if rec.Status != client.StatusFailed || rec.ErrorType != "Sandbox.Timeout" || rec.DurationMS < 1000 {
				t.Fatalf("record: status %q errorType %q duration %.0f ms", rec.Status, rec.ErrorType, rec.DurationMS)
			}
			if !strings.Contains(rec.LogTail, "REPORT RequestId: "+inv.id) {
				t.Errorf("the record's log tail lacks the REPORT line: %q", rec.LogTail)
			}
			waitFor(t, patience, "the timed-out sandbox and its child are gone", func() bool {
				return len(newSandboxes(before, sandboxesOf(n))) == 0
			})
			platformAnswers(t, n)
		})
	}

	// The output caps hold while streaming: the worker's peak memory
	// (VmHWM of nimbus dev, which embeds the worker) stays bounded.
	for _, c := range []struct {
		name, fn, body string
	}{
		{"a print flood", "flood", "    while True:\n        print('x' * 100)\n"},
		{"a stderr flood", "errflood", "    while True:\n        sys.stderr.write('y' * 4096)\n"},
		{"one huge line", "bigline", "    sys.stdout.write('x' * 50_000_000)\n    return 'written'\n"},
		{"a huge result", "bigresult", "    return 'x' * 50_000_000\n"},
	} {
		t.Run(c.name+" exceeds the output limit", func(t *testing.T) {
			deployPy(t, n, c.fn, map[string]any{"memory": 512, "timeout": "30s"}, "def handler(event, context):\n"+c.body)
			inv := mustFailWith(t, n, c.fn, nil, "Sandbox.OutputLimitExceeded")
			if rec := record(t, n, inv.id); rec.Status != client.StatusFailed {
				t.Fatalf("record status %q", rec.Status)
			}
			if hwm := procStatusKB(t, n1, "VmHWM"); hwm > 300<<10 {
				t.Fatalf("nimbus dev peaked at %d MB of RSS; want under 300 MB", hwm>>10)
			}
			platformAnswers(t, n)
		})
	}

	t.Run("filling /tmp stops at its size and never reaches the host disk", func(t *testing.T) {
		// Memory above the /tmp size, so that /tmp fills before memory.
		deployPy(t, n, "filler", map[string]any{"memory": 1024, "timeout": "60s"}, fillHandler)
		marker := "nimbus-fill-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		var res struct {
			Written int64
			Error   string
		}
		observe(t, n, "filler", map[string]any{"name": marker}, &res)
		if (res.Error != "ENOSPC" && res.Error != "EFBIG") || res.Written > 512<<20 || res.Written < 400<<20 {
			t.Fatalf("wrote %d MB, stopped by %q; want 400..512 MB, stopped by ENOSPC or EFBIG", res.Written>>20, res.Error)
		}
		// The file still exists inside the warm instance's /tmp.
		if found := filesNamed(n.data, marker); len(found) > 0 {
			t.Fatalf("the sandbox's /tmp file is visible in the data dir: %v", found)
		}
		if _, err := os.Stat(filepath.Join(os.TempDir(), marker)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("the sandbox's /tmp file is visible in the host's /tmp: %v", err)
		}
		observe(t, n, "filler", map[string]any{"remove": marker}, &res)
		platformAnswers(t, n)
	})

	t.Run("filling /tmp past a smaller memory limit is an OutOfMemory, contained", func(t *testing.T) {
		// /tmp is a tmpfs: its pages are charged to the instance's memory
		// cgroup (docs/architecture.md), so a 128 MB function runs out of
		// memory before it fills 512 MB of /tmp, and nothing reaches disk.
		deployPy(t, n, "filler128", map[string]any{"timeout": "60s"}, fillHandler)
		inv := invoke(t, n, "filler128", map[string]any{"name": "fill"})
		if inv.errorType != "Sandbox.OutOfMemory" {
			t.Fatalf("filling /tmp with 128 MB of memory gave %q: %.300s", inv.errorType, inv.body)
		}
		platformAnswers(t, n)
	})
}

// fillHandler writes 1 MB chunks to /tmp/<event.name> until an error,
// keeping the file; {"remove": name} deletes it.
const fillHandler = `
def handler(event, context):
    if 'remove' in event:
        os.remove('/tmp/' + event['remove'])
        return {'written': 0, 'error': None}
    chunk = b'\xa5' * (1 << 20)
    written, err = 0, None
    with open('/tmp/' + event['name'], 'wb', buffering=0) as f:
        while written < (2 << 30):
            try:
                written += f.write(chunk)
            except OSError as e:
                err = errname(e)
                break
    return {'written': written, 'error': err}
`
