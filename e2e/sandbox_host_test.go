package e2e

import (
	"net/url"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
)

// TestSandboxHidesTheHost checks what a handler can see and change of
// the host: the file system, the environment, processes, privileges,
// kernel interfaces and the network.
func TestSandboxHidesTheHost(t *testing.T) {
	// nimbus dev inherits the test's environment; a handler must not.
	t.Setenv("NIMBUS_SECRET_MARKER", "leak-4f1c")
	n := sandboxNode(t)
	cwd, _ := os.Getwd()

	t.Run("writing to the code, /etc, the standard library and the root is refused", func(t *testing.T) {
		deployPy(t, n, "writer", nil, `
def handler(event, context):
    stdlib = os.path.dirname(os.__file__)
    targets = ['/var/task/new.py', '/var/task/main.py', '/etc/new', '/etc/passwd',
               stdlib + '/new.py', os.__file__, '/new', '/var/new', '/var/runtime/new',
               '/dev/new', '/proc/sys/kernel/hostname']
    if os.path.exists('/proc/sysrq-trigger'):  # not every kernel has it
        targets.append('/proc/sysrq-trigger')
    site = os.path.join(stdlib, 'site-packages')
    if os.path.isdir(site):
        targets.append(os.path.join(site, 'evil.pth'))
    out = {}
    for p in targets:
        try:
            with open(p, 'a') as f:
                f.write('pwned\n')
            out[p] = 'written'
        except OSError as e:
            out[p] = errname(e)
    try:
        os.mkdir(stdlib + '/evil')
        out['mkdir ' + stdlib] = 'created'
    except OSError as e:
        out['mkdir ' + stdlib] = errname(e)
    return out
`)
		var res map[string]string
		observe(t, n, "writer", nil, &res)
		if len(res) < 11 {
			t.Fatalf("the handler tried too few paths: %v", res)
		}
		for p, got := range res {
			if got != "EROFS" && got != "EACCES" && got != "EPERM" {
				t.Errorf("writing %s: got %s, want EROFS, EACCES or EPERM", p, got)
			}
		}
	})

	t.Run("host files and directories are not there", func(t *testing.T) {
		deployPy(t, n, "reader", nil, `
def handler(event, context):
    out = {'root': sorted(os.listdir('/')), 'etc': sorted(os.listdir('/etc')),
           'prefix': sys.base_prefix, 'ancestors': {}, 'missing': {}}
    # Directories above the interpreter's prefix exist only as the way to it.
    parts = sys.base_prefix.strip('/').split('/')
    for i in range(1, len(parts)):
        d = '/' + '/'.join(parts[:i])
        out['ancestors'][d] = sorted(os.listdir(d))
    for p in ['/etc/shadow', '/etc/sudoers', '/home', '/sys', '/boot', '/run',
              '/root/.ssh', '/root/.bash_history', '/var/lib', '/var/log',
              event['data'], event['cwd'], '/work']:
        try:
            os.stat(p)
            out['missing'][p] = 'present'
        except OSError as e:
            out['missing'][p] = errname(e)
    with open('/etc/hostname') as f:
        out['hostname'] = f.read().strip()
    return out
`)
		var res struct {
			Root, Etc []string
			Prefix    string
			Ancestors map[string][]string
			Missing   map[string]string
			Hostname  string
		}
		observe(t, n, "reader", map[string]string{"data": n.data, "cwd": cwd}, &res)
		allowed := []string{"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr", "var"}
		allowed = append(allowed, strings.Split(strings.Trim(res.Prefix, "/"), "/")[0])
		for _, e := range res.Root {
			if !slices.Contains(allowed, e) {
				t.Errorf("/ holds %q; want only %v", e, allowed)
			}
		}
		for d, entries := range res.Ancestors {
			next := strings.Split(strings.TrimPrefix(res.Prefix, d+"/"), "/")[0]
			if !slices.Equal(entries, []string{next}) {
				t.Errorf("%s holds %v; want only %q, the way to the runtime %s", d, entries, next, res.Prefix)
			}
		}
		for _, e := range res.Etc {
			if !slices.Contains([]string{"passwd", "group", "hosts", "hostname", "ld.so.cache", "localtime", "resolv.conf"}, e) {
				t.Errorf("/etc holds %q, which is not one of the sandbox's own files", e)
			}
		}
		for p, got := range res.Missing {
			if got != "ENOENT" {
				t.Errorf("%s: got %s, want ENOENT", p, got)
			}
		}
		if res.Hostname != "nimbus" {
			t.Errorf("/etc/hostname says %q, want nimbus", res.Hostname)
		}
	})

	t.Run("the environment holds only the platform's and the function's variables", func(t *testing.T) {
		deployPy(t, n, "env", map[string]any{"env": map[string]string{"MY_SETTING": "on"}}, `
def handler(event, context):
    return dict(os.environ)
`)
		var env map[string]string
		observe(t, n, "env", nil, &env)
		if env["MY_SETTING"] != "on" || env["AWS_LAMBDA_FUNCTION_NAME"] != "env" {
			t.Fatalf("the function's own or the Lambda variables are missing: %v", env)
		}
		for k, v := range env {
			platform := k == "PATH" || k == "LANG" || k == "TZ" || k == "_HANDLER" || k == "LC_CTYPE" ||
				strings.HasPrefix(k, "PYTHON") || strings.HasPrefix(k, "LAMBDA_") || strings.HasPrefix(k, "AWS_")
			if !platform && k != "MY_SETTING" {
				t.Errorf("%s=%s comes from neither the platform nor the function", k, v)
			}
			if strings.Contains(v, "leak-4f1c") {
				t.Errorf("%s carries the test process's secret", k)
			}
		}
	})

	t.Run("/proc shows only the sandbox's own processes", func(t *testing.T) {
		deployPy(t, n, "procs", nil, `
def handler(event, context):
    with open('/proc/1/cmdline', 'rb') as f:
        cmd1 = f.read().split(b'\0')[0].decode()
    return {'pid': os.getpid(), 'ppid': os.getppid(), 'cmd1': cmd1,
            'procs': sorted(int(e) for e in os.listdir('/proc') if e.isdigit())}
`)
		var res struct {
			Pid, Ppid int
			Cmd1      string
			Procs     []int
		}
		observe(t, n, "procs", nil, &res)
		if res.Pid != 1 || res.Ppid != 0 || !strings.Contains(path.Base(res.Cmd1), "python") {
			t.Errorf("the handler runs as pid %d (parent %d), pid 1 is %q; want python as pid 1", res.Pid, res.Ppid, res.Cmd1)
		}
		if !slices.Equal(res.Procs, []int{1}) {
			t.Errorf("/proc lists processes %v; want only [1]", res.Procs)
		}
	})

	t.Run("the handler has no privileges, no_new_privs and a seccomp filter", func(t *testing.T) {
		deployPy(t, n, "status", nil, `
def handler(event, context):
    out = {}
    with open('/proc/self/status') as f:
        for line in f:
            k, _, v = line.partition(':')
            out[k] = v.strip()
    return out
`)
		var st map[string]string
		observe(t, n, "status", nil, &st)
		want := map[string]string{"NoNewPrivs": "1", "Seccomp": "2"}
		for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			want[c] = "0000000000000000"
		}
		for k, v := range want {
			if st[k] != v {
				t.Errorf("%s: %q, want %q", k, st[k], v)
			}
		}
		for _, k := range []string{"Uid", "Gid"} {
			if f := strings.Fields(st[k]); len(f) != 4 || slices.Contains(f, "0") {
				t.Errorf("%s: %q; want an unprivileged id throughout", k, st[k])
			}
		}
		if st["Groups"] != "" {
			t.Errorf("Groups: %q, want none", st["Groups"])
		}
	})

	t.Run("mount, unshare, ptrace, keyctl, setuid(0) and friends are refused", func(t *testing.T) {
		deployPy(t, n, "syscalls", nil, `
import ctypes, time
libc = ctypes.CDLL(None, use_errno=True)

def call(fn, *args):
    ctypes.set_errno(0)
    if fn(*args) == -1:
        e = ctypes.get_errno()
        return errno.errorcode.get(e, str(e))
    return 'allowed'

def handler(event, context):
    out = {}
    os.makedirs('/tmp/mnt', exist_ok=True)
    out['mount tmpfs'] = call(libc.mount, b'none', b'/tmp/mnt', b'tmpfs', ctypes.c_ulong(0), None)
    out['mount bind'] = call(libc.mount, b'/tmp', b'/tmp/mnt', None, ctypes.c_ulong(0x1000), None)
    out['umount /tmp'] = call(libc.umount2, b'/tmp', 2)
    out['unshare user'] = call(libc.unshare, 0x10000000)
    out['unshare net'] = call(libc.unshare, 0x40000000)
    out['unshare mount'] = call(libc.unshare, 0x00020000)
    out['chroot'] = call(libc.chroot, b'/tmp')
    out['ptrace traceme'] = call(libc.ptrace, 0, 0, None, None)
    child = os.fork()
    if child == 0:
        time.sleep(30)
        os._exit(0)
    out['ptrace attach'] = call(libc.ptrace, 16, child, None, None)
    os.kill(child, 9)
    os.waitpid(child, 0)
    out['keyctl'] = call(libc.syscall, 250, 0, -3, 1)
    out['add_key'] = call(libc.syscall, 248, b'user', b'nimbus', b'secret', 6, -3)
    out['bpf'] = call(libc.syscall, 321, 0, None, 0)
    out['perf_event_open'] = call(libc.syscall, 298, None, 0, -1, -1, 0)
    out['sethostname'] = call(libc.sethostname, b'evil', 4)
    for name, fn in [('setuid(0)', os.setuid), ('setgid(0)', os.setgid)]:
        try:
            fn(0)
            out[name] = 'allowed'
        except OSError as e:
            out[name] = errname(e)
    return out
`)
		var res map[string]string
		observe(t, n, "syscalls", nil, &res)
		if len(res) < 16 {
			t.Fatalf("the handler tried too few calls: %v", res)
		}
		for call, got := range res {
			if got != "EPERM" {
				t.Errorf("%s: got %s, want EPERM", call, got)
			}
		}
	})

	t.Run("the network has only loopback and cannot reach the host's loopback", func(t *testing.T) {
		deployPy(t, n, "network", map[string]any{"timeout": "10s"}, `
import socket
def handler(event, context):
    out = {'interfaces': sorted(name for _, name in socket.if_nameindex())}
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect(('127.0.0.1', event['port']))
        out['connect'] = 'connected'
    except OSError as e:
        out['connect'] = errname(e) if e.errno else type(e).__name__
    finally:
        s.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(3)
    u.bind(('127.0.0.1', 0))
    u.sendto(b'ping', u.getsockname())
    out['udp'] = u.recv(16).decode()
    u.close()
    return out
`)
		u, err := url.Parse(n.url)
		if err != nil || u.Hostname() != "127.0.0.1" {
			t.Fatalf("the node's URL %q is not on 127.0.0.1", n.url)
		}
		port := 0
		for _, c := range u.Port() {
			port = port*10 + int(c-'0')
		}
		var res struct {
			Interfaces []string
			Connect    string
			UDP        string
		}
		observe(t, n, "network", map[string]int{"port": port}, &res)
		if !slices.Equal(res.Interfaces, []string{"lo"}) {
			t.Errorf("interfaces %v; want only lo", res.Interfaces)
		}
		if res.Connect != "ECONNREFUSED" {
			t.Errorf("connecting to the node's own port %d from inside: %s; want ECONNREFUSED", port, res.Connect)
		}
		if res.UDP != "ping" {
			t.Errorf("a UDP socket on the sandbox's loopback did not echo: %q", res.UDP)
		}
	})

	t.Run("one function's /tmp is invisible to another", func(t *testing.T) {
		tmpHandler := `
def handler(event, context):
    if 'write' in event:
        with open('/tmp/' + event['write'], 'w') as f:
            f.write('secret')
    return {'tmp': sorted(os.listdir('/tmp'))}
`
		deployPy(t, n, "tmp-a", nil, tmpHandler)
		deployPy(t, n, "tmp-b", nil, tmpHandler)
		var a, b struct{ Tmp []string }
		observe(t, n, "tmp-a", map[string]string{"write": "secret-of-a"}, &a)
		observe(t, n, "tmp-a", nil, &a)
		if !slices.Contains(a.Tmp, "secret-of-a") {
			t.Fatalf("function a's warm instance lost its own /tmp file: %v", a.Tmp)
		}
		observe(t, n, "tmp-b", nil, &b)
		if len(b.Tmp) != 0 {
			t.Fatalf("function b's /tmp holds %v; want it empty", b.Tmp)
		}
	})
}
