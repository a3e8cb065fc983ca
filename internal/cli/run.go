package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"nimbus/internal/sandbox"
	"nimbus/pkg/client"
)

func (a *app) runCommand() *cobra.Command {
	var (
		stdinFrom, runtime, function string
		timeout, idle                time.Duration
		memory                       int
		outputLimit                  int64
		env, with                    []string
	)
	cmd := &cobra.Command{
		Use:   "run FILE.py [-- ARGS...] | run --function NAME [ENTRY.py] [-- ARGS...]",
		Short: "Run a Python program in a sandbox, attached to this terminal",
		Long: "Run FILE.py in a sandbox on a worker, as functions run: its output appears as it is\n" +
			"produced and what you type goes to its stdin (or --stdin-from FILE; piped input works\n" +
			"too). Ctrl-C interrupts it (KeyboardInterrupt); a second Ctrl-C terminates it. The\n" +
			"exit status is the program's (128+N when signal N ended it); a limit that ends it\n" +
			"is named on stderr. When every worker is busy the run waits in a queue. With\n" +
			"--function, the program is a file of that function's package (default its handler's\n" +
			"module), run with its layers and dependencies.",
		Args: usageArgs(cobra.ArbitraryArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := client.RunStart{Runtime: runtime, Function: function,
				Timeout: client.Duration(timeout), IdleTimeout: client.Duration(idle), MemoryMB: memory, OutputLimit: outputLimit}
			dash := cmd.ArgsLenAtDash()
			if dash < 0 {
				dash = len(args)
			}
			switch {
			case function != "" && len(with) > 0:
				return usagef("--with adds files to a program of your own; --function runs a function's package as it is")
			case function != "" && dash <= 1:
				if dash == 1 {
					start.Entry = args[0]
				}
				start.Args = args[dash:]
			case function != "":
				return usagef("--function takes one entry file of the package, then -- and its arguments")
			case dash != 1:
				return usagef("run takes one program file, then -- and its arguments (nimbus run FILE.py -- ARGS)")
			default:
				start.Args = args[1:]
				if err := a.readRunFiles(&start, append([]string{args[0]}, with...)); err != nil {
					return err
				}
			}
			if len(env) > 0 {
				start.Env = map[string]string{}
				for _, kv := range env {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return usagef("--env %q is not KEY=VALUE", kv)
					}
					start.Env[k] = v
				}
			}
			stdin := a.env.Stdin
			if stdinFrom != "" {
				f, err := os.Open(a.path(stdinFrom))
				if err != nil {
					return usagef("--stdin-from: %v", err)
				}
				defer f.Close()
				stdin = f
			}
			return a.attach(cmd.Context(), start, stdin)
		},
	}
	f := cmd.Flags()
	f.StringVar(&function, "function", "", "run a file of this function's package (with its layers) instead of a file of your own")
	f.StringVar(&stdinFrom, "stdin-from", "", "send this file as the program's stdin instead of the terminal's")
	f.StringVar(&runtime, "runtime", "", "Python runtime (see nimbus runtimes; default the newest)")
	f.DurationVar(&timeout, "timeout", 0, "wall-clock limit (default 60s, at most 15m)")
	f.DurationVar(&idle, "idle-timeout", 0, "end the run after this long without output or input (default 5m)")
	f.IntVar(&memory, "memory", 0, "memory limit in MB (default 128)")
	f.Int64Var(&outputLimit, "output-limit", 0, "bytes of output, stdout and stderr together (default 1 MB)")
	f.StringArrayVar(&env, "env", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringArrayVar(&with, "with", nil, "another file the program imports or reads, placed beside it (repeatable)")
	return cmd
}

// readRunFiles puts the files at paths into start, the first as its
// entry.
func (a *app) readRunFiles(start *client.RunStart, paths []string) error {
	start.Files = map[string]string{}
	for i, p := range paths {
		b, err := os.ReadFile(a.path(p))
		if err != nil {
			return usagef("reading %s: %v", p, err)
		}
		name := filepath.Base(p)
		if _, dup := start.Files[name]; dup {
			return usagef("two files are named %s", name)
		}
		start.Files[name] = string(b)
		if i == 0 {
			start.Entry = name
		}
	}
	return nil
}

// attach runs start and relays the terminal to it until it ends. The
// run outlives the command's context (the first Ctrl-C is the program's
// to handle): interrupts are counted here instead.
func (a *app) attach(ctx context.Context, start client.RunStart, stdin io.Reader) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt)
	defer signal.Stop(sigs)
	ctx = context.WithoutCancel(ctx)
	conn, err := a.client().Run(ctx, start)
	if err != nil {
		return a.platform(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for n := 1; ; n++ {
			select {
			case <-sigs:
			case <-ctx.Done():
				return
			}
			switch n {
			case 1:
				conn.Control(ctx, client.RunControl{Type: "signal", Signal: "interrupt"})
			case 2:
				conn.Control(ctx, client.RunControl{Type: "signal", Signal: "terminate"})
			default:
				cancel() // the server ends the run when the connection goes
				return
			}
		}
	}()
	started := make(chan struct{})
	go func() {
		select {
		case <-started:
		case <-ctx.Done():
			return
		}
		buf := make([]byte, 32<<10)
		for {
			n, err := stdin.Read(buf)
			if n > 0 && conn.Stdin(ctx, buf[:n]) != nil {
				return
			}
			if err != nil {
				conn.Control(ctx, client.RunControl{Type: "eof"})
				return
			}
		}
	}()
	for {
		m, err := conn.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return &exitError{code: 128 + int(syscall.SIGINT)}
			}
			return a.platform(fmt.Errorf("the run's connection broke: %w", err))
		}
		if m.Notice == nil {
			w := a.env.Stdout
			if m.Stream == client.RunStderr {
				w = a.env.Stderr
			}
			if _, err := w.Write(m.Data); err != nil {
				return err
			}
			continue
		}
		switch n := m.Notice; n.Type {
		case "queued":
			est := ""
			if n.EstimateMS > 0 {
				est = fmt.Sprintf(" (about %s)", (time.Duration(n.EstimateMS) * time.Millisecond).Round(100*time.Millisecond))
			}
			fmt.Fprintf(a.env.Stderr, "nimbus: every worker is busy; the run is number %d in the queue%s\n", n.Position, est)
		case "started":
			close(started)
		case "error":
			if n.Error == nil {
				n.Error = &client.APIError{Message: "the server refused the run"}
			}
			n.Error.Status = n.Status
			return a.platform(n.Error)
		case "exit":
			return a.exited(n.Exit)
		}
	}
}

// exited reports how a run ended: its verdict on stderr, its status as
// the command's.
func (a *app) exited(ex *client.RunExit) error {
	if ex == nil {
		return a.platform(errors.New("the run ended without saying how"))
	}
	if a.json() {
		printJSON(a.env.Stderr, ex)
	} else if ex.Verdict != "" {
		fmt.Fprintf(a.env.Stderr, "nimbus: run ended: %s (%s wall, %s CPU)\n", ex.Verdict,
			(time.Duration(ex.WallMS * 1e6)).Round(time.Millisecond), (time.Duration(ex.CPUMS * 1e6)).Round(time.Millisecond))
	}
	switch {
	case ex.Code > 0:
		return &exitError{code: ex.Code}
	case ex.Code < 0:
		if sig := signalNumber(ex.Signal); sig > 0 {
			return &exitError{code: 128 + sig}
		}
		return &exitError{code: 128 + int(syscall.SIGKILL)}
	case ex.Verdict != "":
		return &exitError{code: ExitPlatform}
	}
	return nil
}

// signalNumber is the number of a signal named like "SIGKILL", 0 if
// unknown.
func signalNumber(name string) int {
	for i := 1; i < 32; i++ {
		if sandbox.SignalName(syscall.Signal(i)) == name {
			return i
		}
	}
	return 0
}
