// Package sandbox owns how an instance's process is started and confined.
// The Executor interface is the seam: today's ProcessExecutor runs each
// instance as its own process group with rlimits; the isolating executor
// (namespaces, cgroups, seccomp) implements the same interface.
package sandbox

import (
	"os"
	"syscall"
	"time"
)

// Spec says what to run and under which limits.
type Spec struct {
	Path string   // absolute path of the program (the resolved Python interpreter)
	Args []string // argv, Args[0] included
	Env  []string // the complete environment; nothing is inherited
	Dir  string   // working directory (the function's code directory)

	// Output receives the program's stdout, and its stderr unless Stderr
	// is set (an instance's log).
	Output *os.File
	// Stderr, when set, receives the program's stderr apart from its
	// stdout (an interactive run tells the two apart).
	Stderr *os.File
	// Stdin is the program's stdin; nil for /dev/null.
	Stdin *os.File
	// ExtraFiles become fds 3, 4, ... in the child (the instance protocol).
	ExtraFiles []*os.File

	MemoryMB int    // memory limit of the instance
	Pids     int    // maximum processes/threads, 0 for the default
	TmpMB    int    // size of the instance's /tmp, 0 for the default
	CodeDir  string // read-only function code (mounted at /var/task by isolating executors)
	Runtime  string // installation prefix of the interpreter (sys.base_prefix)
	// Interpreter is the Python interpreter whose installation (Runtime)
	// isolating executors mount, when the program (Path) is another: a
	// platform program listed in Files (the provided runtime's Runtime API
	// server), whose shared libraries are then mounted too. Empty: Path
	// is the interpreter.
	Interpreter string
	// Links are symlinks {target, link} an isolating executor makes in the
	// sandbox's root where no mount provides the path (/usr/bin/python3 for
	// the provided runtime's scripts). The process executor ignores them.
	Links [][2]string
	// LateCode says CodeDir is not ready yet: the program starts before
	// its code is known (a pre-started instance) and the code arrives
	// with AttachCode. Only executors that implement CodeAttacher support
	// it.
	LateCode bool
	// Background starts the program at the lowest CPU priority (nice
	// 19), where it runs only on time nothing else wants: a sandbox
	// started ahead of need must not slow the invocations running now.
	// Foreground (on processes that implement Prioritized) restores the
	// normal priority.
	Background bool
	// Mounts are further read-only host directories the program reads
	// (a function's layers): isolating executors bind each at its
	// Target; the process executor leaves them where they are (see
	// Executor.MountPath).
	Mounts []Mount
	// Files are further host files the program reads (the bootstrap).
	// Isolating executors bind each read-only at /var/runtime/<base name>
	// and rewrite the arguments (and Path) that name it.
	Files []string
}

// Mount is a host directory a program sees, read-only, at Target (an
// absolute path outside the runtime's own and /var/task, such as
// /opt/python).
type Mount struct {
	Source string
	Target string
}

// Process is a started instance process.
type Process interface {
	Pid() int
	// Wait waits for the process to exit and reports how it ended.
	Wait() Exit
	// Kill kills the process and everything it started. Safe to call more
	// than once and after exit.
	Kill()
}

// Signaler is implemented by processes that can be sent a signal other
// than the kill (an interactive run's interrupt).
type Signaler interface {
	// Signal sends sig to the program: to its process group (process
	// executor), or to its sandbox's pid 1 (isolated executor), which
	// gets it only if it handles it (Python handles SIGINT).
	Signal(sig syscall.Signal) error
}

// Prioritized is implemented by processes that can be started in the
// background (Spec.Background).
type Prioritized interface {
	// Foreground gives the process the normal CPU priority again.
	Foreground() error
}

// Exit describes how a process ended.
type Exit struct {
	Code      int    // exit code, -1 when killed by a signal
	Signal    string // signal name when killed by one, e.g. "SIGKILL"
	OOMKilled bool   // the memory limit was hit (known only where the executor can tell)
	// PeakMemoryBytes is the most memory the instance's cgroup used (0
	// where the executor cannot tell), read before the cgroup is removed.
	// The process executor reports the leader's peak resident size.
	PeakMemoryBytes int64
	// CPU is the CPU time, user and system, the instance used over its
	// life: its cgroup's, or the reaped leader's and its reaped children's
	// (process executor).
	CPU time.Duration
}

// Controlled is implemented by processes their executor confines in a
// cgroup of their own (the isolated executor's). The process executor's
// processes do not implement it: there, nothing is frozen, capped or
// counted.
type Controlled interface {
	// Freeze stops every process of the instance, between invocations;
	// Thaw lets them run again. Both are no-ops where the host has no
	// freezer (CanFreeze false), and after Kill.
	Freeze() error
	Thaw() error
	CanFreeze() bool
	// CapCPU applies the CPU cap that follows the memory limit (CFS
	// bandwidth: a full CPU at 1,769 MB). An instance runs uncapped
	// until its handler is imported, as Lambda boosts init.
	CapCPU() error
	// Usage reads what the instance's cgroup holds now.
	Usage() (Usage, error)
	// PidsLimit is the instance's maximum of processes and threads.
	PidsLimit() int
	// MemoryBytes is the memory charged to the instance's cgroup now
	// (anonymous memory, its /tmp and the page cache it brought in; 0
	// where the kernel does not say). One file read: callers sample it,
	// not on every invocation.
	MemoryBytes() int64
}

// Usage is what an instance's cgroup holds at a moment.
type Usage struct {
	// Procs counts the processes (not threads) in the cgroup.
	Procs int
	// PidsLimitHits counts the forks and clones the pids limit refused
	// over the cgroup's life (pids.events "max").
	PidsLimitHits int64
	// CPU is the CPU time the cgroup's processes have used over its
	// life, user and system (v1 cpuacct.usage, v2 cpu.stat usage_usec;
	// 0 where the kernel does not say).
	CPU time.Duration
}

// Executor starts instance processes.
type Executor interface {
	// Name identifies the executor in logs and in the cluster view.
	Name() string
	Start(spec Spec) (Process, error)
	// TaskRoot returns where a started program sees the code directory
	// hostDir: hostDir itself, or /var/task inside a sandbox.
	TaskRoot(hostDir string) string
	// MountPath returns where a started program sees m: m.Target inside
	// a sandbox, m.Source itself otherwise.
	MountPath(m Mount) string
}

// CodeAttacher is implemented by executors that can start a program
// before its code is known (Spec.LateCode) and deliver the code later.
type CodeAttacher interface {
	// AttachCode makes codeDir (read-only) the code of p, which was
	// started with LateCode, and sets its memory limit.
	AttachCode(p Process, codeDir string, memoryMB int) error
	// StageCode prepares what AttachCode needs of codeDir ahead of time
	// (a worker does it when a deploy announces the code), so that the
	// first cold start of the code does not wait for it.
	StageCode(codeDir string) error
	// UnstageCode drops what StageCode prepared for codeDir, before the
	// worker removes codeDir; programs that have the code keep it.
	UnstageCode(codeDir string)
}
