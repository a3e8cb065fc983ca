// Command nimbus is the single Nimbus binary: CLI, server and worker
// (docs/spec.md §1). This file is wiring only.
package main

import (
	"os"

	"nimbus/internal/benchmark"
	"nimbus/internal/cli"
	"nimbus/internal/sandbox"
)

func main() {
	// The worker re-executes this binary as "nimbus sandbox-init" to build
	// each sandbox from the inside; that never reaches the CLI.
	if sandbox.IsInit() {
		sandbox.InitMain()
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
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
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
