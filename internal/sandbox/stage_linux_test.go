package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// inPrivateMounts runs f on a thread of its own in a new, private mount
// namespace (the thread is discarded afterwards), so that the mounts it
// makes never reach the host's.
func inPrivateMounts(t *testing.T, f func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	done := make(chan struct{})
	var setupErr error
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if setupErr = unix.Unshare(unix.CLONE_NEWNS); setupErr != nil {
			return
		}
		if setupErr = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); setupErr != nil {
			return
		}
		f()
	}()
	<-done
	if setupErr != nil {
		t.Skipf("no private mount namespace here: %v", setupErr)
	}
}

func mounted(dir string) bool {
	b, _ := os.ReadFile("/proc/thread-self/mountinfo")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

// Staging mounts are bounded: beyond maxStages the least recently used
// one is unmounted, a code bound onto a shell from it before stays, and
// a closed executor stages nothing more.
func TestStagesAreBoundedLeastRecentlyUsedFirst(t *testing.T) {
	tmp := t.TempDir()
	inPrivateMounts(t, func() {
		e := &IsolatedExecutor{stageDir: filepath.Join(tmp, "stages")}
		code := func(i int) string {
			d := filepath.Join(tmp, "code", fmt.Sprint(i))
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Error(err)
			}
			os.WriteFile(filepath.Join(d, "main.py"), []byte(fmt.Sprintf("# %d\n", i)), 0o644)
			return d
		}
		// The first code, bound onto a "shell" as a sandbox's would be.
		first, err := e.stagedLocked(code(0))
		if err != nil {
			t.Error(err)
			return
		}
		shell := filepath.Join(tmp, "shell")
		os.MkdirAll(shell, 0o755)
		if err := fillShell(shell, first); err != nil {
			t.Error(err)
			return
		}
		second, _ := e.stagedLocked(code(1))
		for i := 2; i <= maxStages; i++ {
			if err := e.StageCode(code(i)); err != nil {
				t.Error(err)
				return
			}
			if i == maxStages/2 {
				e.StageCode(code(1)) // used again: the second is not the oldest now
			}
		}
		if len(e.stages) != maxStages {
			t.Errorf("%d stages kept, want %d", len(e.stages), maxStages)
		}
		if mounted(first) || !mounted(second) {
			t.Errorf("the least recently used stage should be gone (first mounted: %v) and the reused one kept (second mounted: %v)", mounted(first), mounted(second))
		}
		if b, err := os.ReadFile(filepath.Join(shell, "main.py")); err != nil || string(b) != "# 0\n" {
			t.Errorf("the code bound from an evicted stage: %q %v", b, err)
		}
		if err := os.WriteFile(filepath.Join(shell, "x"), nil, 0o644); err == nil {
			t.Error("the bound code is writable")
		}
		// Unstaging (before the code cache removes a package) unmounts
		// the stage; asking again for one that has none is harmless.
		e.UnstageCode(code(1))
		e.UnstageCode(code(1))
		if mounted(second) || e.stages[code(1)] != nil || len(e.stages) != maxStages-1 {
			t.Errorf("after UnstageCode the stage is still mounted (%v) or listed (%d stages)", mounted(second), len(e.stages))
		}
		e.stagesClosed = true
		if err := e.StageCode(code(maxStages + 1)); err == nil {
			t.Error("a closed executor staged code")
		}
		for _, st := range e.stages {
			removeShell(st.dir)
		}
		unix.Unmount(shell, unix.MNT_DETACH)
	})
}
