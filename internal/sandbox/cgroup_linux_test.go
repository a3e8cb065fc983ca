package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestCPUShareFollowsMemoryAsOnLambda(t *testing.T) {
	for _, c := range []struct{ mb, want int }{{1769, 1024}, {128, 74}, {3538, 2048}, {1, 2}} {
		if got := cpuShares(c.mb); got != c.want {
			t.Errorf("cpuShares(%d) = %d, want %d", c.mb, got, c.want)
		}
	}
}

// The v1 and v2 managers write their limits to the files the kernel
// reads; a directory tree stands in for cgroupfs here.
func TestV1CreateWritesTheLimits(t *testing.T) {
	dir := t.TempDir()
	m := &cgroupV1{bases: map[string]string{}}
	for _, c := range []string{"memory", "cpu", "pids"} {
		m.bases[c] = filepath.Join(dir, c, "nimbus")
		os.MkdirAll(m.bases[c], 0o755)
	}
	if _, err := m.Create("i1", cgroupLimits{MemoryMB: 256, Pids: 64}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"memory/nimbus/i1/memory.limit_in_bytes": "268435456",
		"memory/nimbus/i1/memory.swappiness":     "0",
		"cpu/nimbus/i1/cpu.shares":               "148",
		"pids/nimbus/i1/pids.max":                "64",
	} {
		if got := readTrim(t, filepath.Join(dir, file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
}

func TestV2CreateWritesTheLimits(t *testing.T) {
	base := filepath.Join(t.TempDir(), "nimbus")
	m, err := newCgroupV2(base)
	if err != nil {
		t.Fatal(err)
	}
	if got := readTrim(t, filepath.Join(base, "cgroup.subtree_control")); !strings.Contains(got, "+memory") || !strings.Contains(got, "+pids") {
		t.Fatalf("subtree_control = %q", got)
	}
	if _, err := m.Create("i1", cgroupLimits{MemoryMB: 128, Pids: 32}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{"memory.max": "134217728", "pids.max": "32"} {
		if got := readTrim(t, filepath.Join(base, "i1", file)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
}

func TestEventCountReadsOOMKills(t *testing.T) {
	v1 := []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
	v2 := []byte("low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n")
	if eventCount(v1, "oom_kill") != 2 || eventCount(v2, "oom_kill") != 1 || eventCount(v2, "nothing") != 0 {
		t.Fatal("eventCount misread the files")
	}
}

// TestDestroyKillsEverythingInTheCgroup uses the host's real cgroups.
func TestDestroyKillsEverythingInTheCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	m, err := newCgroupManager("test-" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Skipf("no usable cgroups here: %v", err)
	}
	t.Cleanup(func() { m.Remove() })
	cg, err := m.Create("test-destroy", cgroupLimits{MemoryMB: 64, Pids: 8})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := cg.Add(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	if err := cg.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the process in the cgroup was not killed: %v", err)
	}
	own, _ := ownCgroups()
	mounts, _ := cgroupMounts()
	for _, c := range []string{"memory", "pids"} {
		if mp, ok := mounts[c]; ok {
			if _, err := os.Stat(filepath.Join(mp, own[c], "nimbus", "test-"+strconv.Itoa(os.Getpid()), "test-destroy")); !os.IsNotExist(err) {
				t.Errorf("the %s cgroup is still there: %v", c, err)
			}
		}
	}
}
