//go:build linux && amd64

package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp tests never install the filter in the test process: they
// re-execute the test binary as a helper process (TestSeccompHelperProcess
// with seccompHelperEnv set to a mode) and judge what it reports.

const (
	seccompHelperEnv     = "NIMBUS_SECCOMP_HELPER"      // the helper's mode
	seccompHelperArgvEnv = "NIMBUS_SECCOMP_HELPER_ARGV" // JSON argv for mode "exec"
	seccompPython        = "/usr/bin/python3"
)

// seccompTestData is struct seccomp_data as the filter sees it.
type seccompTestData struct {
	nr   uint32
	arch uint32
	args [6]uint64
}

// word returns the 32-bit word of seccomp_data at byte offset off.
func (d seccompTestData) word(off uint32) (uint32, bool) {
	switch {
	case off == seccompDataNr:
		return d.nr, true
	case off == seccompDataArch:
		return d.arch, true
	case off >= seccompDataArgs && off < seccompDataArgs+6*8 && off%4 == 0:
		arg := d.args[(off-seccompDataArgs)/8]
		if (off-seccompDataArgs)%8 == 4 {
			return uint32(arg >> 32), true
		}
		return uint32(arg), true
	}
	return 0, false
}

// runSeccompFilter interprets prog on d like the kernel does and returns the
// action. It knows only the instructions bpfAsm emits.
func runSeccompFilter(t *testing.T, prog []unix.SockFilter, d seccompTestData) uint32 {
	t.Helper()
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			w, ok := d.word(in.K)
			if !ok {
				t.Fatalf("instruction %d loads from bad offset %d", pc, in.K)
			}
			acc = w
		case unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K:
			if acc == in.K {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K:
			if acc&in.K != 0 {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case unix.BPF_RET | unix.BPF_K:
			return in.K
		default:
			t.Fatalf("instruction %d has unexpected code %#x", pc, in.Code)
		}
	}
	t.Fatalf("program ran off its end")
	return 0
}

func seccompAction(k uint32) string {
	switch {
	case k == unix.SECCOMP_RET_ALLOW:
		return "ALLOW"
	case k == unix.SECCOMP_RET_KILL_PROCESS:
		return "KILL_PROCESS"
	case k&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ERRNO:
		return "ERRNO(" + unix.ErrnoName(unix.Errno(k&unix.SECCOMP_RET_DATA)) + ")"
	}
	return fmt.Sprintf("%#x", k)
}

func TestSeccompFilterDecisions(t *testing.T) {
	prog, err := seccompFilter()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("filter has %d instructions", len(prog))
	const (
		allow = "ALLOW"
		kill  = "KILL_PROCESS"
		eperm = "ERRNO(EPERM)"
	)
	x86 := func(nr uintptr, args ...uint64) seccompTestData {
		d := seccompTestData{nr: uint32(nr), arch: unix.AUDIT_ARCH_X86_64}
		copy(d.args[:], args)
		return d
	}
	type decision struct {
		name string
		data seccompTestData
		want string
	}
	cases := []decision{
		{"a syscall through the i386 ABI kills the process", seccompTestData{nr: 20, arch: unix.AUDIT_ARCH_I386}, kill},
		{"an x32 syscall kills the process", x86(x32SyscallBit | unix.SYS_GETPID), kill},
		{"getpid is allowed", x86(unix.SYS_GETPID), allow},
		{"execve is allowed", x86(unix.SYS_EXECVE), allow},
		{"an unknown syscall number is left to the kernel", x86(1000), allow},
		{"fork through clone is allowed", x86(unix.SYS_CLONE,
			unix.CLONE_CHILD_SETTID|unix.CLONE_CHILD_CLEARTID|uint64(unix.SIGCHLD)), allow},
		{"a thread through clone is allowed", x86(unix.SYS_CLONE,
			unix.CLONE_VM|unix.CLONE_FS|unix.CLONE_FILES|unix.CLONE_SIGHAND|unix.CLONE_THREAD|
				unix.CLONE_SYSVSEM|unix.CLONE_SETTLS|unix.CLONE_PARENT_SETTID|unix.CLONE_CHILD_CLEARTID), allow},
		{"vfork through clone is allowed", x86(unix.SYS_CLONE, unix.CLONE_VM|unix.CLONE_VFORK|uint64(unix.SIGCHLD)), allow},
		{"a namespace flag in the high word of clone's flags is allowed, as the kernel ignores it",
			x86(unix.SYS_CLONE, unix.CLONE_NEWNET<<32|uint64(unix.SIGCHLD)), allow},
		{"clone3 fails with ENOSYS", x86(unix.SYS_CLONE3), "ERRNO(ENOSYS)"},
		{"ioctl TIOCSTI is denied", x86(unix.SYS_IOCTL, 0, unix.TIOCSTI), eperm},
		{"ioctl TIOCSTI with garbage in the high word is denied", x86(unix.SYS_IOCTL, 0, 0xdead<<32|unix.TIOCSTI), eperm},
		{"ioctl TIOCLINUX is denied", x86(unix.SYS_IOCTL, 0, unix.TIOCLINUX), eperm},
		{"ioctl TCGETS is allowed", x86(unix.SYS_IOCTL, 0, unix.TCGETS), allow},
		{"ioctl with TIOCSTI as its argument rather than its request is allowed", x86(unix.SYS_IOCTL, unix.TIOCSTI, unix.TCGETS, unix.TIOCSTI), allow},
		{"personality(PER_LINUX) is allowed", x86(unix.SYS_PERSONALITY, 0), allow},
		{"personality query is allowed", x86(unix.SYS_PERSONALITY, 0xffffffff), allow},
		{"personality(ADDR_NO_RANDOMIZE) is denied", x86(unix.SYS_PERSONALITY, 0x0040000), eperm},
		{"personality(PER_LINUX32) is denied", x86(unix.SYS_PERSONALITY, 8), eperm},
	}
	for name, flag := range map[string]uint64{
		"CLONE_NEWNS": unix.CLONE_NEWNS, "CLONE_NEWUTS": unix.CLONE_NEWUTS, "CLONE_NEWIPC": unix.CLONE_NEWIPC,
		"CLONE_NEWUSER": unix.CLONE_NEWUSER, "CLONE_NEWPID": unix.CLONE_NEWPID, "CLONE_NEWNET": unix.CLONE_NEWNET,
		"CLONE_NEWCGROUP": unix.CLONE_NEWCGROUP, "CLONE_NEWTIME": unix.CLONE_NEWTIME,
	} {
		cases = append(cases, decision{"clone with " + name + " is denied",
			x86(unix.SYS_CLONE, flag|unix.CLONE_VM|uint64(unix.SIGCHLD)), eperm})
	}
	for _, d := range DeniedSyscalls() {
		if d.When == "" {
			want := "ERRNO(" + unix.ErrnoName(d.Errno) + ")"
			cases = append(cases, decision{d.Name + " is always denied", x86(uintptr(d.Nr), 0, 1, 2), want})
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := seccompAction(runSeccompFilter(t, prog, c.data)); got != c.want {
				t.Errorf("filter returns %s, want %s", got, c.want)
			}
		})
	}
}

func TestSeccompDenyListIsWellFormed(t *testing.T) {
	names, nrs := map[string]bool{}, map[uint32]string{}
	for _, d := range DeniedSyscalls() {
		if names[d.Name] {
			t.Errorf("%s is listed twice", d.Name)
		}
		if other, dup := nrs[d.Nr]; dup {
			t.Errorf("%s and %s share number %d", d.Name, other, d.Nr)
		}
		names[d.Name], nrs[d.Nr] = true, d.Name
		if (d.When == "") != (d.check == nil) {
			t.Errorf("%s: When %q does not match whether it has an argument check", d.Name, d.When)
		}
	}
	a, errA := seccompFilter()
	b, errB := seccompFilter()
	if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("seccompFilter is not deterministic (errors %v, %v)", errA, errB)
	}
}

func TestSeccompAssemblerRejectsBadJumps(t *testing.T) {
	cases := []struct {
		name  string
		build func(a *bpfAsm)
		want  string
	}{
		{"a jump to an unmarked label", func(a *bpfAsm) {
			a.jeq(1, a.newLabel(), bpfNext)
			a.ret(0)
		}, "unmarked"},
		{"a jump backwards", func(a *bpfAsm) {
			l := a.newLabel()
			a.mark(l)
			a.loadAbs(0)
			a.jeq(1, l, bpfNext)
			a.ret(0)
		}, "backwards"},
		{"a jump further than 255 instructions", func(a *bpfAsm) {
			l := a.newLabel()
			a.jeq(1, l, bpfNext)
			for range 256 {
				a.loadAbs(0)
			}
			a.mark(l)
			a.ret(0)
		}, "more than 255"},
		{"a label marked twice", func(a *bpfAsm) {
			l := a.newLabel()
			a.mark(l)
			a.mark(l)
			a.ret(0)
		}, "marked twice"},
		{"an empty program", func(*bpfAsm) {}, "0 instructions"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &bpfAsm{}
			c.build(a)
			if _, err := a.assemble(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("assemble() = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// seccompProbe is one operation the probe helper attempts after loading the
// filter.
type seccompProbe struct {
	name string
	want unix.Errno // the errno under the filter, 0 for success
	// baseline says how the probe behaves without the filter: whether it may
	// run there at all, and whether its result then must differ from want.
	baseline probeBaseline
	run      func() unix.Errno
}

type probeBaseline int

const (
	baselineUnsafe  probeBaseline = iota // not run without the filter
	baselineDiffers                      // without the filter the result differs from want, on any host
	baselineVaries                       // may match want without the filter (privileges, sysctls)
)

func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	if err != nil {
		return unix.Errno(^uintptr(0)) // not an errno at all
	}
	return 0
}

func syscallErrno(_, _ uintptr, e unix.Errno) unix.Errno { return e }

// rawClone calls clone(2) with flags. The probes add CLONE_SIGHAND without
// CLONE_VM, which the kernel rejects with EINVAL before creating anything,
// so no child appears whether or not the filter is there.
func rawClone(flags uintptr) unix.Errno {
	pid, _, e := unix.RawSyscall6(unix.SYS_CLONE, flags, 0, 0, 0, 0, 0)
	if e == 0 && pid == 0 {
		unix.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0) // the child, which should not exist
	}
	if e == 0 {
		var ws unix.WaitStatus
		unix.Wait4(int(pid), &ws, unix.WALL, nil)
	}
	return e
}

// ioctlDevNull calls ioctl(fd of /dev/null, req, &byte).
func ioctlDevNull(req uintptr) unix.Errno {
	f, err := os.Open(os.DevNull)
	if err != nil {
		return errnoOf(err)
	}
	defer f.Close()
	var c byte = 'x'
	return syscallErrno(unix.Syscall(unix.SYS_IOCTL, f.Fd(), req, uintptr(unsafe.Pointer(&c))))
}

func seccompProbes() []seccompProbe {
	const missing = "/nonexistent/nimbus-seccomp"
	probes := []seccompProbe{
		{"mount", unix.EPERM, baselineVaries, func() unix.Errno {
			return errnoOf(unix.Mount("none", missing, "tmpfs", 0, ""))
		}},
		{"umount2", unix.EPERM, baselineVaries, func() unix.Errno { return errnoOf(unix.Unmount(missing, 0)) }},
		{"chroot", unix.EPERM, baselineVaries, func() unix.Errno { return errnoOf(unix.Chroot(missing)) }},
		{"unshare(CLONE_NEWNS|CLONE_NEWUSER)", unix.EPERM, baselineDiffers, func() unix.Errno {
			// Without the filter: EINVAL, as the helper has several threads.
			return errnoOf(unix.Unshare(unix.CLONE_NEWNS | unix.CLONE_NEWUSER))
		}},
		{"setns", unix.EPERM, baselineDiffers, func() unix.Errno { return errnoOf(unix.Setns(-1, 0)) }},
		{"ptrace(PTRACE_TRACEME)", unix.EPERM, baselineUnsafe, func() unix.Errno {
			return syscallErrno(unix.Syscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0))
		}},
		{"process_vm_readv", unix.EPERM, baselineDiffers, func() unix.Errno {
			return syscallErrno(unix.Syscall6(unix.SYS_PROCESS_VM_READV, uintptr(os.Getpid()), 0, 0, 0, 0, 0))
		}},
		{"keyctl", unix.EPERM, baselineVaries, func() unix.Errno {
			return syscallErrno(unix.Syscall(unix.SYS_KEYCTL, 0xffff, 0, 0))
		}},
		{"bpf", unix.EPERM, baselineVaries, func() unix.Errno {
			return syscallErrno(unix.Syscall(unix.SYS_BPF, 0xffff, 0, 0))
		}},
		{"perf_event_open", unix.EPERM, baselineVaries, func() unix.Errno {
			return syscallErrno(unix.Syscall6(unix.SYS_PERF_EVENT_OPEN, 0, 0, 0, 0, 0, 0))
		}},
		{"io_uring_setup", unix.EPERM, baselineVaries, func() unix.Errno {
			return syscallErrno(unix.Syscall(unix.SYS_IO_URING_SETUP, 0, 0, 0))
		}},
		{"reboot with a bad magic number", unix.EPERM, baselineVaries, func() unix.Errno {
			return syscallErrno(unix.Syscall6(unix.SYS_REBOOT, 0, 0, 0, 0, 0, 0))
		}},
		{"clone3", unix.ENOSYS, baselineDiffers, func() unix.Errno {
			return syscallErrno(unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0))
		}},
		{"clone without namespace flags reaches the kernel", unix.EINVAL, baselineVaries, func() unix.Errno {
			return rawClone(unix.CLONE_SIGHAND)
		}},
		{"ioctl(TIOCSTI)", unix.EPERM, baselineDiffers, func() unix.Errno { return ioctlDevNull(unix.TIOCSTI) }},
		{"ioctl(TIOCSTI) with high bits set", unix.EPERM, baselineDiffers, func() unix.Errno {
			return ioctlDevNull(1<<32 | unix.TIOCSTI)
		}},
		{"ioctl(TIOCLINUX)", unix.EPERM, baselineDiffers, func() unix.Errno { return ioctlDevNull(unix.TIOCLINUX) }},
		{"ioctl(TCGETS) reaches the kernel", unix.ENOTTY, baselineVaries, func() unix.Errno { return ioctlDevNull(unix.TCGETS) }},
		{"personality query", 0, baselineVaries, func() unix.Errno {
			return syscallErrno(unix.Syscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0))
		}},
		{"personality(ADDR_NO_RANDOMIZE)", unix.EPERM, baselineDiffers, func() unix.Errno {
			e := syscallErrno(unix.Syscall(unix.SYS_PERSONALITY, 0x0040000, 0, 0))
			unix.Syscall(unix.SYS_PERSONALITY, 0, 0, 0)
			return e
		}},
		{"getpid", 0, baselineVaries, func() unix.Errno {
			return syscallErrno(unix.Syscall(unix.SYS_GETPID, 0, 0, 0))
		}},
		{"fork and exec of /bin/true", 0, baselineVaries, func() unix.Errno {
			return errnoOf(exec.Command("/bin/true").Run())
		}},
	}
	for name, flag := range map[string]uintptr{
		"CLONE_NEWNS": unix.CLONE_NEWNS, "CLONE_NEWUTS": unix.CLONE_NEWUTS, "CLONE_NEWIPC": unix.CLONE_NEWIPC,
		"CLONE_NEWUSER": unix.CLONE_NEWUSER, "CLONE_NEWPID": unix.CLONE_NEWPID, "CLONE_NEWNET": unix.CLONE_NEWNET,
		"CLONE_NEWCGROUP": unix.CLONE_NEWCGROUP, "CLONE_NEWTIME": unix.CLONE_NEWTIME,
	} {
		probes = append(probes, seccompProbe{"clone(" + name + ")", unix.EPERM, baselineDiffers,
			func() unix.Errno { return rawClone(flag | unix.CLONE_SIGHAND) }})
	}
	return probes
}

// seccompReport is what the probe helper prints as JSON.
type seccompReport struct {
	Errnos            map[string]int    // probe name → errno, 0 for success
	Status            map[string]string // Seccomp, NoNewPrivs, Seccomp_filters of /proc/self/status
	UnfilteredThreads []string          // "tid: Seccomp value" of threads not in filter mode
	NewThreadFound    bool              // a thread created after LoadSeccomp was observed
	NewThreadSeccomp  string            // its Seccomp status
	NewThreadMount    int               // the errno of mount(2) made on it
}

// procStatus returns the named fields of a /proc/.../status file.
func procStatus(path string, fields ...string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":\t")
		for _, f := range fields {
			if k == f {
				out[k] = v
			}
		}
	}
	return out, nil
}

func threadIDs() (map[string]bool, error) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, e := range ents {
		ids[e.Name()] = true
	}
	return ids, nil
}

// TestSeccompHelperProcess is not a test: it is the body of the helper
// process the seccomp tests re-execute, and does nothing unless
// seccompHelperEnv is set. It exits the process itself.
func TestSeccompHelperProcess(t *testing.T) {
	mode := os.Getenv(seccompHelperEnv)
	if mode == "" {
		return
	}
	// KILL_PROCESS raises SIGSYS, whose default action dumps core.
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	if err := seccompHelper(mode); err != nil {
		fmt.Fprintln(os.Stderr, "seccomp helper:", err)
		os.Exit(2)
	}
	os.Exit(0)
}

func seccompHelper(mode string) error {
	load := func() error {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return err
		}
		return LoadSeccomp()
	}
	switch mode {
	case "baseline":
		r := seccompReport{Errnos: map[string]int{}}
		for _, p := range seccompProbes() {
			if p.baseline != baselineUnsafe {
				r.Errnos[p.name] = int(p.run())
			}
		}
		return json.NewEncoder(os.Stdout).Encode(r)
	case "probe":
		before, err := threadIDs()
		if err != nil {
			return err
		}
		if err := load(); err != nil {
			return err
		}
		r := seccompReport{Errnos: map[string]int{}}
		for _, p := range seccompProbes() {
			r.Errnos[p.name] = int(p.run())
		}
		if err := probeNewThread(before, &r); err != nil {
			return err
		}
		if r.Status, err = procStatus("/proc/self/status", "Seccomp", "NoNewPrivs", "Seccomp_filters"); err != nil {
			return err
		}
		ids, err := threadIDs()
		if err != nil {
			return err
		}
		for id := range ids {
			st, err := procStatus("/proc/self/task/"+id+"/status", "Seccomp")
			if err == nil && st["Seccomp"] != "2" {
				r.UnfilteredThreads = append(r.UnfilteredThreads, id+": "+st["Seccomp"])
			}
		}
		return json.NewEncoder(os.Stdout).Encode(r)
	case "x32":
		if err := load(); err != nil {
			return err
		}
		_, _, e := unix.RawSyscall(x32SyscallBit|unix.SYS_GETPID, 0, 0, 0)
		return fmt.Errorf("x32 getpid returned (errno %v) instead of killing the process", e)
	case "exec":
		var argv []string
		if err := json.Unmarshal([]byte(os.Getenv(seccompHelperArgvEnv)), &argv); err != nil {
			return err
		}
		if err := load(); err != nil {
			return err
		}
		env := []string{"PATH=/usr/bin:/bin"}
		return syscall.Exec(argv[0], argv, env)
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// probeNewThread makes the runtime start a thread after the filter is
// loaded and records that thread's view into r. Every goroutine locks a
// distinct thread, and there is one more goroutine than there were threads
// before, so at least one thread is new.
func probeNewThread(before map[string]bool, r *seccompReport) error {
	type seen struct {
		tid     string
		seccomp string
		mount   unix.Errno
	}
	results, release := make(chan seen), make(chan struct{})
	for range len(before) + 1 {
		go func() {
			runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
			st, _ := procStatus("/proc/thread-self/status", "Seccomp")
			mount := errnoOf(unix.Mount("none", "/nonexistent/nimbus-seccomp", "tmpfs", 0, ""))
			results <- seen{strconv.Itoa(unix.Gettid()), st["Seccomp"], mount}
			<-release
		}()
	}
	for range len(before) + 1 {
		s := <-results
		if !before[s.tid] && !r.NewThreadFound {
			r.NewThreadFound, r.NewThreadSeccomp, r.NewThreadMount = true, s.seccomp, int(s.mount)
		}
	}
	close(release)
	return nil
}

// runSeccompHelper runs the test binary as a helper in mode and returns its
// stdout and how it ended.
func runSeccompHelper(t *testing.T, mode string, env ...string) ([]byte, *os.ProcessState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestSeccompHelperProcess$")
	cmd.Env = append(os.Environ(), append([]string{seccompHelperEnv + "=" + mode}, env...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if s := stderr.String(); s != "" {
		t.Logf("helper %s stderr:\n%s", mode, s)
	}
	return stdout.Bytes(), cmd.ProcessState
}

func runSeccompReport(t *testing.T, mode string) seccompReport {
	t.Helper()
	out, st := runSeccompHelper(t, mode)
	if !st.Success() {
		t.Fatalf("helper %s: %v", mode, st)
	}
	var r seccompReport
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("helper %s printed %q: %v", mode, out, err)
	}
	return r
}

func TestSeccompDeniesKernelAttackSurface(t *testing.T) {
	r := runSeccompReport(t, "probe")
	for _, p := range seccompProbes() {
		t.Run(p.name, func(t *testing.T) {
			got, ok := r.Errnos[p.name]
			if !ok {
				t.Fatal("helper did not report this probe")
			}
			if unix.Errno(got) != p.want {
				t.Errorf("got %s, want %s", errnoString(unix.Errno(got)), errnoString(p.want))
			}
		})
	}
	t.Run("the process is in filter mode with no_new_privs", func(t *testing.T) {
		if r.Status["Seccomp"] != "2" || r.Status["NoNewPrivs"] != "1" {
			t.Errorf("helper status: %v, want Seccomp 2 and NoNewPrivs 1", r.Status)
		}
		own, err := procStatus("/proc/self/status", "Seccomp_filters")
		if err != nil {
			t.Fatal(err)
		}
		if ownN, _ := strconv.Atoi(own["Seccomp_filters"]); r.Status["Seccomp_filters"] != strconv.Itoa(ownN+1) {
			t.Errorf("helper has %s filters, want exactly one more than the test's %d", r.Status["Seccomp_filters"], ownN)
		}
	})
	t.Run("every thread that existed is filtered too", func(t *testing.T) {
		if len(r.UnfilteredThreads) > 0 {
			t.Errorf("threads not in filter mode: %v", r.UnfilteredThreads)
		}
	})
	t.Run("a thread started afterwards works and is filtered", func(t *testing.T) {
		if !r.NewThreadFound {
			t.Fatal("no new thread was observed")
		}
		if r.NewThreadSeccomp != "2" || unix.Errno(r.NewThreadMount) != unix.EPERM {
			t.Errorf("new thread: Seccomp %q, mount %s; want 2 and EPERM",
				r.NewThreadSeccomp, errnoString(unix.Errno(r.NewThreadMount)))
		}
	})
}

// TestSeccompProbesDiscriminate checks the probes themselves: without the
// filter they must not already give the errno the filter is expected to.
func TestSeccompProbesDiscriminate(t *testing.T) {
	r := runSeccompReport(t, "baseline")
	for _, p := range seccompProbes() {
		got, ok := r.Errnos[p.name]
		switch {
		case p.baseline == baselineUnsafe:
		case !ok:
			t.Errorf("%s: helper did not report this probe", p.name)
		case unix.Errno(got) != p.want:
		case p.baseline == baselineDiffers:
			t.Errorf("%s: gives %s even without the filter", p.name, errnoString(p.want))
		case p.want != 0 && p.want != unix.EINVAL && p.want != unix.ENOTTY:
			t.Logf("%s: gives %s even without the filter on this host; only the filter's unit test covers it",
				p.name, errnoString(p.want))
		}
	}
}

func errnoString(e unix.Errno) string {
	if e == 0 {
		return "success"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return fmt.Sprintf("errno %d", int(e))
}

func TestSeccompKillsX32Syscalls(t *testing.T) {
	_, st := runSeccompHelper(t, "x32")
	assertKilledBySIGSYS(t, st)
}

func assertKilledBySIGSYS(t *testing.T, st *os.ProcessState) {
	t.Helper()
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
		t.Errorf("helper ended with %v, want it killed by SIGSYS", st)
	}
}

func requirePython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(seccompPython); err != nil {
		t.Skipf("no %s: %v", seccompPython, err)
	}
}

// runPythonUnderSeccomp execs python3 -I -S -c script from a helper that has
// loaded the filter.
func runPythonUnderSeccomp(t *testing.T, script string) ([]byte, *os.ProcessState) {
	t.Helper()
	argv, err := json.Marshal([]string{seccompPython, "-I", "-S", "-c", script})
	if err != nil {
		t.Fatal(err)
	}
	return runSeccompHelper(t, "exec", seccompHelperArgvEnv+"="+string(argv))
}

const seccompPythonScript = `
import ctypes, json, os, subprocess, threading
out = {}
out["json"] = json.loads("[1, 2]") == [1, 2]
tids = []
th = threading.Thread(target=lambda: tids.append(threading.get_native_id()))
th.start()
th.join()
out["thread"] = len(tids) == 1 and tids[0] != threading.get_native_id()
out["subprocess"] = subprocess.run(["/bin/true"]).returncode
pid = os.fork()
if pid == 0:
    os._exit(7)
out["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
libc = ctypes.CDLL(None, use_errno=True)
out["unshare"] = [libc.unshare(0x20000), ctypes.get_errno()]
with open("/proc/self/status") as f:
    out["seccomp"] = [l.split()[1] for l in f if l.startswith("Seccomp:")][0]
print(json.dumps(out))
`

func TestSeccompLetsPythonWork(t *testing.T) {
	requirePython(t)
	out, st := runPythonUnderSeccomp(t, seccompPythonScript)
	if !st.Success() {
		t.Fatalf("python ended with %v; output %q", st, out)
	}
	var got struct {
		JSON       bool   `json:"json"`
		Thread     bool   `json:"thread"`
		Subprocess int    `json:"subprocess"`
		Fork       int    `json:"fork"`
		Unshare    []int  `json:"unshare"`
		Seccomp    string `json:"seccomp"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python printed %q: %v", out, err)
	}
	checks := []struct {
		name string
		ok   bool
	}{
		{"json imports and works", got.JSON},
		{"a thread starts and runs", got.Thread},
		{"subprocess.run(['/bin/true']) succeeds", got.Subprocess == 0},
		{"os.fork works", got.Fork == 7},
		{"unshare(CLONE_NEWNS) through ctypes fails with EPERM",
			reflect.DeepEqual(got.Unshare, []int{-1, int(unix.EPERM)})},
		{"the interpreter runs in filter mode", got.Seccomp == "2"},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: not so; python reported %s", c.name, out)
		}
	}
}

// seccompI386Script makes an i386-ABI getpid (int 0x80, eax 20) from
// machine code in an executable mapping, then prints its result and the pid.
const seccompI386Script = `
import ctypes, mmap, os
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3]))  # mov eax, 20; int 0x80; ret
f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
print(f(), os.getpid())
`

func TestSeccompKillsI386Syscalls(t *testing.T) {
	requirePython(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, seccompPython, "-I", "-S", "-c", seccompI386Script).Output()
	if f := strings.Fields(string(out)); err != nil || len(f) != 2 || f[0] != f[1] {
		t.Skipf("this host cannot make i386 syscalls (IA32 emulation off?): %v, %q", err, out)
	}
	out, st := runPythonUnderSeccomp(t, seccompI386Script)
	if len(out) > 0 {
		t.Logf("python printed %q", out)
	}
	assertKilledBySIGSYS(t, st)
}
