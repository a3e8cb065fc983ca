package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sandboxProcesses lists host pids whose uid is in the sandbox range
// (1,000,000 and up), i.e. processes running inside some sandbox.
func sandboxProcesses(t *testing.T) []int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
				if uid, _ := strconv.Atoi(f[1]); uid >= 1_000_000 {
					out = append(out, pid)
				}
			}
		}
	}
	return out
}

// TestAKilledWorkerLeavesNothingRunning kills nimbus dev with SIGKILL
// while a sandbox runs a daemon, then checks that no sandboxed process
// survives and that a restart on the same data works.
func TestAKilledWorkerLeavesNothingRunning(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	data := t.TempDir()
	n := startDev(t, data)
	// The handler leaves a daemon behind, then spins: the instance is
	// busy (not reading its protocol pipe) when the worker dies.
	daemon := "import os, time\n" +
		"def handler(e, c):\n" +
		"    if os.fork() == 0:\n" +
		"        os.setsid()\n" +
		"        if os.fork() == 0:\n" +
		"            time.sleep(600)\n" +
		"        os._exit(0)\n" +
		"    if e.get('spin'):\n" +
		"        while True:\n" +
		"            pass\n" +
		"    return 'spawned'\n"
	if status, e := n.deployJSON("daemon", map[string]any{"timeout": "300s"}, zipOf(t, map[string]string{"main.py": daemon})); status != 201 {
		t.Fatalf("deploy: %d %+v", status, e)
	}
	before := len(sandboxProcesses(t))
	go n.cli("", "invoke", "daemon", "--data", `{"spin": true}`)
	waitFor(t, 10*time.Second, "the instance and its daemon run", func() bool { return len(sandboxProcesses(t)) >= before+2 })

	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
	waitFor(t, 20*time.Second, "every sandboxed process is gone", func() bool { return len(sandboxProcesses(t)) <= before })

	n = startDev(t, data)
	if r := n.mustCLI(0, "invoke", "daemon"); !strings.Contains(r.stdout, "spawned") {
		t.Fatalf("after restart: %+v", r)
	}
}
