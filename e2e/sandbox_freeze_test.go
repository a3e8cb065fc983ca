package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"nimbus/internal/waitfor"
	"nimbus/pkg/client"
)

// The freeze tests check what a function's processes may do between
// invocations (nothing: the instance is frozen), what the REPORT line and
// the record say about processes a handler leaves behind, the CPU cap,
// and the memory a killed instance is reported to have used.

// cgroupFile returns the path of file in the cgroup of pid for a v1
// controller, or in its v2 cgroup where the host has no v1 controller of
// that name ("" if neither).
func cgroupFile(pid int, controller, file string) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return ""
	}
	mounts := cgroupMountsForTest()
	var v2 string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[1] == "" {
			v2 = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if m, ok := mounts[c]; ok && c == controller {
				return filepath.Join(m, f[2], file)
			}
		}
	}
	if m, ok := mounts["cgroup2"]; ok && v2 != "" {
		p := filepath.Join(m, v2, file)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// cgroupMountsForTest maps v1 controllers (and "cgroup2") to their mount
// points.
func cgroupMountsForTest() map[string]string {
	out := map[string]string{}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 {
			continue
		}
		switch qf[0] {
		case "cgroup2":
			if _, seen := out["cgroup2"]; !seen {
				out["cgroup2"] = pf[4]
			}
		case "cgroup":
			for _, opt := range strings.Split(qf[2], ",") {
				if _, seen := out[opt]; !seen {
					out[opt] = pf[4]
				}
			}
		}
	}
	return out
}

// cpuUsageNS reads the CPU time an instance's cgroup has used:
// cpuacct.usage (v1, ns) or cpu.stat's usage_usec (v2).
func cpuUsageNS(t *testing.T, pid int) int64 {
	t.Helper()
	if p := cgroupFile(pid, "cpuacct", "cpuacct.usage"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("reading %s: %v", p, err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatalf("%s holds %q", p, b)
		}
		return n
	}
	if p := cgroupFile(pid, "", "cpu.stat"); p != "" {
		b, _ := os.ReadFile(p)
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, " "); ok && k == "usage_usec" {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n * 1000
			}
		}
	}
	t.Fatalf("pid %d is in no cgroup that accounts CPU time (cpuacct.usage or cpu.stat)", pid)
	return 0
}

// newInstance invokes fn (which must succeed) and returns the pids of the
// one new instance sandbox that invocation made, once it holds at least
// minPids processes.
func newInstance(t *testing.T, n *devNode, fn string, event any, minPids int) (invocation, []int) {
	t.Helper()
	before := sandboxesOf(n)
	inv := invoke(t, n, fn, event)
	if inv.errorType != "" {
		t.Fatalf("%s: %s %.500s", fn, inv.errorType, inv.body)
	}
	var pids []int
	waitFor(t, 60*time.Second, fn+"'s instance holds its processes", func() bool {
		fresh := newSandboxes(before, sandboxesOf(n))
		if len(fresh) != 1 {
			return false
		}
		for _, pids = range fresh {
		}
		return len(pids) >= minPids
	})
	return inv, pids
}

// stableCPU waits until the CPU time of pid's cgroup stops growing: the
// same for a second of polls. It fails the test if that never happens.
func stableCPU(t *testing.T, pid int, what string) {
	t.Helper()
	last, since := cpuUsageNS(t, pid), time.Now()
	waitfor.Until(t, 60*time.Second, what+": the instance's cgroup uses no CPU for a second", func() bool {
		if n := cpuUsageNS(t, pid); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= time.Second
	})
}

// loopingChildHandler forks a child that counts in a loop, writing its count
// to /tmp/count, and returns; later invocations wait until the count
// moves and return it (module state: the child's pid).
const loopingChildHandler = `
import time
child = None
def count():
    try:
        with open('/tmp/count') as f:
            return int(f.read() or 0)
    except (FileNotFoundError, ValueError):
        return 0
def handler(event, context):
    global child
    if child is None:
        child = os.fork()
        if child == 0:
            n = 0
            while True:
                n += 1
                if n % 20000 == 0:
                    with open('/tmp/count.new', 'w') as f:
                        f.write(str(n))
                    os.replace('/tmp/count.new', '/tmp/count')
        return {'child': child}
    before = count()
    while count() == before and context.get_remaining_time_in_millis() > 1000:
        time.sleep(0.01)
    return {'child': child, 'before': before, 'after': count()}
`

func TestFrozenBetweenInvocations(t *testing.T) {
	n := sandboxNode(t)

	t.Run("a looping child uses no CPU after the response and resumes with the next invocation", func(t *testing.T) {
		deployPy(t, n, "counter", map[string]any{"timeout": "30s"}, loopingChildHandler)
		_, pids := newInstance(t, n, "counter", nil, 2)
		waitFor(t, 60*time.Second, "the idle instance's cgroup is frozen", func() bool { return frozen(pids[0]) })
		stableCPU(t, pids[0], "after the response")
		// Frozen, the child's count does not move either.
		countFile := "/proc/" + strconv.Itoa(pids[0]) + "/root/tmp/count"
		read := func() string { b, _ := os.ReadFile(countFile); return string(b) }
		c1 := read()
		if waitfor.Poll(time.Second, func() bool { return read() != c1 }) {
			t.Fatalf("the child counted on while its instance was idle: %q then %q", c1, read())
		}
		// The next invocation thaws it: the same child counts on.
		var res struct{ Child, Before, After int }
		observe(t, n, "counter", nil, &res)
		if res.After <= res.Before {
			t.Fatalf("the child did not count on during the invocation: %+v", res)
		}
		stableCPU(t, pids[0], "after the second response")
		platformAnswers(t, n)
		// Removing the function kills the frozen instance, child and all.
		if r := n.cli("", "rm", "counter"); r.code != 0 {
			t.Fatalf("nimbus rm: %+v", r)
		}
		waitFor(t, 60*time.Second, "every process of the frozen instance is gone", func() bool {
			for _, pid := range pids {
				if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
					return false
				}
			}
			return true
		})
	})

	t.Run("a fork bomb's processes are reported and its pids limit logged", func(t *testing.T) {
		// A full CPU (1,769 MB), so that forking beside the spinning
		// children takes seconds at most on a busy machine.
		deployPy(t, n, "bomb", map[string]any{"timeout": "120s", "memory": 1769}, `
def handler(event, context):
    started, err = 0, None
    while started < 1000:
        try:
            pid = os.fork()
        except OSError as e:
            err = errname(e)
            break
        if pid == 0:
            while True:
                pass
        started += 1
    return {'started': started, 'error': err}
`)
		inv, pids := newInstance(t, n, "bomb", nil, 3)
		var res struct {
			Started int
			Error   string
		}
		if err := json.Unmarshal(inv.body, &res); err != nil || res.Error != "EAGAIN" || res.Started < 2 {
			t.Fatalf("the bomb answered %s", inv.body)
		}
		rec := record(t, n, inv.id)
		if rec.ProcessesLeft != res.Started {
			t.Errorf("record: processes_left %d, want %d (the children the handler started)", rec.ProcessesLeft, res.Started)
		}
		if want := fmt.Sprintf("\tProcesses Left: %d", res.Started); !strings.Contains(rec.LogTail, want) {
			t.Errorf("the REPORT line does not say %q:\n%s", want, rec.LogTail)
		}
		if !regexp.MustCompile(`reached its limit of \d+ processes and threads`).MatchString(rec.LogTail) {
			t.Errorf("no log line says the function hit its pids limit:\n%s", rec.LogTail)
		}
		stableCPU(t, pids[0], "after the fork bomb returned")
		// The worker's other functions still answer, the bomb's instance
		// too (thawed with its children).
		platformAnswers(t, n)
		inv2 := invoke(t, n, "bomb", nil)
		if inv2.errorType != "" {
			t.Fatalf("the bomb's second invocation: %s %.300s", inv2.errorType, inv2.body)
		}
		if rec2 := record(t, n, inv2.id); rec2.ProcessesLeft < res.Started || !strings.Contains(rec2.LogTail, "Processes Left: ") {
			t.Errorf("second invocation: processes_left %d; log:\n%s", rec2.ProcessesLeft, rec2.LogTail)
		}
	})

	t.Run("a handler that leaves nothing running reports no processes left", func(t *testing.T) {
		inv := invoke(t, n, "bystander", nil)
		rec := record(t, n, inv.id)
		if rec.ProcessesLeft != 0 || strings.Contains(rec.LogTail, "Processes Left") {
			t.Errorf("bystander: processes_left %d; log:\n%s", rec.ProcessesLeft, rec.LogTail)
		}
	})

	t.Run("an out-of-memory REPORT says how much memory the cgroup measured", func(t *testing.T) {
		deployPy(t, n, "oom", map[string]any{"memory": 128, "timeout": "30s"}, `
def handler(event, context):
    b = []
    while True:
        b.append(bytearray(10 << 20))
`)
		inv := mustFailWith(t, n, "oom", nil, "Sandbox.OutOfMemory")
		rec := record(t, n, inv.id)
		m := regexp.MustCompile(`Max Memory Used: (\d+) MB`).FindStringSubmatch(rec.LogTail)
		if m == nil {
			t.Fatalf("no REPORT line with Max Memory Used:\n%s", rec.LogTail)
		}
		if used, _ := strconv.Atoi(m[1]); used < 64 || rec.MaxMemoryMB != used {
			t.Errorf("REPORT says Max Memory Used: %s MB, the record %d MB; want the cgroup's peak, near the limit of 128 MB", m[1], rec.MaxMemoryMB)
		}
		platformAnswers(t, n)
	})

	t.Run("the CPU cap follows the memory size", func(t *testing.T) {
		deployPy(t, n, "capped", map[string]any{"memory": 256}, `
def handler(event, context):
    return 'ok'
`)
		_, pids := newInstance(t, n, "capped", nil, 1)
		want := 100000 * 256 / 1769
		if p := cgroupFile(pids[0], "cpu", "cpu.cfs_quota_us"); p != "" {
			if got := strings.TrimSpace(readFileT(t, p)); got != strconv.Itoa(want) {
				t.Fatalf("%s = %s, want %d", p, got, want)
			}
			if got := strings.TrimSpace(readFileT(t, filepath.Join(filepath.Dir(p), "cpu.cfs_period_us"))); got != "100000" {
				t.Fatalf("cpu.cfs_period_us = %s, want 100000", got)
			}
			if b, err := os.ReadFile(filepath.Join(filepath.Dir(p), "cpu.cfs_burst_us")); err == nil && strings.TrimSpace(string(b)) != strconv.Itoa(want) {
				t.Fatalf("cpu.cfs_burst_us = %s, want %d (one quota)", b, want)
			}
		} else if p := cgroupFile(pids[0], "", "cpu.max"); p != "" {
			if got := strings.TrimSpace(readFileT(t, p)); got != fmt.Sprintf("%d 100000", want) {
				t.Fatalf("%s = %s, want %d 100000", p, got, want)
			}
		} else {
			t.Fatal("the instance's cgroup has no CPU cap file")
		}
		r := n.mustCLI(0, "get", "capped")
		if !regexp.MustCompile(`(?m)^cpu:?\s+0\.14 vCPU`).MatchString(r.stdout) {
			t.Errorf("nimbus get does not state the CPU cap (0.14 vCPU):\n%s", r.stdout)
		}
	})
}

// frozen reports whether the kernel says pid's cgroup is frozen: v1
// freezer.state FROZEN, or v2 cgroup.events "frozen 1".
func frozen(pid int) bool {
	if p := cgroupFile(pid, "freezer", "freezer.state"); p != "" {
		b, _ := os.ReadFile(p)
		return strings.TrimSpace(string(b)) == "FROZEN"
	}
	if p := cgroupFile(pid, "", "cgroup.events"); p != "" {
		b, _ := os.ReadFile(p)
		return strings.Contains(string(b), "frozen 1")
	}
	return false
}

func readFileT(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Two nodes on one host run their instances as different uids.
func TestSandboxUIDsDifferPerNode(t *testing.T) {
	uidOf := func(n *devNode) int {
		deployPy(t, n, "whoami", nil, `
def handler(event, context):
    return os.getuid()
`)
		var uid int
		observe(t, n, "whoami", nil, &uid)
		return uid
	}
	a, b := sandboxNode(t), sandboxNode(t)
	ua, ub := uidOf(a), uidOf(b)
	if ua < 1_000_000 || ub < 1_000_000 {
		t.Fatalf("instance uids %d and %d; want both at least 1,000,000", ua, ub)
	}
	if ua/100_000 == ub/100_000 {
		t.Fatalf("two nodes ran instances as uids %d and %d, from the same range", ua, ub)
	}
}

// In a cluster, the worker's count of processes left reaches the record
// (over the worker RPC, and through the Raft log's records).
func TestProcessesLeftReachTheClusterRecord(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	c := startCluster(t, 1, 1)
	fnDir := writeFunction(t, t.TempDir(), "leaver", `
import os, time
def handler(event, context):
    if os.fork() == 0:
        while True:
            time.sleep(1)
    return 'left one'
`)
	c.mustCLI(0, 0, "deploy", fnDir)
	c.mustCLI(0, 0, "invoke", "leaver")
	var recs []client.Invocation
	waitFor(t, 30*time.Second, "the invocation is recorded", func() bool {
		r := c.cli(0, 20*time.Second, "invocations", "leaver", "-o", "json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &recs) == nil && len(recs) == 1
	})
	if recs[0].ProcessesLeft != 1 || !strings.Contains(recs[0].LogTail, "\tProcesses Left: 1") {
		t.Fatalf("record: processes_left %d, log:\n%s", recs[0].ProcessesLeft, recs[0].LogTail)
	}
}

// A worker killed outright takes its frozen instances with it: a frozen
// process takes no signal until thawed (cgroup v1), so something must
// thaw them once the worker is gone.
func TestAKilledWorkerLeavesNoFrozenInstance(t *testing.T) {
	n := sandboxNode(t)
	deployPy(t, n, "leaver", nil, `
import time
def handler(event, context):
    if os.fork() == 0:
        while True:
            time.sleep(1)
    return 'left one'
`)
	_, pids := newInstance(t, n, "leaver", nil, 2)
	waitFor(t, 60*time.Second, "the idle instance's cgroup is frozen", func() bool { return frozen(pids[0]) })
	worker := n.workerPid()
	syscall.Kill(worker, syscall.SIGKILL)
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
	waitFor(t, 60*time.Second, "every process of the frozen instance is gone", func() bool {
		for _, pid := range pids {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
				return false
			}
		}
		return true
	})
}
