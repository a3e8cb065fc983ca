package node

import (
	"log/slog"
	"path/filepath"

	"nimbus/internal/deps"
	"nimbus/internal/pycheck"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
)

// devChecker is the deploy check of nimbus dev: it runs in the embedded
// worker's sandboxes, or as a plain process with --insecure-no-sandbox.
func devChecker(runtimes []python.Runtime, exec sandbox.Executor, scanDir string, log *slog.Logger) *pycheck.Checker {
	c := &pycheck.Checker{Runtimes: runtimes, TempDir: scanDir}
	if iso, ok := exec.(*sandbox.IsolatedExecutor); ok {
		c.Executor = iso
	} else {
		log.Info("deploys are compile-checked by a plain process, as code scans run: there is no sandbox (--insecure-no-sandbox)")
	}
	return c
}

// devBuilder builds the dependency layers of nimbus dev, installing in
// the embedded worker's sandboxes (or as a plain process with
// --insecure-no-sandbox).
func devBuilder(opts Options, runtimes []python.Runtime, exec sandbox.Executor, scanDir string) *deps.Builder {
	b := &deps.Builder{Runtimes: runtimes, Index: opts.PipIndex, PipWheel: opts.PipWheel, TempDir: scanDir}
	if iso, ok := exec.(*sandbox.IsolatedExecutor); ok {
		b.Executor = iso
	}
	return b
}

// serverChecker is the deploy check and the dependency builder of
// nimbus server: with the Pythons this server has, in sandboxes of its
// own when it can build them (as root), else as a plain process, as code
// scans run; without sandboxes, no dependencies are built (pip would
// install in the open). close releases the sandboxes' cgroups.
func serverChecker(opts Options, scanDir string, log *slog.Logger) (c *pycheck.Checker, b *deps.Builder, close func()) {
	c = &pycheck.Checker{TempDir: scanDir}
	rts, err := python.Discover()
	if err != nil {
		log.Warn("deploys are not compile-checked and dependencies are not built: this server has no Python", "err", err)
		return c, nil, func() {}
	}
	c.Runtimes = rts
	e, err := sandbox.NewIsolatedExecutor(sandbox.IsolatedConfig{StateDir: filepath.Join(opts.DataDir, "check", "sandbox"), Log: log.With("subsystem", "sandbox")})
	if err != nil {
		log.Info("deploys are compile-checked by a plain process, as code scans run, and dependencies are not built: this server cannot build sandboxes", "err", err)
		return c, nil, func() {}
	}
	c.Executor = e
	b = &deps.Builder{Runtimes: rts, Executor: e, Index: opts.PipIndex, PipWheel: opts.PipWheel, TempDir: scanDir}
	return c, b, func() { e.Close() }
}
