package sandbox

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
)

// Defaults of the isolated executor.
const (
	DefaultPids  = 64
	DefaultTmpMB = 512
	// uidBase starts the ranges of host uids that instances run as: each
	// instance gets its own, so no two instances share an identity. A
	// worker takes one of uidRanges ranges of uidRange uids, picked from
	// its state directory (see uidRangeBase), so that two nodes on one
	// host hand out different uids.
	uidBase   = 1_000_000
	uidRange  = 100_000
	uidRanges = 20_000 // the last range ends below 2^31
)

// IsolatedConfig configures an IsolatedExecutor.
type IsolatedConfig struct {
	StateDir string // a directory of the worker's own; the executor keeps root/ there
	Pids     int    // pids.max per instance; 0 for DefaultPids
	TmpMB    int    // default /tmp size; 0 for DefaultTmpMB
	// UIDBase is the first of the uidRange host uids the worker's
	// instances run as; 0 derives it from StateDir (uidRangeBase). It
	// must be at least 1,000,000.
	UIDBase int
	Log     *slog.Logger
}

// IsolatedExecutor runs each instance in a sandbox: fresh mount, pid,
// network, ipc, uts and cgroup namespaces; a read-only root of bind
// mounts with a private /tmp; a cgroup limiting memory (no swap), CPU
// share and processes; an unprivileged uid of its own with no
// capabilities; no_new_privs; and a seccomp filter.
type IsolatedExecutor struct {
	cfg     IsolatedConfig
	self    string // the nimbus binary, re-executed as sandbox-init
	root    string // empty directory each sandbox mounts its root on
	cgroups cgroupManager
	mounts  runtimeMounts
	shells  string // host sides of pre-started sandboxes' /var/task
	// stages are read-only mounts of code directories, bound onto shells:
	// at most maxStages, the least recently used unmounted first.
	stageDir     string
	stageMu      sync.Mutex
	stages       map[string]*stage // by code dir
	stageTick    uint64
	stagesClosed bool
	links        [][2]string
	next         atomic.Uint64
	// destroying counts cgroups being removed after their sandbox ended.
	destroying sync.WaitGroup
	// reaper thaws and kills the sandboxes if the worker dies (v1
	// freezer only: see reaper_linux.go); nil where not needed.
	reaper *reaper
}

// ErrCannotIsolate is returned when this host cannot build sandboxes.
var ErrCannotIsolate = errors.New("this host cannot build sandboxes")

// NewIsolatedExecutor checks that the host can build sandboxes, cleans
// up sandboxes left by an earlier worker, and returns the executor. The
// error says what is missing.
func NewIsolatedExecutor(cfg IsolatedConfig) (*IsolatedExecutor, error) {
	if cfg.Pids <= 0 {
		cfg.Pids = DefaultPids
	}
	if cfg.TmpMB <= 0 {
		cfg.TmpMB = DefaultTmpMB
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.UIDBase == 0 {
		cfg.UIDBase = uidRangeBase(cfg.StateDir)
	}
	if cfg.UIDBase < uidBase || cfg.UIDBase > 1<<31-1-uidRange {
		return nil, fmt.Errorf("sandbox: uid base %d is outside %d..%d", cfg.UIDBase, uidBase, 1<<31-1-uidRange)
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("%w: the sandbox is built for linux/amd64 only", ErrCannotIsolate)
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: the sandbox needs root (to create namespaces, cgroups and mounts); run the worker as root", ErrCannotIsolate)
	}
	for _, ns := range []string{"mnt", "pid", "net", "ipc", "uts", "cgroup"} {
		if _, err := os.Stat("/proc/self/ns/" + ns); err != nil {
			return nil, fmt.Errorf("%w: the kernel has no %s namespaces", ErrCannotIsolate, ns)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("%w: cannot find the nimbus binary: %v", ErrCannotIsolate, err)
	}
	cg, err := newCgroupManager(workerName(cfg.StateDir))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCannotIsolate, err)
	}
	if err := cg.Sweep(); err != nil {
		cfg.Log.Warn("could not remove every sandbox left by an earlier worker", "err", err)
	}
	root := filepath.Join(cfg.StateDir, "root")
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, err
	}
	shells := filepath.Join(cfg.StateDir, "shells")
	stages := filepath.Join(cfg.StateDir, "stages")
	for _, d := range []string{shells, stages} {
		if err := sweepShells(d); err != nil {
			cfg.Log.Warn("could not remove every mount left by an earlier worker", "dir", d, "err", err)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	e := &IsolatedExecutor{cfg: cfg, self: self, root: root, shells: shells, stageDir: stages, cgroups: cg, links: hostSymlinks()}
	if v1, ok := cg.(*cgroupV1); ok {
		if fz, ok := v1.bases["freezer"]; ok {
			bases := []string{fz}
			for c, b := range v1.bases {
				if c != "freezer" {
					bases = append(bases, b)
				}
			}
			if e.reaper, err = startReaper(self, bases); err != nil {
				return nil, err
			}
		}
	}
	return e, nil
}

// workerName names a worker's cgroup subtree after its state directory,
// so a worker restarted on the same data finds (and sweeps) its own
// leftovers and no one else's.
func workerName(stateDir string) string {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	sum := sha256.Sum256([]byte(abs))
	return "w-" + hex.EncodeToString(sum[:6])
}

// uidRangeBase is the first uid of the range a worker's instances run
// as, one of uidRanges ranges above uidBase, picked by a hash of the
// worker's state directory: two nodes on one host (different state
// directories) take different ranges unless their hashes collide (one
// chance in uidRanges), and a restarted worker keeps its range.
func uidRangeBase(stateDir string) int {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	sum := sha256.Sum256([]byte("uids:" + abs))
	k := int(binary.BigEndian.Uint32(sum[:4]) % uidRanges)
	return uidBase + k*uidRange
}

// AttachCode gives a sandbox started with LateCode its code (read-only)
// and its memory limit. It implements CodeAttacher.
func (e *IsolatedExecutor) AttachCode(proc Process, codeDir string, memoryMB int) error {
	p, ok := proc.(*isolatedProcess)
	if !ok || p.shell == "" {
		return errors.New("sandbox: not a sandbox started with LateCode")
	}
	// A pre-started sandbox has the default limit already: most functions
	// keep it, and the writes to the cgroup's files (four on v1) are a
	// tenth of a cold start's attach.
	if memoryMB != p.memoryMB {
		if err := p.cg.SetMemory(memoryMB); err != nil {
			return err
		}
		p.memoryMB = memoryMB
	}
	// The lock covers the fill: a stage is not unmounted (evicted) while
	// it is being bound onto a shell.
	e.stageMu.Lock()
	defer e.stageMu.Unlock()
	st, err := e.stagedLocked(codeDir)
	if err != nil {
		return err
	}
	return fillShell(p.shell, st)
}

// StageCode makes codeDir's read-only staging mount now. It implements
// CodeAttacher.
func (e *IsolatedExecutor) StageCode(codeDir string) error {
	e.stageMu.Lock()
	defer e.stageMu.Unlock()
	_, err := e.stagedLocked(codeDir)
	return err
}

// UnstageCode unmounts codeDir's staging mount, if it has one, so that
// codeDir can be removed. Sandboxes that already have the code keep their
// own mounts of it. It implements CodeAttacher.
func (e *IsolatedExecutor) UnstageCode(codeDir string) {
	e.stageMu.Lock()
	defer e.stageMu.Unlock()
	if st, ok := e.stages[codeDir]; ok {
		removeShell(st.dir)
		delete(e.stages, codeDir)
	}
}

// maxStages bounds the staging mounts an executor keeps. A worker stages
// the code of every revision deployed (and invoked) while it runs, and
// every mount namespace a sandbox creates copies the worker's mounts, so
// they must not pile up. A sandbox's own copy of its code is a mount of
// its own: unmounting a stage does not touch it.
const maxStages = 64

// stage is a staging mount and when it was last used.
type stage struct {
	dir  string
	used uint64
}

// stagedLocked returns the read-only staging mount of codeDir, making it
// if there is none (and unmounting the least recently used stage beyond
// maxStages). stageMu must be held.
func (e *IsolatedExecutor) stagedLocked(codeDir string) (string, error) {
	if e.stagesClosed {
		return "", errors.New("sandbox: executor closed")
	}
	e.stageTick++
	if st, ok := e.stages[codeDir]; ok {
		st.used = e.stageTick
		return st.dir, nil
	}
	sum := sha256.Sum256([]byte(codeDir))
	dir := filepath.Join(e.stageDir, hex.EncodeToString(sum[:8]))
	if err := stageCode(codeDir, dir); err != nil {
		return "", err
	}
	if e.stages == nil {
		e.stages = map[string]*stage{}
	}
	e.stages[codeDir] = &stage{dir: dir, used: e.stageTick}
	for len(e.stages) > maxStages {
		oldest := ""
		for c, st := range e.stages {
			if oldest == "" || st.used < e.stages[oldest].used {
				oldest = c
			}
		}
		removeShell(e.stages[oldest].dir)
		delete(e.stages, oldest)
	}
	return dir, nil
}

// Prepare computes what a runtime needs mounted ahead of its first
// instance (it runs ldd over the interpreter and its extension modules,
// which takes a moment once per runtime).
func (e *IsolatedExecutor) Prepare(path, prefix string) error {
	_, err := e.mounts.For(path, prefix)
	return err
}

// Close removes the executor's own parent cgroups once every instance
// is gone (the worker closes its instances first).
func (e *IsolatedExecutor) Close() error {
	e.destroying.Wait()
	if e.reaper != nil {
		e.reaper.stop()
	}
	e.stageMu.Lock()
	for _, st := range e.stages {
		removeShell(st.dir)
	}
	e.stages = nil
	e.stagesClosed = true
	e.stageMu.Unlock()
	return e.cgroups.Remove()
}

// Name identifies the executor.
func (e *IsolatedExecutor) Name() string {
	return fmt.Sprintf("sandbox (cgroup v%d)", e.cgroups.Version())
}

// TaskRoot is where instances see their code: /var/task.
func (e *IsolatedExecutor) TaskRoot(string) string { return TaskRoot }

// MountPath is where the sandbox mounts m: its Target.
func (e *IsolatedExecutor) MountPath(m Mount) string { return m.Target }

// Start builds a sandbox and starts spec's program in it. The returned
// process is the sandbox's pid 1: when it exits, the kernel kills every
// other process of the sandbox, and reaping destroys the cgroup.
func (e *IsolatedExecutor) Start(spec Spec) (Process, error) {
	if spec.Path == "" || (spec.CodeDir == "" && !spec.LateCode) {
		return nil, errors.New("sandbox: spec needs Path and CodeDir")
	}
	n := e.next.Add(1)
	id := fmt.Sprintf("i%d-%d", os.Getpid(), n)
	uid := e.cfg.UIDBase + int(n%uidRange)
	pids := spec.Pids
	if pids <= 0 {
		pids = e.cfg.Pids
	}
	memMB := spec.MemoryMB
	if memMB <= 0 {
		memMB = 128
	}
	tmpMB := spec.TmpMB
	if tmpMB <= 0 {
		tmpMB = e.cfg.TmpMB
	}
	interp := spec.Path
	if spec.Interpreter != "" {
		interp = spec.Interpreter
	}
	rtMounts, err := e.mounts.For(interp, spec.Runtime)
	if err != nil {
		return nil, err
	}
	binds := append([]bindMount(nil), rtMounts...)
	if interp != spec.Path {
		libs, err := e.mounts.LibsOf(spec.Path)
		if err != nil {
			return nil, err
		}
		binds = appendUncovered(binds, libs)
	}
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Target) || filepath.Clean(m.Target) != m.Target || !strings.HasPrefix(m.Target, "/opt/") {
			return nil, fmt.Errorf("sandbox: mount target %q is not a clean path under /opt", m.Target)
		}
		binds = append(binds, bindMount{Source: m.Source, Target: m.Target})
	}
	var shell string
	if spec.LateCode {
		shell = filepath.Join(e.shells, id)
		if err := makeShell(shell); err != nil {
			return nil, err
		}
		binds = append(binds, bindMount{Source: shell, Target: TaskRoot})
	} else {
		binds = append(binds, bindMount{Source: spec.CodeDir, Target: TaskRoot})
	}
	args := append([]string(nil), spec.Args...)
	path := spec.Path
	for _, f := range spec.Files {
		target := filepath.Join(RuntimeDir, filepath.Base(f))
		binds = append(binds, bindMount{Source: f, Target: target, File: true})
		for i, a := range args {
			if a == f {
				args[i] = target
			}
		}
		if path == f {
			path = target
		}
	}
	dir := spec.Dir
	if dir == "" || dir == spec.CodeDir {
		dir = TaskRoot
	}
	links := e.links
	for _, l := range spec.Links {
		if !filepath.IsAbs(l[1]) || filepath.Clean(l[1]) != l[1] {
			return nil, fmt.Errorf("sandbox: link %q is not a clean absolute path", l[1])
		}
		links = append(links[:len(links):len(links)], l)
	}
	cfg := initConfig{
		Root: e.root, Binds: binds, Symlinks: links, Files: etcFiles(uid, uid),
		TmpMB: tmpMB, UID: uid, GID: uid,
		Path: path, Args: args, Env: spec.Env, Dir: dir,
		KeepFDs: 2 + len(spec.ExtraFiles),
		Slave:   spec.LateCode,
	}
	if len(cfg.Args) == 0 {
		cfg.Args = []string{path}
	}
	payload, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}

	cg, err := e.cgroups.Create(id, cgroupLimits{MemoryMB: memMB, Pids: pids})
	if err != nil {
		if shell != "" {
			removeShell(shell)
		}
		return nil, err
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		cg.Destroy()
		return nil, err
	}
	defer cfgR.Close()
	// Fds 3.. are the protocol's; the config pipe follows at initConfigFD.
	extra := append([]*os.File(nil), spec.ExtraFiles...)
	for len(extra) < initConfigFD-3 {
		extra = append(extra, nil)
	}
	extra = append(extra, cfgR)
	cmd := &exec.Cmd{
		Path:       e.self,
		Args:       []string{"nimbus", InitArg},
		Env:        []string{},
		ExtraFiles: extra,
		Stdout:     spec.Output,
		Stderr:     spec.Output,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWNET |
				syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if spec.Stderr != nil {
		cmd.Stderr = spec.Stderr
	}
	if spec.Stdin != nil {
		cmd.Stdin = spec.Stdin
	}
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	if err != nil {
		cfgW.Close()
		cg.Destroy()
		return nil, fmt.Errorf("sandbox: start: %w", err)
	}
	p := &isolatedProcess{e: e, cmd: cmd, cg: cg, shell: shell, memoryMB: memMB, pids: pids, done: make(chan struct{})}
	if spec.Background {
		// Before it has its config, the child has run nothing: the
		// sandbox's setup and the program inherit the priority.
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, cmd.Process.Pid, backgroundNice); err != nil {
			e.cfg.Log.Debug("could not lower a pre-started sandbox's priority", "err", err)
		}
	}
	// The child waits for its config, so it runs nothing of its own
	// before it is in its cgroup.
	if err := cg.Add(cmd.Process.Pid); err != nil {
		cfgW.Close()
		p.Kill()
		go p.reap()
		p.Wait()
		return nil, err
	}
	_, werr := cfgW.Write(payload)
	cfgW.Close()
	go p.reap()
	if werr != nil {
		p.Kill()
		p.Wait()
		return nil, fmt.Errorf("sandbox: send config: %w", werr)
	}
	return p, nil
}

// isolatedProcess is a sandbox's pid 1, as seen by the worker.
type isolatedProcess struct {
	e        *IsolatedExecutor
	shell    string // host side of /var/task for a LateCode sandbox
	cmd      *exec.Cmd
	cg       cgroup
	memoryMB int // the cgroup's memory limit, as set at Start or AttachCode
	pids     int // the cgroup's pids.max
	done     chan struct{}

	mu     sync.Mutex
	reaped bool
	killed bool // Kill was called: never freeze again
	frozen bool
	exit   Exit
}

func (p *isolatedProcess) Pid() int { return p.cmd.Process.Pid }

// backgroundNice is the nice value of a sandbox started in the
// background.
const backgroundNice = 19

// Foreground gives the sandbox's program (its pid 1, which started no
// other process yet) the normal priority. It implements Prioritized.
func (p *isolatedProcess) Foreground() error {
	return syscall.Setpriority(syscall.PRIO_PROCESS, p.cmd.Process.Pid, 0)
}

func (p *isolatedProcess) Wait() Exit {
	<-p.done
	return p.exit
}

// Kill kills the sandbox's pid 1, which takes every process of its pid
// namespace with it.
// A frozen sandbox is thawed after the signal is sent: it dies then,
// before running anything of its own.
func (p *isolatedProcess) Kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killed = true
	if !p.reaped {
		syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	}
	if p.frozen {
		if err := p.cg.Thaw(); err != nil {
			p.e.cfg.Log.Warn("could not thaw a sandbox being killed", "err", err)
		}
		p.frozen = false
	}
}

// Signal sends sig to the sandbox's pid 1, which receives it only if it
// handles it. It implements Signaler.
func (p *isolatedProcess) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil
	}
	return syscall.Kill(p.cmd.Process.Pid, sig)
}

// Freeze stops every process of the sandbox (cgroup v1 freezer, v2
// cgroup.freeze). It implements Controlled.
func (p *isolatedProcess) Freeze() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed || p.reaped || p.frozen || !p.cg.CanFreeze() {
		return nil
	}
	if err := p.cg.Freeze(); err != nil {
		return err
	}
	p.frozen = true
	return nil
}

// Thaw lets a frozen sandbox run again. It implements Controlled.
func (p *isolatedProcess) Thaw() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.frozen {
		return nil
	}
	p.frozen = false
	return p.cg.Thaw()
}

// CanFreeze reports whether the host can freeze the sandbox.
func (p *isolatedProcess) CanFreeze() bool { return p.cg.CanFreeze() }

// CapCPU applies the CPU cap of the sandbox's memory limit. It
// implements Controlled.
func (p *isolatedProcess) CapCPU() error { return p.cg.CapCPU() }

// Usage reads the sandbox's processes and pids-limit hits. It implements
// Controlled.
func (p *isolatedProcess) Usage() (Usage, error) { return p.cg.Usage() }

// PidsLimit is the sandbox's pids.max. It implements Controlled.
func (p *isolatedProcess) PidsLimit() int { return p.pids }

// MemoryBytes reads the memory charged to the sandbox's cgroup. It
// implements Controlled.
func (p *isolatedProcess) MemoryBytes() int64 { return p.cg.Memory() }

func (p *isolatedProcess) reap() {
	waitExited(p.cmd.Process.Pid)
	p.mu.Lock()
	syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL)
	p.reaped = true
	p.mu.Unlock()
	p.cmd.Wait()
	ex := exitOf(p.cmd)
	ex.OOMKilled = p.cg.OOMKilled()
	ex.PeakMemoryBytes = p.cg.PeakMemory()
	// The cgroup's CPU time counts every process of the sandbox, the
	// leader's rusage only those it reaped.
	if u, err := p.cg.Usage(); err == nil && u.CPU > 0 {
		ex.CPU = u.CPU
	}
	p.exit = ex
	// The sandbox's pid 1 is gone, so the kernel is killing the rest of
	// it; removing the cgroup waits for that, off the caller's path.
	// Close waits for every removal: the removal is counted before Wait
	// returns, so that a caller that waited for its last process and
	// then closes the executor does not race the count.
	p.e.destroying.Add(1)
	close(p.done)
	go func() {
		defer p.e.destroying.Done()
		if err := p.cg.Destroy(); err != nil {
			p.e.cfg.Log.Warn("sandbox cgroup left behind", "err", err)
		}
		if p.shell != "" {
			if err := removeShell(p.shell); err != nil {
				p.e.cfg.Log.Warn("sandbox shell left behind", "err", err)
			}
		}
	}()
}

// String describes the process for logs.
func (p *isolatedProcess) String() string { return "sandbox pid " + strconv.Itoa(p.Pid()) }
