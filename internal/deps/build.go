// Package deps owns dependency layers: a function's requirements.txt
// checked (Parse), its wheels fetched by pip on the server from the
// configured index, installed by pip inside a sandbox with no network
// into a fresh directory, and zipped into a layer whose digest names
// the resolved set (Builder.Build). It neither stores nor replicates
// layers; the service does, and workers mount them at /opt/python.
//
// Only wheels are fetched (pip download --only-binary=:all:), so the
// fetch on the server runs no code of any package; the install, which
// runs pip over the wheels, runs in the sandbox.
package deps

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
)

//go:embed install.py
var installScript []byte

// TempPrefix begins the name of each build's working directory.
const TempPrefix = "nimbus-build-"

// ErrBuildFailed marks a build pip could not complete: the error's text
// is pip's own message.
var ErrBuildFailed = errors.New("the dependency build failed")

// ErrCannotBuild marks a server that cannot build layers at all (no pip
// for the runtime, no interpreter).
var ErrCannotBuild = errors.New("this server cannot build dependencies")

// Index says where pip fetches packages from; the zero value is pip's
// default index.
type Index struct {
	URL          string   `json:"index_url,omitempty"`
	ExtraURLs    []string `json:"extra_index_urls,omitempty"`
	FindLinks    []string `json:"find_links,omitempty"`
	TrustedHosts []string `json:"trusted_hosts,omitempty"`
	// NoIndex uses FindLinks alone (no index at all).
	NoIndex bool `json:"no_index,omitempty"`
}

func (ix Index) args() []string {
	var a []string
	if ix.NoIndex {
		a = append(a, "--no-index")
	}
	if ix.URL != "" {
		a = append(a, "--index-url", ix.URL)
	}
	for _, u := range ix.ExtraURLs {
		a = append(a, "--extra-index-url", u)
	}
	for _, f := range ix.FindLinks {
		a = append(a, "--find-links", f)
	}
	for _, h := range ix.TrustedHosts {
		a = append(a, "--trusted-host", h)
	}
	return a
}

// Builder builds dependency layers. Its zero value cannot build (no
// runtimes).
type Builder struct {
	Runtimes []python.Runtime
	// Executor runs the install in a sandbox (an isolating executor);
	// nil runs it as a plain process (nimbus dev --insecure-no-sandbox).
	Executor sandbox.Executor
	Index    Index  // the server's index
	PipWheel string // pip's wheel; "" finds the runtime's (FindPip)
	TempDir  string // "" for the system's
	Timeout  time.Duration

	once sync.Once
	pips map[string]string // by runtime name
}

// Request is one build.
type Request struct {
	Runtime      string
	Requirements []string // as Parse returned them
	// AllowSdist builds source distributions too: the whole build then
	// runs in the sandbox, which reaches only the index (sdist.go).
	AllowSdist bool
	Log        io.Writer
}

// Layer is a built dependency layer.
type Layer struct {
	Zip      []byte
	Unpacked int64    // bytes of its files
	Packages []string // NAME==VERSION, sorted
	// Key names the resolved set: the runtime, its version and the
	// fetched wheels (names and digests). Two builds with equal keys
	// built the same layer.
	Key string
}

// CacheKey names a request before it is resolved: the runtime, the
// requirements and the index they resolve against. A build whose key
// matches a layer built before reuses it without fetching.
func CacheKey(runtime string, reqs []string, ix Index, allowSdist bool) string {
	h := sha256.New()
	fmt.Fprintf(h, "nimbus-deps-1\n%s\n", runtime)
	if allowSdist {
		fmt.Fprintf(h, "sdist\n")
	}
	for _, r := range reqs {
		fmt.Fprintf(h, "r %s\n", r)
	}
	fmt.Fprintf(h, "i %s\n", ix.URL)
	for _, u := range ix.ExtraURLs {
		fmt.Fprintf(h, "x %s\n", u)
	}
	for _, u := range ix.FindLinks {
		fmt.Fprintf(h, "f %s\n", u)
	}
	for _, u := range ix.TrustedHosts {
		fmt.Fprintf(h, "t %s\n", u)
	}
	if ix.NoIndex {
		fmt.Fprintf(h, "n\n")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Build fetches req's wheels and installs them into a layer. A failure
// of pip's is an error wrapping ErrBuildFailed whose text ends with
// pip's own error lines; req.Log receives everything pip printed.
func (b *Builder) Build(ctx context.Context, req Request) (Layer, error) {
	rt, err := python.Pick(b.Runtimes, req.Runtime)
	if err != nil || req.Runtime == "" {
		return Layer{}, fmt.Errorf("%w: it has no interpreter for runtime %q", ErrCannotBuild, req.Runtime)
	}
	pip := b.pipFor(rt)
	if pip == "" {
		return Layer{}, fmt.Errorf("%w: no pip wheel for %s (install python3-pip-whl, or start the server with --pip-wheel)", ErrCannotBuild, rt.Name)
	}
	timeout := b.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	log := req.Log
	if log == nil {
		log = io.Discard
	}
	tmp, err := os.MkdirTemp(b.TempDir, TempPrefix+"*")
	if err != nil {
		return Layer{}, err
	}
	defer codepkg.RemoveTree(tmp)
	if tmp, err = filepath.Abs(tmp); err != nil {
		return Layer{}, err
	}
	wheels := filepath.Join(tmp, "wheels")
	if err := os.MkdirAll(filepath.Join(tmp, "home"), 0o700); err != nil {
		return Layer{}, err
	}
	reqFile := filepath.Join(tmp, "requirements.txt")
	if err := os.WriteFile(reqFile, []byte(strings.Join(req.Requirements, "\n")+"\n"), 0o600); err != nil {
		return Layer{}, err
	}

	if req.AllowSdist {
		return b.buildFromIndex(ctx, rt, pip, tmp, req.Requirements, log)
	}
	fmt.Fprintf(log, "nimbus: fetching wheels for %s with pip (%s)\n", rt.Name, filepath.Base(pip))
	args := append([]string{"-I", filepath.Join(pip, "pip"), "download", "--dest", wheels,
		"--only-binary", ":all:", "--no-input", "--progress-bar", "off", "--disable-pip-version-check"}, b.Index.args()...)
	args = append(args, "-r", reqFile)
	cmd := exec.CommandContext(ctx, rt.Executable, args...)
	cmd.Env = pipEnv(filepath.Join(tmp, "home"))
	cmd.Dir = tmp
	var out bytes.Buffer
	cmd.Stdout = io.MultiWriter(log, &out)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return Layer{}, fmt.Errorf("%w: fetching did not finish within %v", ErrBuildFailed, timeout)
		}
		return Layer{}, pipError("fetching", out.Bytes())
	}
	packages, key, err := resolved(wheels, rt)
	if err != nil {
		return Layer{}, err
	}
	fmt.Fprintf(log, "nimbus: installing %s\n", strings.Join(packages, " "))
	l, err := b.install(ctx, rt, pip, tmp, wheels, nil, func(root string) []string { return []string{"wheels", root} }, log)
	l.Packages, l.Key = packages, key
	return l, err
}

// pipEnv is the whole environment pip runs with: no configuration of
// the host's (PIP_* variables, pip.conf) leaks in.
func pipEnv(home string) []string {
	return []string{"PATH=/usr/bin:/bin", "HOME=" + home, "LC_ALL=C.UTF-8", "PIP_CONFIG_FILE=/dev/null",
		"PIP_NO_CACHE_DIR=1", "PYTHONDONTWRITEBYTECODE=1"}
}

// install runs install.py with codeDir as its /var/task (root: where
// the script sees it, which tail's arguments may name) and mounts, in a
// sandbox when the builder has one, and returns the layer it wrote,
// checked (Zip and Unpacked set).
func (b *Builder) install(ctx context.Context, rt python.Runtime, pip, tmp, codeDir string, mounts []sandbox.Mount,
	tail func(root string) []string, log io.Writer) (Layer, error) {
	script := filepath.Join(tmp, "nimbus-install.py")
	if err := os.WriteFile(script, installScript, 0o444); err != nil {
		return Layer{}, err
	}
	zipFile, err := os.OpenFile(filepath.Join(tmp, "layer.zip"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return Layer{}, err
	}
	defer zipFile.Close()
	outFile, err := os.OpenFile(filepath.Join(tmp, "install.log"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return Layer{}, err
	}
	defer outFile.Close()

	var exit sandbox.Exit
	if b.Executor != nil {
		args := append([]string{rt.Executable, "-I", "-S", script, pip, "/tmp/layer"}, tail(b.Executor.TaskRoot(codeDir))...)
		exit, err = b.installSandboxed(ctx, rt, args, codeDir, mounts, []string{script, pip}, outFile, zipFile)
	} else {
		cmd := exec.CommandContext(ctx, rt.Executable, append([]string{"-I", "-S", script, pip, filepath.Join(tmp, "layer")}, tail(codeDir)...)...)
		cmd.Env = pipEnv(filepath.Join(tmp, "home"))
		cmd.Stdout, cmd.Stderr = outFile, outFile
		cmd.ExtraFiles = []*os.File{zipFile}
		err = cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			exit.Code, err = ee.ExitCode(), nil
		}
	}
	printed, rerr := os.ReadFile(outFile.Name())
	if rerr != nil {
		return Layer{}, rerr
	}
	log.Write(printed)
	if ctx.Err() != nil {
		return Layer{}, fmt.Errorf("%w: installing did not finish in time", ErrBuildFailed)
	}
	if err != nil {
		return Layer{}, err
	}
	if exit.OOMKilled {
		return Layer{}, fmt.Errorf("%w: installing ran out of memory (%d MB)", ErrBuildFailed, installMemoryMB)
	}
	if exit.Code != 0 || exit.Signal != "" {
		return Layer{}, pipError("installing", printed)
	}
	zip, err := os.ReadFile(zipFile.Name())
	if err != nil {
		return Layer{}, err
	}
	info, err := codepkg.Validate(zip, codepkg.LayerLimits())
	if err != nil {
		return Layer{}, fmt.Errorf("%w: the installed packages are not a valid layer: %w", ErrBuildFailed, err)
	}
	return Layer{Zip: zip, Unpacked: info.UnzippedSize}, nil
}

// installMemoryMB is the install sandbox's memory limit, installPids its
// processes and threads (a source build runs pip, its build backend and
// the compilers it starts).
const (
	installMemoryMB = 1024
	installPids     = 256
)

func (b *Builder) installSandboxed(ctx context.Context, rt python.Runtime, args []string, codeDir string, mounts []sandbox.Mount,
	files []string, out, zip *os.File) (sandbox.Exit, error) {
	p, err := b.Executor.Start(sandbox.Spec{
		Path: rt.Executable,
		Args: args,
		Env: []string{"HOME=/tmp", "LC_ALL=C.UTF-8", "PIP_CONFIG_FILE=/dev/null", "PIP_NO_CACHE_DIR=1",
			"PYTHONDONTWRITEBYTECODE=1", "PATH=/usr/local/bin:/usr/bin:/bin"},
		Dir:        codeDir,
		Output:     out,
		ExtraFiles: []*os.File{zip},
		MemoryMB:   installMemoryMB,
		Pids:       installPids,
		TmpMB:      2 * int(codepkg.LayerLimits().MaxUnzipped>>20),
		CodeDir:    codeDir,
		Runtime:    rt.Prefix,
		Files:      files,
		Mounts:     mounts,
	})
	if err != nil {
		return sandbox.Exit{}, fmt.Errorf("deps: starting the install sandbox: %w", err)
	}
	done := make(chan sandbox.Exit, 1)
	go func() { done <- p.Wait() }()
	select {
	case exit := <-done:
		return exit, nil
	case <-ctx.Done():
		p.Kill()
		<-done
		return sandbox.Exit{}, ctx.Err()
	}
}

// resolved lists the fetched wheels as NAME==VERSION and computes the
// layer's key from the runtime and their names and digests.
func resolved(wheels string, rt python.Runtime) (packages []string, key string, err error) {
	entries, err := os.ReadDir(wheels)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "nimbus-layer-1\n%s %s\n", rt.Name, rt.Version)
	for _, e := range entries { // ReadDir sorts by name
		name := e.Name()
		if !strings.HasSuffix(name, ".whl") {
			return nil, "", fmt.Errorf("%w: pip fetched %s, which is not a wheel", ErrBuildFailed, name)
		}
		b, err := os.ReadFile(filepath.Join(wheels, name))
		if err != nil {
			return nil, "", err
		}
		sum := sha256.Sum256(b)
		fmt.Fprintf(h, "%s %x\n", name, sum)
		parts := strings.SplitN(strings.TrimSuffix(name, ".whl"), "-", 3)
		if len(parts) < 3 {
			return nil, "", fmt.Errorf("%w: %s is not a wheel's name", ErrBuildFailed, name)
		}
		packages = append(packages, parts[0]+"=="+parts[1])
	}
	sort.Strings(packages)
	return packages, hex.EncodeToString(h.Sum(nil)), nil
}

// pipError is pip's failure as a person reads it: its ERROR lines (or
// the tail of what it printed), without the traceback of a crash.
func pipError(step string, printed []byte) error {
	var lines []string
	for _, l := range strings.Split(string(printed), "\n") {
		if strings.HasPrefix(l, "ERROR:") {
			lines = append(lines, strings.TrimSpace(strings.TrimPrefix(l, "ERROR:")))
		}
	}
	msg := strings.Join(lines, "; ")
	if msg == "" {
		msg = tail(string(printed), 500)
	}
	return fmt.Errorf("%w while %s: pip: %s", ErrBuildFailed, step, msg)
}

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
