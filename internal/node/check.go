package node

import (
	"log/slog"
	"path/filepath"

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

// serverChecker is the deploy check of nimbus server: with the Pythons
// this server has, in sandboxes of its own when it can build them (as
// root), else as a plain process, as code scans run. close releases the
// sandboxes' cgroups.
func serverChecker(dataDir, scanDir string, log *slog.Logger) (c *pycheck.Checker, close func()) {
	c = &pycheck.Checker{TempDir: scanDir}
	rts, err := python.Discover()
	if err != nil {
		log.Warn("deploys are not compile-checked: this server has no Python", "err", err)
		return c, func() {}
	}
	c.Runtimes = rts
	e, err := sandbox.NewIsolatedExecutor(sandbox.IsolatedConfig{StateDir: filepath.Join(dataDir, "check", "sandbox"), Log: log.With("subsystem", "sandbox")})
	if err != nil {
		log.Info("deploys are compile-checked by a plain process, as code scans run: this server cannot build sandboxes", "err", err)
		return c, func() {}
	}
	c.Executor = e
	return c, func() { e.Close() }
}
