//go:build linux && amd64

package sandbox

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The seccomp policy is a deny list on top of a default of ALLOW: a full
// allow list is too fragile for arbitrary Python C extensions. The filter
//
//  1. kills the whole process (SECCOMP_RET_KILL_PROCESS, SIGSYS) for any
//     syscall not made through the native x86_64 ABI: a foreign
//     seccomp_data.arch (the i386 "int 0x80" ABI) or an x32 syscall number
//     (bit 0x40000000 set);
//  2. fails each syscall of DeniedSyscalls with its errno, some only when
//     their arguments match (see DeniedSyscall.When);
//  3. allows everything else.

// DeniedSyscall is one entry of the seccomp deny list.
type DeniedSyscall struct {
	Name  string     // name as in syscalls(2)
	Nr    uint32     // x86_64 syscall number
	Errno unix.Errno // what the syscall fails with when denied
	When  string     // the condition under which it is denied; "" means always
	check argChecker // nil for an unconditional denial
}

// argChecker emits the argument test of a conditional denial. The
// accumulator holds nothing useful on entry; the code must end by jumping to
// deny or allow on every path.
type argChecker func(a *bpfAsm, deny, allow bpfLabel)

// cloneNamespaceFlags are the clone(2) flags that create namespaces.
// CLONE_NEWTIME (0x80) means a time namespace only to clone3 and unshare; to
// clone(2) that bit is part of the exit signal, and no valid signal has it,
// so denying it there costs nothing.
const cloneNamespaceFlags = unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP |
	unix.CLONE_NEWTIME

// DeniedSyscalls returns the seccomp deny list, in filter order. It returns
// a fresh slice on every call; callers may modify it.
func DeniedSyscalls() []DeniedSyscall {
	always := func(name string, nr uintptr) DeniedSyscall {
		return DeniedSyscall{Name: name, Nr: uint32(nr), Errno: unix.EPERM}
	}
	return []DeniedSyscall{
		// Namespaces and the mount table: the sandbox's own isolation.
		always("mount", unix.SYS_MOUNT),
		always("umount2", unix.SYS_UMOUNT2),
		always("pivot_root", unix.SYS_PIVOT_ROOT),
		always("chroot", unix.SYS_CHROOT),
		always("unshare", unix.SYS_UNSHARE),
		always("setns", unix.SYS_SETNS),
		always("fsopen", unix.SYS_FSOPEN),
		always("fsconfig", unix.SYS_FSCONFIG),
		always("fsmount", unix.SYS_FSMOUNT),
		always("fspick", unix.SYS_FSPICK),
		always("move_mount", unix.SYS_MOVE_MOUNT),
		always("open_tree", unix.SYS_OPEN_TREE),
		always("mount_setattr", unix.SYS_MOUNT_SETATTR),
		always("open_by_handle_at", unix.SYS_OPEN_BY_HANDLE_AT),
		always("name_to_handle_at", unix.SYS_NAME_TO_HANDLE_AT),
		{
			Name: "clone", Nr: unix.SYS_CLONE, Errno: unix.EPERM,
			When: "flags (arg0) contain a CLONE_NEW* namespace flag",
			check: func(a *bpfAsm, deny, allow bpfLabel) {
				// The kernel uses only the low 32 bits of clone's flags.
				a.loadArgLow(0)
				a.jset(cloneNamespaceFlags, deny, allow)
			},
		},
		{
			// clone3's flags are behind a pointer the filter cannot read.
			// ENOSYS makes glibc fall back to clone, which is checked.
			Name: "clone3", Nr: unix.SYS_CLONE3, Errno: unix.ENOSYS,
		},
		// Other processes' memory.
		always("ptrace", unix.SYS_PTRACE),
		always("process_vm_readv", unix.SYS_PROCESS_VM_READV),
		always("process_vm_writev", unix.SYS_PROCESS_VM_WRITEV),
		// Large, frequently vulnerable kernel interfaces.
		always("keyctl", unix.SYS_KEYCTL),
		always("add_key", unix.SYS_ADD_KEY),
		always("request_key", unix.SYS_REQUEST_KEY),
		always("bpf", unix.SYS_BPF),
		always("perf_event_open", unix.SYS_PERF_EVENT_OPEN),
		always("io_uring_setup", unix.SYS_IO_URING_SETUP),
		always("io_uring_enter", unix.SYS_IO_URING_ENTER),
		always("io_uring_register", unix.SYS_IO_URING_REGISTER),
		always("userfaultfd", unix.SYS_USERFAULTFD),
		always("lookup_dcookie", unix.SYS_LOOKUP_DCOOKIE),
		// Whole-machine administration.
		always("kexec_load", unix.SYS_KEXEC_LOAD),
		always("kexec_file_load", unix.SYS_KEXEC_FILE_LOAD),
		always("init_module", unix.SYS_INIT_MODULE),
		always("finit_module", unix.SYS_FINIT_MODULE),
		always("delete_module", unix.SYS_DELETE_MODULE),
		always("reboot", unix.SYS_REBOOT),
		always("swapon", unix.SYS_SWAPON),
		always("swapoff", unix.SYS_SWAPOFF),
		always("acct", unix.SYS_ACCT),
		always("quotactl", unix.SYS_QUOTACTL),
		always("syslog", unix.SYS_SYSLOG),
		always("settimeofday", unix.SYS_SETTIMEOFDAY),
		always("clock_settime", unix.SYS_CLOCK_SETTIME),
		always("clock_adjtime", unix.SYS_CLOCK_ADJTIME),
		always("adjtimex", unix.SYS_ADJTIMEX),
		always("sethostname", unix.SYS_SETHOSTNAME),
		always("setdomainname", unix.SYS_SETDOMAINNAME),
		always("iopl", unix.SYS_IOPL),
		always("ioperm", unix.SYS_IOPERM),
		always("vhangup", unix.SYS_VHANGUP),
		{
			Name: "ioctl", Nr: unix.SYS_IOCTL, Errno: unix.EPERM,
			When: "the request (arg1) is TIOCSTI or TIOCLINUX",
			check: func(a *bpfAsm, deny, allow bpfLabel) {
				// ioctl's cmd is an unsigned int: the kernel ignores the
				// high 32 bits, so the filter does too.
				a.loadArgLow(1)
				a.jeq(unix.TIOCSTI, deny, bpfNext)
				a.jeq(unix.TIOCLINUX, deny, allow)
			},
		},
		{
			Name: "personality", Nr: unix.SYS_PERSONALITY, Errno: unix.EPERM,
			When: "the persona (arg0) is neither 0 (PER_LINUX) nor 0xffffffff (query)",
			check: func(a *bpfAsm, deny, allow bpfLabel) {
				// personality takes an unsigned int: low 32 bits only.
				a.loadArgLow(0)
				a.jeq(0, allow, bpfNext)
				a.jeq(0xffffffff, allow, deny)
			},
		},
	}
}

// x32SyscallBit marks a syscall number of the x32 ABI (__X32_SYSCALL_BIT).
const x32SyscallBit = 0x40000000

// Offsets into struct seccomp_data (little-endian).
const (
	seccompDataNr   = 0
	seccompDataArch = 4
	seccompDataArgs = 16
)

// seccompFilter assembles the sandbox's seccomp program. It is a pure
// function of DeniedSyscalls.
func seccompFilter() ([]unix.SockFilter, error) {
	a := &bpfAsm{}
	kill, allow := a.newLabel(), a.newLabel()
	errnoRet := map[unix.Errno]bpfLabel{}
	type pendingCheck struct {
		at bpfLabel
		d  DeniedSyscall
	}
	var checks []pendingCheck

	a.loadAbs(seccompDataArch)
	a.jeq(unix.AUDIT_ARCH_X86_64, bpfNext, kill)
	a.loadAbs(seccompDataNr)
	a.jset(x32SyscallBit, kill, bpfNext)
	for _, d := range DeniedSyscalls() {
		target, ok := errnoRet[d.Errno]
		if !ok {
			target = a.newLabel()
			errnoRet[d.Errno] = target
		}
		if d.check != nil {
			target = a.newLabel()
			checks = append(checks, pendingCheck{target, d})
		}
		a.jeq(d.Nr, target, bpfNext)
	}
	a.ret(unix.SECCOMP_RET_ALLOW)

	for _, c := range checks {
		a.mark(c.at)
		c.d.check(a, errnoRet[c.d.Errno], allow)
	}
	a.mark(allow)
	a.ret(unix.SECCOMP_RET_ALLOW)
	for _, e := range []unix.Errno{unix.EPERM, unix.ENOSYS} {
		if l, ok := errnoRet[e]; ok {
			a.mark(l)
			a.ret(unix.SECCOMP_RET_ERRNO | uint32(e)&unix.SECCOMP_RET_DATA)
			delete(errnoRet, e)
		}
	}
	if len(errnoRet) != 0 {
		return nil, fmt.Errorf("seccomp: deny list uses an errno the filter does not emit: %v", errnoRet)
	}
	a.mark(kill)
	a.ret(unix.SECCOMP_RET_KILL_PROCESS)
	return a.assemble()
}

// LoadSeccomp installs the sandbox's seccomp filter on the calling process
// (all threads: SECCOMP_FILTER_FLAG_TSYNC), so that it applies to the program
// exec'd next. It requires no_new_privs to be set already (it sets it too,
// harmlessly). The filter cannot be removed; a second call stacks a second
// copy.
//
// Only on kernels without seccomp(2) (before 3.17) does it fall back to
// prctl(PR_SET_SECCOMP), which filters the calling thread alone; then it
// leaves the calling goroutine locked to that thread, and the caller must
// exec from the same goroutine.
func LoadSeccomp() error {
	filter, err := seccompFilter()
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}

	// no_new_privs is per thread and seccomp checks the calling thread's, so
	// both must happen on one thread. TSYNC copies no_new_privs to the others.
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("seccomp: set no_new_privs: %w", err)
	}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER,
		unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	switch {
	case errno == 0 && r == 0:
		runtime.UnlockOSThread()
		return nil
	case errno == 0:
		runtime.UnlockOSThread()
		return fmt.Errorf("seccomp: thread %d could not be synchronized to the filter", r)
	case errors.Is(errno, unix.ENOSYS):
		err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0)
		runtime.KeepAlive(filter)
		if err != nil {
			runtime.UnlockOSThread()
			return fmt.Errorf("seccomp: prctl(PR_SET_SECCOMP): %w", err)
		}
		return nil // the goroutine stays locked to the filtered thread
	default:
		runtime.UnlockOSThread()
		return fmt.Errorf("seccomp: seccomp(SECCOMP_SET_MODE_FILTER, TSYNC): %w", errno)
	}
}

// bpfAsm assembles a classic BPF program from straight-line code with
// forward jumps to labels. The zero value is an empty program. It is not
// safe for concurrent use.
type bpfAsm struct {
	insns []unix.SockFilter
	jumps []bpfJump // conditional jumps whose offsets are not resolved yet
	marks []int     // marks[l] is the instruction index of label l, -1 if unmarked
	errs  []error   // assembly errors found before assemble
}

// bpfLabel names a position in the program; bpfNext is the instruction
// that follows the jump.
type bpfLabel int

const bpfNext bpfLabel = -1

type bpfJump struct {
	at     int
	jt, jf bpfLabel
}

func (a *bpfAsm) newLabel() bpfLabel {
	a.marks = append(a.marks, -1)
	return bpfLabel(len(a.marks) - 1)
}

// mark places l at the next instruction. A label is marked once.
func (a *bpfAsm) mark(l bpfLabel) {
	if a.marks[l] != -1 {
		a.errs = append(a.errs, fmt.Errorf("bpf: label %d marked twice", l))
	}
	a.marks[l] = len(a.insns)
}

func (a *bpfAsm) emit(code uint16, k uint32) {
	a.insns = append(a.insns, unix.SockFilter{Code: code, K: k})
}

// loadAbs loads the 32-bit word at offset off of seccomp_data into A.
func (a *bpfAsm) loadAbs(off uint32) { a.emit(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off) }

// loadArgLow loads the low 32 bits of syscall argument i into A.
func (a *bpfAsm) loadArgLow(i int) { a.loadAbs(seccompDataArgs + 8*uint32(i)) }

// jeq jumps to jt if A == k, else to jf.
func (a *bpfAsm) jeq(k uint32, jt, jf bpfLabel) {
	a.jump(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, k, jt, jf)
}

// jset jumps to jt if A&k != 0, else to jf.
func (a *bpfAsm) jset(k uint32, jt, jf bpfLabel) {
	a.jump(unix.BPF_JMP|unix.BPF_JSET|unix.BPF_K, k, jt, jf)
}

func (a *bpfAsm) jump(code uint16, k uint32, jt, jf bpfLabel) {
	a.jumps = append(a.jumps, bpfJump{at: len(a.insns), jt: jt, jf: jf})
	a.emit(code, k)
}

// ret returns k, a SECCOMP_RET_* action, to the kernel.
func (a *bpfAsm) ret(k uint32) { a.emit(unix.BPF_RET|unix.BPF_K, k) }

// assemble resolves the jumps and returns the program. It fails if a jump
// targets an unmarked label, goes backwards or lies beyond the 255
// instructions a conditional jump can skip, or if the program is empty or
// longer than BPF_MAXINSNS.
func (a *bpfAsm) assemble() ([]unix.SockFilter, error) {
	errs := append([]error{}, a.errs...)
	offset := func(at int, l bpfLabel) uint8 {
		if l == bpfNext {
			return 0
		}
		target := a.marks[l]
		switch d := target - at - 1; {
		case target < 0:
			errs = append(errs, fmt.Errorf("bpf: instruction %d jumps to unmarked label %d", at, l))
		case d < 0:
			errs = append(errs, fmt.Errorf("bpf: instruction %d jumps backwards to label %d", at, l))
		case d > 255:
			errs = append(errs, fmt.Errorf("bpf: instruction %d jumps %d instructions ahead, more than 255", at, d))
		default:
			return uint8(d)
		}
		return 0
	}
	for _, j := range a.jumps {
		a.insns[j.at].Jt = offset(j.at, j.jt)
		a.insns[j.at].Jf = offset(j.at, j.jf)
	}
	if n := len(a.insns); n == 0 || n > bpfMaxInsns {
		errs = append(errs, fmt.Errorf("bpf: program has %d instructions, want 1 to %d", n, bpfMaxInsns))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return a.insns, nil
}

// bpfMaxInsns is the kernel's limit on a classic BPF program (BPF_MAXINSNS).
const bpfMaxInsns = 4096
