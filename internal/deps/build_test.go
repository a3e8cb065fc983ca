package deps

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"nimbus/internal/deps/depstest"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
)

func TestMain(m *testing.M) {
	// The isolating executor re-executes this binary to build a sandbox.
	if sandbox.IsInit() {
		sandbox.InitMain()
	}
	os.Exit(m.Run())
}

var (
	greet = depstest.Wheel{Name: "greet", Version: "1.0", Requires: []string{"shout>=0.1"},
		Files: map[string]string{"greet/__init__.py": "import shout\ndef hi(n):\n    return shout.up('hi ' + n)\n"}}
	shout = depstest.Wheel{Name: "shout", Version: "0.2", Files: map[string]string{"shout.py": "def up(s):\n    return s.upper()\n"}}
)

// builders are a builder per way this host can install: in a sandbox
// (as root) and as a plain process.
func builders(t *testing.T, ix Index) map[string]*Builder {
	t.Helper()
	rts, err := python.Discover()
	if err != nil {
		t.Skip("no Python here")
	}
	var usable []python.Runtime
	for _, rt := range rts {
		if FindPip(rt) != "" && rt.Version >= "3.7" {
			usable = append(usable, rt)
		}
	}
	if len(usable) == 0 {
		t.Skip("no pip wheel for any Python here")
	}
	out := map[string]*Builder{"as a plain process": {Runtimes: usable[:1], Index: ix, TempDir: t.TempDir()}}
	if e := sandbox.TestIsolatedExecutor(t); e != nil {
		out["in a sandbox"] = &Builder{Runtimes: usable[:1], Index: ix, Executor: e, TempDir: t.TempDir()}
	}
	return out
}

func entries(t *testing.T, b []byte) map[string]bool {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range zr.File {
		out[f.Name] = true
	}
	return out
}

func TestBuildInstallsTheResolvedWheelsIntoALayer(t *testing.T) {
	ix := depstest.NewIndex(t, greet, shout)
	for name, b := range builders(t, Index{URL: ix.URL}) {
		t.Run(name, func(t *testing.T) {
			var log bytes.Buffer
			rt := b.Runtimes[0].Name
			l, err := b.Build(context.Background(), Request{Runtime: rt, Requirements: []string{"greet==1.0"}, Log: &log})
			if err != nil {
				t.Fatalf("build: %v\n%s", err, log.String())
			}
			if got := strings.Join(l.Packages, " "); got != "greet==1.0 shout==0.2" {
				t.Fatalf("packages %q, want greet==1.0 shout==0.2 (a dependency of greet)", got)
			}
			if l.Unpacked <= 0 {
				t.Errorf("the layer's unpacked size is %d", l.Unpacked)
			}
			files := entries(t, l.Zip)
			for _, want := range []string{"greet/__init__.py", "shout.py", "greet-1.0.dist-info/METADATA"} {
				if !files[want] {
					t.Errorf("the layer lacks %s: %v", want, files)
				}
			}
			var pyc bool
			for f := range files {
				pyc = pyc || strings.HasSuffix(f, ".pyc")
			}
			if !pyc {
				t.Errorf("the layer holds no bytecode: its modules would compile at every cold start")
			}
			// Same set, same layer: the zip is byte for byte the same.
			again, err := b.Build(context.Background(), Request{Runtime: rt, Requirements: []string{"greet"}})
			if err != nil {
				t.Fatal(err)
			}
			if again.Key != l.Key || !bytes.Equal(again.Zip, l.Zip) {
				t.Errorf("the same resolved set built a different layer (key %s then %s)", l.Key, again.Key)
			}
		})
	}
}

func TestBuildFromAFindLinksDirectory(t *testing.T) {
	dir := t.TempDir()
	depstest.WriteDir(t, dir, shout)
	for name, b := range builders(t, Index{FindLinks: []string{dir}, NoIndex: true}) {
		t.Run(name, func(t *testing.T) {
			l, err := b.Build(context.Background(), Request{Runtime: b.Runtimes[0].Name, Requirements: []string{"shout==0.2"}})
			if err != nil {
				t.Fatal(err)
			}
			if !entries(t, l.Zip)["shout.py"] {
				t.Error("the layer lacks shout.py")
			}
		})
	}
}

func TestAnUnresolvableRequirementFailsWithPipsMessage(t *testing.T) {
	ix := depstest.NewIndex(t, shout)
	for name, b := range builders(t, Index{URL: ix.URL}) {
		t.Run(name, func(t *testing.T) {
			_, err := b.Build(context.Background(), Request{Runtime: b.Runtimes[0].Name, Requirements: []string{"shout==9.9"}})
			if !errors.Is(err, ErrBuildFailed) {
				t.Fatalf("err %v, want ErrBuildFailed", err)
			}
			if !strings.Contains(err.Error(), "No matching distribution found for shout==9.9") {
				t.Errorf("err %q does not carry pip's message", err)
			}
		})
	}
}

func TestABuilderWithoutTheRuntimeSaysSo(t *testing.T) {
	b := &Builder{}
	_, err := b.Build(context.Background(), Request{Runtime: "python3.99", Requirements: []string{"x"}})
	if !errors.Is(err, ErrCannotBuild) {
		t.Fatalf("err %v, want ErrCannotBuild", err)
	}
}

func TestCacheKeyFollowsRequirementsRuntimeAndIndex(t *testing.T) {
	base := CacheKey("python3.11", []string{"a==1"}, Index{URL: "http://x/simple/"}, false)
	for name, k := range map[string]string{
		"another requirement": CacheKey("python3.11", []string{"a==2"}, Index{URL: "http://x/simple/"}, false),
		"another runtime":     CacheKey("python3.12", []string{"a==1"}, Index{URL: "http://x/simple/"}, false),
		"another index":       CacheKey("python3.11", []string{"a==1"}, Index{URL: "http://y/simple/"}, false),
		"a find-links dir":    CacheKey("python3.11", []string{"a==1"}, Index{URL: "http://x/simple/", FindLinks: []string{"/w"}}, false),
		"sdists allowed":      CacheKey("python3.11", []string{"a==1"}, Index{URL: "http://x/simple/"}, true),
		"no index":            CacheKey("python3.11", []string{"a==1"}, Index{URL: "http://x/simple/", NoIndex: true}, false),
	} {
		if k == base {
			t.Errorf("%s: same key", name)
		}
	}
	if CacheKey("python3.11", []string{"a==1"}, Index{URL: "http://x/simple/"}, false) != base {
		t.Error("the same request gave another key")
	}
}

func TestFindPipPrefersTheRuntimesOwnWheel(t *testing.T) {
	prefix := t.TempDir()
	dir := filepath.Join(prefix, "lib", "python3.12", "ensurepip", "_bundled")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"pip-9.0.1-py3-none-any.whl", "pip-23.10.1-py3-none-any.whl", "pip-23.2.1-py3-none-any.whl"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	got := FindPip(python.Runtime{Name: "python3.12", Version: "3.12.1", Prefix: prefix})
	if filepath.Base(got) != "pip-23.10.1-py3-none-any.whl" {
		t.Errorf("FindPip = %q, want the newest bundled wheel, pip-23.10.1", got)
	}
}

// sdist is a source distribution whose setup.py, were it ever run,
// would write outside its build directory and open a socket.
func sdist(t *testing.T, marker string) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for name, body := range map[string]string{
		"sneaky-1.0/setup.py": "import socket\nopen(" + strconv.Quote(marker) + ", 'w').write('ran')\nsocket.create_connection(('127.0.0.1', 9))\n" +
			"from setuptools import setup\nsetup(name='sneaky', version='1.0')\n",
		"sneaky-1.0/PKG-INFO": "Metadata-Version: 2.1\nName: sneaky\nVersion: 1.0\n",
	} {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))})
		tw.Write([]byte(body))
	}
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

// A requirement that only a source distribution satisfies is refused
// with pip's message, and its setup.py never runs.
func TestASourceDistributionIsNeverBuilt(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "setup-py-ran")
	ix := depstest.NewIndex(t, shout)
	ix.AddFile("sneaky", "sneaky-1.0.tar.gz", sdist(t, marker))
	for name, b := range builders(t, Index{URL: ix.URL}) {
		t.Run(name, func(t *testing.T) {
			_, err := b.Build(context.Background(), Request{Runtime: b.Runtimes[0].Name, Requirements: []string{"sneaky==1.0"}})
			if !errors.Is(err, ErrBuildFailed) || !strings.Contains(err.Error(), "sneaky==1.0") {
				t.Fatalf("err %v, want a failed build naming sneaky==1.0", err)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the sdist's setup.py ran")
			}
		})
	}
}

// With source distributions allowed, one is built in the sandbox: its
// backend runs there, writes nowhere but its build directory and /tmp,
// and reaches neither this host's loopback nor anything else; the layer
// holds what it built.
func TestASourceDistributionIsBuiltInTheSandboxWhenAllowed(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var reached atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			reached.Add(1)
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ix := depstest.NewIndex(t, shout)
	// The backend tries to write outside its build directory and to open
	// connections, and builds a module that says what it managed.
	ix.AddSdist("sneaky", "1.0", `import socket

def attempt(f):
    try:
        f()
        return True
    except Exception:
        return False

def write_task():
    open("/var/task/escaped", "w").write("x")

def write_root():
    open("/escaped", "w").write("x")

def connect_host():
    socket.create_connection(("127.0.0.1", `+port+`), timeout=2).close()

def connect_out():
    socket.create_connection(("192.0.2.1", 80), timeout=2).close()

seen = {"wrote_task": attempt(write_task), "wrote_root": attempt(write_root),
        "reached_host": attempt(connect_host), "reached_out": attempt(connect_out)}
module = "SEEN = %r\n" % (seen,)
`)
	b := builders(t, Index{URL: ix.URL})["in a sandbox"]
	if b == nil {
		t.Skip("source builds need the sandbox")
	}
	var log bytes.Buffer
	l, err := b.Build(context.Background(), Request{Runtime: b.Runtimes[0].Name, Requirements: []string{"sneaky==1.0", "shout==0.2"}, AllowSdist: true, Log: &log})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	if got := strings.Join(l.Packages, " "); got != "shout==0.2 sneaky==1.0" {
		t.Errorf("packages %q", got)
	}
	zr, err := zip.NewReader(bytes.NewReader(l.Zip), int64(len(l.Zip)))
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	for _, f := range zr.File {
		if f.Name == "sneaky.py" {
			r, _ := f.Open()
			b, _ := io.ReadAll(r)
			seen = string(b)
		}
	}
	want := "SEEN = {'wrote_task': False, 'wrote_root': False, 'reached_host': False, 'reached_out': False}"
	if strings.TrimSpace(seen) != want {
		t.Errorf("the backend reports %q, want %q", seen, want)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the build reached this host's loopback %d times", n)
	}
	// Not allowed, the same requirement fails: only wheels are fetched.
	if _, err := b.Build(context.Background(), Request{Runtime: b.Runtimes[0].Name, Requirements: []string{"sneaky==1.0"}}); !errors.Is(err, ErrBuildFailed) {
		t.Errorf("without AllowSdist: %v, want ErrBuildFailed", err)
	}
}
