// Command nimbus is the single Nimbus binary: CLI, server and worker
// (docs/spec.md §1). This file is wiring only.
package main

import (
	"context"
	"os"

	"nimbus/internal/benchmark"
	"nimbus/internal/cli"
	"nimbus/internal/runtime/provided"
	"nimbus/internal/sandbox"
	"nimbus/internal/tuning"
)

func main() {
	// The worker re-executes this binary as "nimbus sandbox-init" to build
	// each sandbox from the inside; that never reaches the CLI.
	if sandbox.IsInit() {
		sandbox.InitMain()
	}
	// A provided function's instance runs this binary as its Runtime API
	// server (the sandbox's pid 1, in place of the Python bootstrap).
	if provided.IsServer() {
		provided.Main()
	}
	// `nimbus bench` runs its HTTP baseline's server as this binary too.
	if benchmark.IsHTTPBaseline() {
		benchmark.HTTPBaselineMain()
	}
	// Nodes that run sandboxes live in a mount namespace of their own, so
	// that their mounts die with them (see sandbox.RunInPrivateMounts).
	if runsSandboxes(os.Args[1:]) {
		if code, ok := sandbox.RunInPrivateMounts(); ok {
			os.Exit(code)
		}
	}
	env := cli.Env{Args: os.Args[1:], Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	if tuneRuntime(os.Args[1:]) {
		tuning.KeepHeapFloor(context.Background(), tuning.HeapFloor)
		env.FollowInstances = tuning.LeaveCPUsToInstances
		if os.Args[1] == "server" { // its cgroup holds no instances (tuning.LimitHeapToCgroup)
			tuning.LimitHeapToCgroup()
		}
	}
	os.Exit(cli.Main(env))
}

// tuneRuntime is the switch of the process-wide runtime settings
// (internal/tuning): a process that runs a node (`nimbus dev`, `server` or
// `worker`) keeps a heap floor for its garbage collector and, when it runs
// instances, gives the Go scheduler half the CPUs while they run one at a
// time; a server keeps its heap under its cgroup's memory limit; unless
// NIMBUS_RUNTIME_TUNING=off, which leaves Go's defaults. An explicit
// GOGC, GOMAXPROCS or GOMEMLIMIT is left alone either way.
func tuneRuntime(args []string) bool {
	if os.Getenv("NIMBUS_RUNTIME_TUNING") == "off" || len(args) == 0 {
		return false
	}
	switch args[0] {
	case "dev", "server":
		return true
	case "worker":
		return len(args) < 2 || (args[1] != "drain" && args[1] != "undrain")
	}
	return false
}

// runsSandboxes reports whether args start a node that runs sandboxes:
// `nimbus dev` or `nimbus worker`, without --insecure-no-sandbox.
func runsSandboxes(args []string) bool {
	if len(args) == 0 || (args[0] != "dev" && args[0] != "worker") {
		return false
	}
	for _, a := range args[1:] {
		if a == "--insecure-no-sandbox" || a == "-h" || a == "--help" || a == "drain" {
			return false
		}
	}
	return true
}
