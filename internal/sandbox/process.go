package sandbox

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"unsafe"
)

// ProcessExecutor runs each instance as a plain child process in its own
// process group. It confines nothing by itself: limits are whatever the
// program sets on itself (the Python bootstrap sets its own rlimits), and it
// cannot tell an OOM kill from any other SIGKILL. The zero value is ready
// for use; it holds no state and is safe for concurrent use.
type ProcessExecutor struct{}

// NewProcessExecutor returns the unsandboxed process executor.
func NewProcessExecutor() *ProcessExecutor { return &ProcessExecutor{} }

// Name reports "process".
func (*ProcessExecutor) Name() string { return "process" }

// TaskRoot is the code directory itself: nothing is remounted.
func (*ProcessExecutor) TaskRoot(hostDir string) string { return hostDir }

// MountPath is the mounted directory itself: nothing is mounted.
func (*ProcessExecutor) MountPath(m Mount) string { return m.Source }

// Start starts spec.Path with exactly spec.Env (nothing inherited), in
// spec.Dir, stdin on /dev/null, stdout and stderr on spec.Output and
// spec.ExtraFiles as fds 3, 4, .... The child leads a new process group and
// gets SIGKILL if the spawning thread (and so, in practice, this process)
// dies. The caller keeps ownership of spec.Output and spec.ExtraFiles and
// may close its copies once Start returns.
func (*ProcessExecutor) Start(spec Spec) (Process, error) {
	if spec.Path == "" {
		return nil, errors.New("sandbox: empty program path")
	}
	cmd := &exec.Cmd{
		Path:       spec.Path,
		Args:       spec.Args,
		Env:        append([]string{}, spec.Env...), // non-nil: never inherit
		Dir:        spec.Dir,
		ExtraFiles: spec.ExtraFiles,
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if len(cmd.Args) == 0 {
		cmd.Args = []string{spec.Path}
	}
	if spec.Output != nil {
		cmd.Stdout = spec.Output
		cmd.Stderr = spec.Output
	}
	if spec.Stderr != nil {
		cmd.Stderr = spec.Stderr
	}
	if spec.Stdin != nil {
		cmd.Stdin = spec.Stdin
	}
	// Pdeathsig fires when the thread that forked the child exits, so fork
	// from a thread the Go runtime will not retire underneath us.
	runtime.LockOSThread()
	err := cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		return nil, fmt.Errorf("sandbox: start %s: %w", spec.Path, err)
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{})}
	go p.reap()
	return p, nil
}

// process is a started child. One goroutine reaps it; Wait and Kill may be
// called from any goroutine, any number of times.
type process struct {
	cmd  *exec.Cmd
	pid  int
	done chan struct{} // closed once the child is reaped and exit is set

	mu     sync.Mutex
	reaped bool // the leader's pid may have been reused: never signal it again
	exit   Exit
}

func (p *process) Pid() int { return p.pid }

// Wait blocks until the process has exited and reports how it ended.
func (p *process) Wait() Exit {
	<-p.done
	return p.exit
}

// Kill sends SIGKILL to the whole process group. It is a no-op once the
// group leader has been reaped (the group was killed at that point).
func (p *process) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.reaped {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	}
}

// Signal sends sig to the process group, as a terminal sends Ctrl-C to
// its foreground group. It implements Signaler.
func (p *process) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil
	}
	return syscall.Kill(-p.pid, sig)
}

// reap waits for the leader to exit without reaping it (so its pid, and so
// the group id, cannot be reused), kills whatever is left in its group, then
// reaps it.
func (p *process) reap() {
	waitExited(p.pid)
	p.mu.Lock()
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	p.reaped = true
	p.mu.Unlock()

	_ = p.cmd.Wait() // the exit status is read from ProcessState
	ex := exitOf(p.cmd)
	p.exit = ex
	close(p.done)
}

// exitOf reads how a reaped command ended.
func exitOf(cmd *exec.Cmd) Exit {
	ex := Exit{Code: -1}
	if st := cmd.ProcessState; st != nil {
		if ws, ok := st.Sys().(syscall.WaitStatus); ok {
			switch {
			case ws.Signaled():
				ex.Signal = SignalName(ws.Signal())
			case ws.Exited():
				ex.Code = ws.ExitStatus()
			}
		}
		ex.CPU = st.UserTime() + st.SystemTime()
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			ex.PeakMemoryBytes = ru.Maxrss << 10
		}
	}
	return ex
}

// waitExited blocks until pid has exited, leaving it a zombie (WNOWAIT).
func waitExited(pid int) {
	const (
		pPID    = 1
		wExited = 0x4
		wNoWait = 0x1000000
	)
	var info [128]byte // siginfo_t
	for {
		_, _, errno := syscall.Syscall6(syscall.SYS_WAITID, pPID, uintptr(pid),
			uintptr(unsafe.Pointer(&info[0])), wExited|wNoWait, 0, 0)
		if errno != syscall.EINTR {
			return // exited, or not our child any more (ECHILD): nothing to wait for
		}
	}
}

var signalNames = map[syscall.Signal]string{
	syscall.SIGABRT: "SIGABRT", syscall.SIGALRM: "SIGALRM", syscall.SIGBUS: "SIGBUS",
	syscall.SIGFPE: "SIGFPE", syscall.SIGHUP: "SIGHUP", syscall.SIGILL: "SIGILL",
	syscall.SIGINT: "SIGINT", syscall.SIGKILL: "SIGKILL", syscall.SIGPIPE: "SIGPIPE",
	syscall.SIGQUIT: "SIGQUIT", syscall.SIGSEGV: "SIGSEGV", syscall.SIGSYS: "SIGSYS",
	syscall.SIGTERM: "SIGTERM", syscall.SIGTRAP: "SIGTRAP", syscall.SIGUSR1: "SIGUSR1",
	syscall.SIGUSR2: "SIGUSR2", syscall.SIGXCPU: "SIGXCPU", syscall.SIGXFSZ: "SIGXFSZ",
}

// SignalName returns the conventional name of sig, e.g. "SIGKILL", or
// "SIG<n>" for a signal without one.
func SignalName(sig syscall.Signal) string {
	if n, ok := signalNames[sig]; ok {
		return n
	}
	return fmt.Sprintf("SIG%d", int(sig))
}
