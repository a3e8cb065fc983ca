// Command nimbus is the single Nimbus binary: CLI, server and worker
// (docs/spec.md §1). This file is wiring only.
package main

import (
	"os"

	"nimbus/internal/cli"
	"nimbus/internal/sandbox"
)

func main() {
	// The worker re-executes this binary as "nimbus sandbox-init" to build
	// each sandbox from the inside; that never reaches the CLI.
	if sandbox.IsInit() {
		sandbox.InitMain()
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
