package sandbox

import (
	"bytes"
	"nimbus/internal/waitfor"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// runSh starts sh -c script under the process executor with its output in a
// file, and returns the process and a func reading the output so far.
func runSh(t *testing.T, script string, env []string) (Process, func() string) {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	p, err := NewProcessExecutor().Start(Spec{
		Path:   "/bin/sh",
		Args:   []string{"sh", "-c", script},
		Env:    env,
		Dir:    t.TempDir(),
		Output: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Kill(); p.Wait() })
	return p, func() string {
		b, _ := os.ReadFile(out.Name())
		return string(b)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitfor.Until(t, 10*time.Second, what, cond)
}

// gone reports whether pid no longer runs (absent or a zombie).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

func TestProcessExecutorName(t *testing.T) {
	if got := NewProcessExecutor().Name(); got != "process" {
		t.Fatalf("Name() = %q", got)
	}
}

func TestKillKillsTheWholeProcessGroup(t *testing.T) {
	p, out := runSh(t, "sleep 1000 & echo $!; wait", nil)
	var child int
	waitFor(t, "grandchild pid", func() bool {
		child, _ = strconv.Atoi(strings.TrimSpace(out()))
		return child > 0
	})
	if gone(child) {
		t.Fatal("grandchild not running before Kill")
	}
	// Wait and Kill race from different goroutines; Kill twice.
	var wg sync.WaitGroup
	var ex Exit
	wg.Add(1)
	go func() { defer wg.Done(); ex = p.Wait() }()
	p.Kill()
	p.Kill()
	wg.Wait()
	if ex.Signal != "SIGKILL" || ex.Code != -1 || ex.OOMKilled {
		t.Fatalf("exit = %+v, want SIGKILL", ex)
	}
	waitFor(t, "grandchild to die", func() bool { return gone(child) })
	p.Kill() // after exit: no-op
}

func TestLeaderExitKillsLeftoverGroupMembers(t *testing.T) {
	p, out := runSh(t, "sleep 1000 & echo $!; read x < /dev/null; exit 0", nil)
	ex := p.Wait()
	if ex.Code != 0 || ex.Signal != "" {
		t.Fatalf("exit = %+v, want code 0", ex)
	}
	child, _ := strconv.Atoi(strings.TrimSpace(out()))
	if child == 0 {
		t.Fatalf("no grandchild pid in %q", out())
	}
	waitFor(t, "grandchild to die", func() bool { return gone(child) })
}

func TestEnvironmentIsNotInherited(t *testing.T) {
	t.Setenv("NIMBUS_SECRET_FROM_PARENT", "leak")
	p, out := runSh(t, "env", []string{"ONLY=this"})
	if ex := p.Wait(); ex.Code != 0 {
		t.Fatalf("exit = %+v", ex)
	}
	got := out()
	if strings.Contains(got, "NIMBUS_SECRET_FROM_PARENT") || strings.Contains(got, "HOME=") {
		t.Fatalf("environment inherited:\n%s", got)
	}
	if !strings.Contains(got, "ONLY=this") {
		t.Fatalf("spec.Env missing:\n%s", got)
	}
}

func TestExitReportsCodeOrSignal(t *testing.T) {
	cases := []struct {
		name, script string
		want         Exit
	}{
		{"a clean exit reports code 0", "exit 0", Exit{Code: 0}},
		{"exit 3 reports code 3", "exit 3", Exit{Code: 3}},
		{"a segfault reports SIGSEGV", "kill -SEGV $$", Exit{Code: -1, Signal: "SIGSEGV"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, _ := runSh(t, c.script, nil)
			got := p.Wait()
			if got.Code != c.want.Code || got.Signal != c.want.Signal || got.OOMKilled {
				t.Fatalf("exit = %+v, want %+v", got, c.want)
			}
			// The shell's own peak size and CPU time are measured.
			if got.PeakMemoryBytes <= 0 || got.CPU < 0 {
				t.Fatalf("exit = %+v: no peak memory", got)
			}
			if again := p.Wait(); again != got {
				t.Fatalf("second Wait = %+v, want %+v", again, got)
			}
		})
	}
}

func TestExtraFilesAndStdin(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	p, err := NewProcessExecutor().Start(Spec{
		Path:       "/bin/sh",
		Args:       []string{"sh", "-c", "echo hi >&3; cat; echo done"},
		Output:     out,
		ExtraFiles: []*os.File{w},
	})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if ex := p.Wait(); ex.Code != 0 {
		t.Fatalf("exit = %+v", ex)
	}
	var buf bytes.Buffer
	buf.ReadFrom(r)
	if buf.String() != "hi\n" {
		t.Fatalf("fd 3 got %q", buf.String())
	}
	if b, _ := os.ReadFile(out.Name()); string(b) != "done\n" {
		t.Fatalf("output %q (stdin should be empty)", b)
	}
	if p.Pid() <= 0 {
		t.Fatal("no pid")
	}
}
