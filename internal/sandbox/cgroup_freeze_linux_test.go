package sandbox

import (
	"nimbus/internal/waitfor"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCPUQuotaFollowsMemoryAsOnLambda(t *testing.T) {
	for _, c := range []struct{ mb, want int }{{1769, 100000}, {128, 7235}, {3538, 200000}, {10, 1000}} {
		if got := cpuQuotaUS(c.mb); got != c.want {
			t.Errorf("cpuQuotaUS(%d) = %d, want %d", c.mb, got, c.want)
		}
	}
}

// The CPU cap is written by CapCPU, and follows SetMemory from then on.
func TestV1CapCPUFollowsSetMemory(t *testing.T) {
	dir := t.TempDir()
	m := &cgroupV1{bases: map[string]string{}}
	for _, c := range []string{"memory", "cpu", "pids", "freezer"} {
		m.bases[c] = filepath.Join(dir, c, "nimbus")
		os.MkdirAll(m.bases[c], 0o755)
	}
	cg, err := m.Create("i1", cgroupLimits{MemoryMB: 256, Pids: 64})
	if err != nil {
		t.Fatal(err)
	}
	quota := filepath.Join(dir, "cpu/nimbus/i1/cpu.cfs_quota_us")
	if got := readTrim(t, filepath.Join(dir, "cpu/nimbus/i1/cpu.cfs_period_us")); got != "100000" {
		t.Errorf("cpu.cfs_period_us = %q", got)
	}
	if _, err := os.Stat(quota); !os.IsNotExist(err) {
		t.Errorf("the quota was set before CapCPU (%v): init runs uncapped", err)
	}
	// cgroupfs makes cpu.cfs_burst_us (kernels with CFS burst); a plain
	// file stands in for it here.
	burst := filepath.Join(dir, "cpu/nimbus/i1/cpu.cfs_burst_us")
	os.WriteFile(burst, []byte("0"), 0o644)
	if err := cg.CapCPU(); err != nil {
		t.Fatal(err)
	}
	if got := readTrim(t, quota); got != "14471" {
		t.Errorf("after CapCPU at 256 MB, cpu.cfs_quota_us = %q, want 14471", got)
	}
	if got := readTrim(t, burst); got != "14471" {
		t.Errorf("after CapCPU at 256 MB, cpu.cfs_burst_us = %q, want 14471 (one quota)", got)
	}
	if err := cg.SetMemory(1769); err != nil {
		t.Fatal(err)
	}
	if got := readTrim(t, quota); got != "100000" {
		t.Errorf("after SetMemory(1769), cpu.cfs_quota_us = %q, want 100000", got)
	}
	if got := readTrim(t, burst); got != "100000" {
		t.Errorf("after SetMemory(1769), cpu.cfs_burst_us = %q, want 100000", got)
	}
	if !cg.CanFreeze() {
		t.Fatal("a v1 cgroup with a freezer directory cannot freeze")
	}
	cg.Freeze()
	if got := readTrim(t, filepath.Join(dir, "freezer/nimbus/i1/freezer.state")); got != "FROZEN" {
		t.Errorf("freezer.state = %q after Freeze", got)
	}
	cg.Thaw()
	if got := readTrim(t, filepath.Join(dir, "freezer/nimbus/i1/freezer.state")); got != "THAWED" {
		t.Errorf("freezer.state = %q after Thaw", got)
	}
}

func TestV2CapCPUWritesCPUMax(t *testing.T) {
	base := filepath.Join(t.TempDir(), "nimbus")
	m, err := newCgroupV2(base)
	if err != nil {
		t.Fatal(err)
	}
	cg, err := m.Create("i1", cgroupLimits{MemoryMB: 512, Pids: 32})
	if err != nil {
		t.Fatal(err)
	}
	// cgroupfs makes cpu.max; a plain directory stands in for it here.
	os.WriteFile(filepath.Join(base, "i1", "cpu.max"), []byte("max 100000"), 0o644)
	if err := cg.CapCPU(); err != nil {
		t.Fatal(err)
	}
	if got := readTrim(t, filepath.Join(base, "i1", "cpu.max")); got != "28942 100000" {
		t.Errorf("cpu.max = %q, want 28942 100000", got)
	}
	if err := cg.SetMemory(1769); err != nil {
		t.Fatal(err)
	}
	if got := readTrim(t, filepath.Join(base, "i1", "cpu.max")); got != "100000 100000" {
		t.Errorf("after SetMemory(1769), cpu.max = %q", got)
	}
}

// A frozen cgroup's processes use no CPU and take no SIGKILL until
// thawed; Destroy kills and removes a frozen cgroup all the same. Real
// cgroups of the host.
func TestFrozenCgroupIsDestroyed(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	m, err := newCgroupManager("test-freeze-" + strconv.Itoa(os.Getpid()))
	if err != nil {
		t.Skipf("no usable cgroups here: %v", err)
	}
	t.Cleanup(func() { m.Remove() })
	cg, err := m.Create("test-frozen", cgroupLimits{MemoryMB: 64, Pids: 8})
	if err != nil {
		t.Fatal(err)
	}
	if !cg.CanFreeze() {
		cg.Destroy()
		t.Skip("no freezer here")
	}
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := cg.Add(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		t.Fatal(err)
	}
	if err := cg.Freeze(); err != nil {
		t.Fatal(err)
	}
	// Wait until the kernel reports the process frozen (state in
	// /proc/PID/stat is not R while frozen).
	waitfor.Until(t, 30*time.Second, "the process stops running after Freeze", func() bool {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/stat")
		f := strings.Fields(string(b))
		return len(f) > 2 && f[2] != "R"
	})
	u, err := cg.Usage()
	if err != nil || u.Procs != 1 {
		t.Fatalf("Usage: %+v %v, want 1 process", u, err)
	}
	if err := cg.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("the frozen process was not killed: %v", err)
	}
}
