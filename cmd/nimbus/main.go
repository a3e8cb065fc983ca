// Command nimbus is the single Nimbus binary: CLI, server and worker
// (docs/spec.md §1). This file is wiring only.
package main

import (
	"os"

	"nimbus/internal/cli"
)

func main() {
	// Seam for the sandbox: when the worker re-executes this binary as
	// "nimbus sandbox-init ...", the sandbox package will take over here,
	// before any CLI parsing. Nothing handles it yet.
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
