package e2e

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestAKilledWorkerLeavesNothingRunning kills nimbus dev with SIGKILL
// while a sandbox runs a daemon, then checks that no sandboxed process
// survives and that a restart on the same data works.
func TestAKilledWorkerLeavesNothingRunning(t *testing.T) {
	parallel(t)
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
	// Only this node's sandboxes are looked at: other tests run theirs
	// beside it, and its own pool refills at any moment.
	worker := n.workerPid()
	before := sandboxesOf(n)
	go n.cli("", "invoke", "daemon", "--data", `{"spin": true}`)
	var box string
	waitFor(t, patience, "the instance and its daemon run", func() bool {
		for id, pids := range newSandboxes(before, sandboxesOf(n)) {
			box = id
			return hasDaemon(pids)
		}
		return false
	})

	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.done
	waitFor(t, patience, "every process of the killed node's sandboxes is gone", func() bool {
		return len(sandboxesOfWorkers([]int{n.cmd.Process.Pid, worker})) == 0
	})
	t.Logf("sandbox %s and every other of the node are gone", box)

	n = startDev(t, data)
	if r := n.mustCLI(0, "invoke", "daemon"); !strings.Contains(r.stdout, "spawned") {
		t.Fatalf("after restart: %+v", r)
	}
}

// hasDaemon reports whether one of a sandbox's processes pids is a
// double-forked daemon: alive, in a session other than the instance's
// (the sandbox's pid 1), and not the leader of its session (the parent
// that called setsid and forked it).
func hasDaemon(pids []int) bool {
	type proc struct {
		state        string
		session      int
		leader, init bool
	}
	var procs []proc
	initSession := -1
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp session ...; comm may hold spaces.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 4 {
			continue
		}
		p := proc{state: f[0]}
		p.session, _ = strconv.Atoi(f[3])
		p.leader = p.session == pid
		status, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
		for _, line := range strings.Split(string(status), "\n") {
			// NSpid: the pid in each pid namespace, the sandbox's last.
			if f := strings.Fields(line); len(f) > 1 && f[0] == "NSpid:" && f[len(f)-1] == "1" {
				p.init = true
				initSession = p.session
			}
		}
		procs = append(procs, p)
	}
	for _, p := range procs {
		if !p.init && p.state != "Z" && !p.leader && initSession >= 0 && p.session != initSession {
			return true
		}
	}
	return false
}
