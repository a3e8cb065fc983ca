// Package pycheck owns the check a deploy's Python code gets before it is
// stored: every .py file of the package must compile, and the handler's
// module must be in it. It compiles (Python's compile(), as py_compile
// does) with the function's runtime and never imports or runs the code.
//
// The check runs in a sandbox when the server has an executor that builds
// them (the isolating executor: no network, a read-only root, a cgroup);
// otherwise it runs the interpreter as a plain child process, as the code
// scan runs Bandit, which compile() makes safe: it parses, it does not
// execute.
package pycheck

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
)

//go:embed check.py
var checkScript []byte

// marker begins the line of the script's answer.
const marker = "NIMBUS-CHECK "

// TempPrefix begins the name of the directory a check unpacks into; it
// matches the code scan's, so a server sweeps what either left behind.
const TempPrefix = "nimbus-scan-check-"

// Problem is one reason a package cannot be imported.
type Problem struct {
	File    string `json:"file"`    // relative to the package's root
	Line    int    `json:"line"`    // 0 when the problem has no line
	Message string `json:"message"` // e.g. "SyntaxError: expected ':'"
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
	}
	return p.File + ": " + p.Message
}

// Error is a package that does not compile or lacks its handler's module.
// It wraps codepkg.ErrInvalidPackage.
type Error struct {
	Problems []Problem // at least one
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "the package cannot be imported: %s", e.Problems[0])
	if n := len(e.Problems) - 1; n > 0 {
		for _, p := range e.Problems[1:min(len(e.Problems), 5)] {
			b.WriteString("; ")
			b.WriteString(p.String())
		}
		if n > 4 {
			fmt.Fprintf(&b, "; and %d more", n-4)
		}
	}
	return b.String()
}

func (e *Error) Unwrap() error { return codepkg.ErrInvalidPackage }

// ErrNoRuntime is returned (wrapped) when this server has no interpreter
// for the function's runtime: the check cannot run.
var ErrNoRuntime = errors.New("pycheck: no interpreter for the runtime on this server")

// Checker runs the check. Its zero value checks nothing (no runtimes).
type Checker struct {
	// Runtimes are the interpreters of this server, by name.
	Runtimes []python.Runtime
	// Executor, when set, runs the check in a sandbox (give it only an
	// isolating executor); nil runs the interpreter as a plain child
	// process.
	Executor sandbox.Executor
	// TempDir receives each package unpacked for its check, in a
	// directory named TempPrefix* (removed after it); "" is the system's
	// temporary directory.
	TempDir string
	Timeout time.Duration // default 60 s

	// seen remembers the outcome of recent checks (a pass, or the
	// problems found) by what decides it: the package's bytes, the
	// interpreter and the handler. The check only compiles, so the same
	// three give the same answer; deploying one package under many names
	// (or again) compiles it once. Bounded by seenMost; needs mu.
	mu   sync.Mutex
	seen map[checkKey]*Error
	runs int // checks that ran an interpreter (for tests)
}

// checkKey is what decides a check's outcome.
type checkKey struct {
	zip                 [sha256.Size]byte
	executable, version string
	handler             string
}

// seenMost bounds the outcomes a Checker remembers; past it, it forgets
// them all and starts again.
const seenMost = 4096

// Sandboxed reports whether checks run in a sandbox.
func (c *Checker) Sandboxed() bool { return c.Executor != nil }

// Check compiles the package zip with runtime's interpreter and looks for
// handler's module (handler is module.function). It returns an *Error
// for code that cannot be imported, an error wrapping ErrNoRuntime when
// the runtime is not on this server, or another error when the check
// itself could not run.
func (c *Checker) Check(ctx context.Context, zip []byte, runtime, handler string) error {
	rt, err := python.Pick(c.Runtimes, runtime)
	if err != nil || runtime == "" {
		return fmt.Errorf("%w: %s", ErrNoRuntime, runtime)
	}
	module, _, ok := cutLast(handler, ".")
	if !ok || module == "" {
		return &Error{Problems: []Problem{{File: "nimbus.yaml", Message: fmt.Sprintf("handler %q is not module.function", handler)}}}
	}
	key := checkKey{zip: sha256.Sum256(zip), executable: rt.Executable, version: rt.Version, handler: handler}
	c.mu.Lock()
	known, ok := c.seen[key]
	c.mu.Unlock()
	if ok {
		if known != nil {
			return known
		}
		return nil
	}
	problems, err := c.check(ctx, zip, rt, module)
	if err != nil {
		return err
	}
	var outcome *Error
	if len(problems) > 0 {
		outcome = &Error{Problems: problems}
	}
	c.mu.Lock()
	c.runs++
	if c.seen == nil || len(c.seen) >= seenMost {
		c.seen = map[checkKey]*Error{}
	}
	c.seen[key] = outcome
	c.mu.Unlock()
	if outcome != nil {
		return outcome
	}
	return nil
}

// check runs the compile check of zip with rt and returns the problems
// it found; the error is the check's own failure (no answer, a timeout),
// which is not remembered.
func (c *Checker) check(ctx context.Context, zip []byte, rt python.Runtime, module string) ([]Problem, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	tmp, err := os.MkdirTemp(c.TempDir, TempPrefix+"*")
	if err != nil {
		return nil, err
	}
	defer codepkg.RemoveTree(tmp)
	dir := filepath.Join(tmp, "pkg")
	if err := codepkg.Unpack(zip, dir, codepkg.DefaultLimits()); err != nil {
		return nil, err
	}
	script := filepath.Join(tmp, "nimbus-check.py")
	if err := os.WriteFile(script, checkScript, 0o444); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var out []byte
	if c.Executor != nil {
		out, err = c.runSandboxed(ctx, tmp, rt, script, dir, module)
	} else {
		out, err = exec.CommandContext(ctx, rt.Executable, "-I", "-S", "-B", script, dir, module).CombinedOutput()
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("pycheck: the compile check did not finish within %v", timeout)
	}
	i := bytes.LastIndex(out, []byte(marker))
	if i < 0 {
		return nil, fmt.Errorf("pycheck: the compile check gave no answer (%v): %s", err, tailOf(out, 512))
	}
	line, _, _ := bytes.Cut(out[i+len(marker):], []byte("\n"))
	var problems []Problem
	if err := json.Unmarshal(line, &problems); err != nil {
		return nil, fmt.Errorf("pycheck: reading the compile check's answer: %w", err)
	}
	return problems, nil
}

// runSandboxed runs the script in a sandbox with the package as its
// read-only /var/task and returns what it printed.
func (c *Checker) runSandboxed(ctx context.Context, tmp string, rt python.Runtime, script, dir, module string) ([]byte, error) {
	outPath := filepath.Join(tmp, "out")
	f, err := os.OpenFile(outPath, os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	p, err := c.Executor.Start(sandbox.Spec{
		Path:     rt.Executable,
		Args:     []string{rt.Executable, "-I", "-S", "-B", script, c.Executor.TaskRoot(dir), module},
		Env:      []string{"LC_ALL=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"},
		Dir:      dir,
		Output:   f,
		MemoryMB: 512,
		CodeDir:  dir,
		Runtime:  rt.Prefix,
		Files:    []string{script},
	})
	if err != nil {
		return nil, fmt.Errorf("pycheck: starting the sandbox: %w", err)
	}
	done := make(chan sandbox.Exit, 1)
	go func() { done <- p.Wait() }()
	var exit sandbox.Exit
	select {
	case exit = <-done:
	case <-ctx.Done():
		p.Kill()
		<-done
		return nil, ctx.Err()
	}
	out, rerr := os.ReadFile(outPath)
	if rerr != nil {
		return nil, rerr
	}
	if exit.Code != 0 {
		return out, fmt.Errorf("exit %d %s", exit.Code, exit.Signal)
	}
	return out, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}

func tailOf(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return strings.TrimSpace(string(b))
}
