package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// InitArg is argv[1] of the re-executed nimbus binary that builds a
// sandbox from the inside.
const InitArg = "sandbox-init"

// initConfigFD is the descriptor on which sandbox-init reads its config;
// the instance protocol's descriptors (3 and 4) come before it.
const initConfigFD = 5

// initConfig is everything sandbox-init needs, sent by the worker over
// initConfigFD once the process sits in its cgroup.
type initConfig struct {
	Root     string            `json:"root"` // an empty host directory to build the root on
	Binds    []bindMount       `json:"binds"`
	Symlinks [][2]string       `json:"symlinks"` // {target, link path}
	Files    map[string]string `json:"files"`    // small files to create, path -> content
	TmpMB    int               `json:"tmp_mb"`
	UID      int               `json:"uid"`
	GID      int               `json:"gid"`
	Path     string            `json:"path"`
	Args     []string          `json:"args"`
	Env      []string          `json:"env"`
	Dir      string            `json:"dir"`
	// KeepFDs is the highest descriptor the program inherits (the
	// protocol's); every higher one is closed on exec.
	KeepFDs int `json:"keep_fds"`
	// Slave makes the sandbox's mounts slaves of the host's instead of
	// private, so that its /var/task receives the code mounted later on
	// the host side (a pre-started sandbox). Nothing propagates back.
	Slave bool `json:"slave"`
}

// IsInit reports whether this process was started as sandbox-init.
func IsInit() bool { return len(os.Args) > 1 && os.Args[1] == InitArg }

// InitMain builds the sandbox from the inside and execs the program. It
// never returns: on any failure it prints the reason to stderr (the
// instance's log) and exits with status 125.
//
// It runs as root in fresh mount, pid, network, ipc and uts namespaces,
// already placed in its cgroup. Order matters: mounts and pivot_root
// while privileged; then limits; then the drop to an unprivileged user
// with no capabilities and no_new_privs; seccomp last; then exec.
func InitMain() {
	if len(os.Args) > 2 && os.Args[2] == reaperArg {
		reaperMain(os.Args[3:])
	}
	runtime.LockOSThread() // capability bounding sets are per thread
	if err := initSandbox(); err != nil {
		fmt.Fprintf(os.Stderr, "nimbus sandbox-init: %v\n", err)
		os.Exit(125)
	}
	os.Exit(125) // not reached: initSandbox execs
}

func initSandbox() error {
	f := os.NewFile(initConfigFD, "sandbox-config")
	var cfg initConfig
	if err := json.NewDecoder(f).Decode(&cfg); err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	f.Close()
	// The cgroup namespace is made now, after the worker placed us in
	// our cgroup, so that it is rooted there.
	if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil && err != unix.EINVAL {
		return fmt.Errorf("unshare cgroup namespace: %w", err)
	}
	if err := buildRoot(&cfg); err != nil {
		return err
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("bring up loopback: %w", err)
	}
	if err := unix.Sethostname([]byte("nimbus")); err != nil {
		return fmt.Errorf("sethostname: %w", err)
	}
	for _, l := range []struct {
		res int
		val uint64
	}{
		{unix.RLIMIT_NOFILE, 1024},
		{unix.RLIMIT_CORE, 0},
		{unix.RLIMIT_FSIZE, uint64(cfg.TmpMB) << 20},
	} {
		if err := unix.Setrlimit(l.res, &unix.Rlimit{Cur: l.val, Max: l.val}); err != nil {
			return fmt.Errorf("setrlimit %d: %w", l.res, err)
		}
	}
	if err := dropPrivileges(cfg.UID, cfg.GID); err != nil {
		return err
	}
	if err := unix.CloseRange(uint(cfg.KeepFDs+1), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	if err := os.Chdir(cfg.Dir); err != nil {
		return fmt.Errorf("chdir %s: %w", cfg.Dir, err)
	}
	if err := LoadSeccomp(); err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	err := syscall.Exec(cfg.Path, cfg.Args, cfg.Env)
	return fmt.Errorf("exec %s: %w", cfg.Path, err)
}

const (
	roFlags  = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV
	tmpFlags = unix.MS_NOSUID | unix.MS_NODEV
)

// buildRoot makes a tmpfs root from the config's bind mounts and files,
// with /tmp, /dev and /proc, and pivots into it. Every path below the new
// root is created by this function on a fresh tmpfs, so no path it
// resolves can hold a symlink it did not make itself.
func buildRoot(cfg *initConfig) error {
	propagation := uintptr(unix.MS_PRIVATE)
	if cfg.Slave {
		propagation = unix.MS_SLAVE
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|propagation, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := cfg.Root
	if err := unix.Mount("nimbus-root", root, "tmpfs", tmpFlags, "size=1m,mode=0755"); err != nil {
		return fmt.Errorf("mount root tmpfs: %w", err)
	}
	in := func(p string) string { return filepath.Join(root, p) }

	binds := append([]bindMount(nil), cfg.Binds...)
	sort.SliceStable(binds, func(i, j int) bool { return strings.Count(binds[i].Target, "/") < strings.Count(binds[j].Target, "/") })
	for _, b := range binds {
		if err := bindReadOnly(b.Source, in(b.Target), b.File); err != nil {
			return err
		}
	}
	for _, l := range cfg.Symlinks {
		if _, err := os.Lstat(in(l[1])); err == nil {
			continue // a bind mount already provides this path
		}
		if err := os.MkdirAll(filepath.Dir(in(l[1])), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(l[0], in(l[1])); err != nil {
			return fmt.Errorf("symlink %s: %w", l[1], err)
		}
	}
	for p, content := range cfg.Files {
		if err := os.MkdirAll(filepath.Dir(in(p)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(in(p), []byte(content), 0o444); err != nil {
			return err
		}
	}
	// /tmp: the instance's only writable place, size-limited.
	if err := mountTmpfs(in("/tmp"), fmt.Sprintf("size=%dm,mode=1777", cfg.TmpMB), tmpFlags); err != nil {
		return err
	}
	if err := buildDev(in("/dev")); err != nil {
		return err
	}
	if err := mountProc(in("/proc")); err != nil {
		return err
	}
	if err := pivot(root); err != nil {
		return err
	}
	// The root itself becomes read-only once everything is in place.
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|roFlags, ""); err != nil {
		return fmt.Errorf("remount root read-only: %w", err)
	}
	return nil
}

func bindReadOnly(src, dst string, file bool) error {
	if file {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		fh, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o444)
		if err != nil {
			return err
		}
		fh.Close()
	} else if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(src, dst, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", src, err)
	}
	if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|roFlags, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", src, err)
	}
	return nil
}

func mountTmpfs(dst, opts string, flags uintptr) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dst, "tmpfs", flags, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dst, err)
	}
	return nil
}

// buildDev makes a minimal /dev: the five harmless character devices,
// bound from the host, and the usual symlinks.
func buildDev(dev string) error {
	if err := mountTmpfs(dev, "size=64k,mode=0755", unix.MS_NOSUID|unix.MS_NOEXEC); err != nil {
		return err
	}
	for _, name := range []string{"null", "zero", "random", "urandom", "full"} {
		dst := filepath.Join(dev, name)
		fh, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o666)
		if err != nil {
			return err
		}
		fh.Close()
		if err := unix.Mount("/dev/"+name, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", name, err)
		}
		if err := unix.Mount("", dst, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("remount /dev/%s: %w", name, err)
		}
	}
	for link, target := range map[string]string{
		"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
	} {
		if err := os.Symlink(target, filepath.Join(dev, link)); err != nil {
			return err
		}
	}
	return unix.Mount("", dev, "", unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, "")
}

// mountProc mounts a proc for the new pid namespace and covers the parts
// of it that describe or control the host.
func mountProc(proc string) error {
	if err := os.MkdirAll(proc, 0o555); err != nil {
		return err
	}
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mount proc: %w", err)
	}
	for _, p := range []string{"sys", "sysrq-trigger", "irq", "bus", "fs"} {
		path := filepath.Join(proc, p)
		if _, err := os.Lstat(path); err != nil {
			continue
		}
		if err := unix.Mount(path, path, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind /proc/%s: %w", p, err)
		}
		if err := unix.Mount("", path, "", unix.MS_BIND|unix.MS_REMOUNT|roFlags|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("remount /proc/%s read-only: %w", p, err)
		}
	}
	for _, p := range []string{"kcore", "keys", "timer_list", "sched_debug", "kallsyms"} {
		path := filepath.Join(proc, p)
		if _, err := os.Lstat(path); err != nil {
			continue
		}
		if err := unix.Mount("/dev/null", path, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("mask /proc/%s: %w", p, err)
		}
	}
	return nil
}

// pivot makes root the new / and detaches the old one.
func pivot(root string) error {
	if err := os.Chdir(root); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one; the
	// detach below then removes it without needing a directory for it.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	return os.Chdir("/")
}

// loopbackUp brings up lo in the new network namespace: the only
// interface there.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// dropPrivileges empties the capability bounding set, then becomes
// uid:gid with no supplementary groups (which clears every other
// capability set), and sets no_new_privs.
func dropPrivileges(uid, gid int) error {
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("drop capability %d: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	// Changing credentials cleared the parent-death signal that the worker
	// set at clone: arm it again, so a worker that dies takes its
	// sandboxes with it (a restarted worker also sweeps their cgroups).
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("parent-death signal: %w", err)
	}
	return nil
}
