// Package provided owns Nimbus's custom runtime, Lambda's "provided": a
// function whose package holds an executable bootstrap at its root, which
// serves invocations by looping on the Lambda Runtime API (version
// 2018-06-01) at the address in AWS_LAMBDA_RUNTIME_API.
//
// The worker drives a provided instance exactly as a Python one
// (internal/runtime/python's Instance, same limits, verdicts, logs and
// warm reuse): the runtime's python.Runtime has a Program, the nimbus
// binary started as "nimbus runtime-api", which takes the Python
// bootstrap's place as the sandbox's pid 1 and speaks the same framed
// protocol on fds 3 and 4. That server (Main) listens on Addr inside the
// sandbox's own network namespace, whose only interface is loopback, and
// starts /var/task/bootstrap as its child, as the sandbox's uid, in the
// sandbox's cgroup, with stdout and stderr on the instance's log. Each
// invoke frame becomes the answer to the bootstrap's next
// GET .../invocation/next; its POST .../response or .../error becomes
// the response frame. A bootstrap that posts .../init/error, or exits
// before asking for its first event, fails the start as a Python handler
// that cannot be imported does: the ready frame carries the error, and
// every invocation answers with it.
//
// Usage (wiring, in internal/node):
//
//	rts = append(rts, provided.Runtime(rts[0], self)) // self: os.Executable()
//
// and, first thing in main:
//
//	if provided.IsServer() { provided.Main() }
package provided

import (
	"os"

	"nimbus/internal/codepkg"
	"nimbus/internal/runtime/python"
)

// Name is the runtime's name, as functions and workers give it.
const Name = codepkg.ProvidedRuntime

// ServerArg is argv[1] of the nimbus binary started as a provided
// instance's Runtime API server.
const ServerArg = "runtime-api"

// Addr is where the server listens in a sandbox (Lambda's own address).
// Without a network namespace of its own (the process executor), where
// the port may be taken, it falls back to a free loopback port.
const Addr = "127.0.0.1:9001"

// TaskRoot is where a sandboxed instance sees its code.
const TaskRoot = "/var/task"

// IsServer reports whether this process was started as a provided
// instance's Runtime API server.
func IsServer() bool { return len(os.Args) > 1 && os.Args[1] == ServerArg }

// Runtime is the provided runtime as a worker offers it: instances run
// self (the nimbus binary, an absolute path) as the Runtime API server,
// in a sandbox that also mounts py's installation, so that a bootstrap
// may be a Python script (#!/usr/bin/python3).
func Runtime(py python.Runtime, self string) python.Runtime {
	return python.Runtime{
		Name:       Name,
		Executable: py.Executable,
		Prefix:     py.Prefix,
		Version:    py.Version,
		Program:    self,
		ProgramArg: ServerArg,
	}
}
