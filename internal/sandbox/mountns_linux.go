package sandbox

import (
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// privateMountsEnv marks the re-executed process that already runs in a
// mount namespace of its own.
const privateMountsEnv = "NIMBUS_PRIVATE_MOUNTS"

// RunInPrivateMounts re-executes this program (same arguments) in a new
// mount namespace whose mounts are slaves of the host's, and returns its
// exit code; in the re-executed process it only prepares the namespace
// and reports ok=false, so the caller goes on.
//
// A worker mounts code for its pre-started sandboxes; in a namespace of
// its own those mounts vanish with it, even when it is killed with
// SIGKILL, instead of staying on the host until a restart sweeps them.
// Host mounts still propagate in; nothing propagates out.
func RunInPrivateMounts() (code int, ok bool) {
	if os.Getenv(privateMountsEnv) == "1" {
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
			return 0, false // carry on: the executor's own sweep still applies
		}
		return 0, false
	}
	if os.Geteuid() != 0 {
		return 0, false
	}
	self, err := os.Executable()
	if err != nil {
		return 0, false
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Env = append(os.Environ(), privateMountsEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	// The child gets the terminal's signals itself (same process group);
	// the parent only waits, forwarding what is sent to it alone (SIGQUIT
	// too: the goroutine dump asked for is the child's).
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	runtime.LockOSThread() // Pdeathsig follows the spawning thread
	if err := cmd.Start(); err != nil {
		runtime.UnlockOSThread()
		signal.Stop(sigs)
		return 0, false // run in the host's namespace instead
	}
	go func() {
		for s := range sigs {
			cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	if ee, isExit := err.(*exec.ExitError); isExit {
		if ws, wsOK := ee.Sys().(syscall.WaitStatus); wsOK && ws.Signaled() {
			return 128 + int(ws.Signal()), true
		}
		return ee.ExitCode(), true
	}
	if err != nil {
		return 1, true
	}
	return 0, true
}
