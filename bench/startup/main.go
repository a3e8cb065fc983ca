// Command startup measures what the sandbox adds to starting Python.
//
// In one run it starts `python -I -S -c pass` with the real interpreter
// (resolved as the worker resolves it, never a pyenv shim) three ways,
// interleaved so that they share the machine's noise:
//
//   - bare: os/exec, start to exit;
//   - sandbox: sandbox.NewIsolatedExecutor(...).Start then Wait (namespaces,
//     cgroup, tmpfs root of read-only binds, privilege drop, seccomp, exec,
//     and the teardown Wait includes: reaping and removing the cgroup);
//   - process: sandbox.NewProcessExecutor(), for reference.
//
// It reports p50/p90/p99 of each and what the executors add to bare
// Python at the median. Run it as root (the sandbox needs it):
//
//	go run ./bench/startup [-n 50] [-warmup 5] [-runtime python3.11] [-o json]
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"nimbus/bench/internal/stats"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
)

// Result is the JSON form of a run (-o json).
type Result struct {
	Machine       stats.Machine `json:"machine"`
	Python        string        `json:"python"` // the resolved interpreter
	PythonVersion string        `json:"python_version"`
	Command       []string      `json:"command"`
	Executor      string        `json:"executor"` // the isolated executor's name
	N             int           `json:"n"`
	Warmup        int           `json:"warmup"`

	Bare    stats.Summary `json:"bare"`
	Sandbox stats.Summary `json:"sandbox"`
	// SandboxStart is the part of Sandbox spent in Start, before the
	// program runs its own code.
	SandboxStart stats.Summary `json:"sandbox_start"`
	Process      stats.Summary `json:"process"`

	SandboxAddedP50MS float64 `json:"sandbox_added_p50_ms"` // sandbox.p50 - bare.p50
	SandboxRatioP50   float64 `json:"sandbox_ratio_p50"`    // sandbox.p50 / bare.p50
	ProcessAddedP50MS float64 `json:"process_added_p50_ms"`
	ProcessRatioP50   float64 `json:"process_ratio_p50"`
}

func main() {
	// The isolated executor re-executes this binary as sandbox-init.
	if sandbox.IsInit() {
		sandbox.InitMain()
	}
	n := flag.Int("n", 50, "measured starts of each kind")
	warmup := flag.Int("warmup", 5, "unmeasured starts of each kind first")
	rtName := flag.String("runtime", "python3.11", "Python runtime name (\"\" for the newest found)")
	format := flag.String("o", "table", "output: table or json")
	flag.Parse()
	if *n < 1 || *warmup < 0 || (*format != "table" && *format != "json") {
		flag.Usage()
		os.Exit(2)
	}
	res, err := run(*n, *warmup, *rtName)
	if err != nil {
		fmt.Fprintln(os.Stderr, "startup:", err)
		os.Exit(1)
	}
	if *format == "json" {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
		return
	}
	printTable(os.Stdout, res)
}

func run(n, warmup int, rtName string) (*Result, error) {
	rts, err := python.Discover()
	if err != nil {
		return nil, err
	}
	rt, err := python.Pick(rts, rtName)
	if err != nil {
		return nil, err
	}
	if strings.Contains(rt.Executable, "/shims/") {
		return nil, fmt.Errorf("%s resolved to a shim (%s)", rt.Name, rt.Executable)
	}
	args := []string{rt.Executable, "-I", "-S", "-c", "pass"}

	tmp, err := os.MkdirTemp("", "nimbus-bench-startup")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	codeDir := filepath.Join(tmp, "code")
	if err := os.Mkdir(codeDir, 0o755); err != nil {
		return nil, err
	}
	// The program writes nothing when it succeeds; what lands here is
	// sandbox-init's or Python's complaint, shown if a start fails.
	out, err := os.Create(filepath.Join(tmp, "output.log"))
	if err != nil {
		return nil, err
	}
	defer out.Close()

	iso, err := sandbox.NewIsolatedExecutor(sandbox.IsolatedConfig{StateDir: filepath.Join(tmp, "state")})
	if err != nil {
		return nil, err
	}
	defer iso.Close() // waits for the sandboxes' cgroups to be removed
	spec := sandbox.Spec{
		Path:    rt.Executable,
		Args:    args,
		Output:  out,
		CodeDir: codeDir,
		Dir:     codeDir,
		Runtime: rt.Prefix,
	}
	kinds := []struct {
		name  string
		start func() (started, exited time.Duration, err error)
	}{
		{"bare", func() (time.Duration, time.Duration, error) { return bare(args, out) }},
		{"sandbox", func() (time.Duration, time.Duration, error) { return viaExecutor(iso, spec, out) }},
		{"process", func() (time.Duration, time.Duration, error) {
			return viaExecutor(sandbox.NewProcessExecutor(), spec, out)
		}},
	}
	total := make([][]time.Duration, len(kinds))
	var sandboxStart []time.Duration
	for i := 0; i < warmup+n; i++ {
		for k, kind := range kinds {
			started, exited, err := kind.start()
			if err != nil {
				return nil, fmt.Errorf("%s start %d: %w", kind.name, i, err)
			}
			if i < warmup {
				continue
			}
			total[k] = append(total[k], exited)
			if kind.name == "sandbox" {
				sandboxStart = append(sandboxStart, started)
			}
		}
	}

	res := &Result{
		Machine:       stats.ThisMachine(),
		Python:        rt.Executable,
		PythonVersion: rt.Version,
		Command:       args,
		Executor:      iso.Name(),
		N:             n,
		Warmup:        warmup,
		Bare:          stats.Summarize(total[0]),
		Sandbox:       stats.Summarize(total[1]),
		SandboxStart:  stats.Summarize(sandboxStart),
		Process:       stats.Summarize(total[2]),
	}
	res.SandboxAddedP50MS = stats.Round(res.Sandbox.P50MS - res.Bare.P50MS)
	res.SandboxRatioP50 = stats.Ratio(res.Sandbox.P50MS, res.Bare.P50MS)
	res.ProcessAddedP50MS = stats.Round(res.Process.P50MS - res.Bare.P50MS)
	res.ProcessRatioP50 = stats.Ratio(res.Process.P50MS, res.Bare.P50MS)
	return res, nil
}

// bare runs args with os/exec, with an empty environment and output to
// out, and returns the time to exit (twice: it has no separate start).
func bare(args []string, out *os.File) (time.Duration, time.Duration, error) {
	cmd := &exec.Cmd{Path: args[0], Args: args, Env: []string{}, Stdout: out, Stderr: out}
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return 0, 0, withOutput(err, out)
	}
	return d, d, nil
}

// viaExecutor starts spec with ex and waits for it: it returns the time
// Start took and the time to the end of Wait.
func viaExecutor(ex sandbox.Executor, spec sandbox.Spec, out *os.File) (time.Duration, time.Duration, error) {
	t0 := time.Now()
	p, err := ex.Start(spec)
	started := time.Since(t0)
	if err != nil {
		return 0, 0, err
	}
	exit := p.Wait()
	exited := time.Since(t0)
	if exit.Code != 0 {
		return 0, 0, withOutput(fmt.Errorf("exit code %d, signal %q", exit.Code, exit.Signal), out)
	}
	return started, exited, nil
}

// withOutput adds what the program printed (its last 2 KB) to err.
func withOutput(err error, out *os.File) error {
	b, _ := os.ReadFile(out.Name())
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	if len(b) == 0 {
		return err
	}
	return fmt.Errorf("%w; output:\n%s", err, b)
}

func printTable(w io.Writer, r *Result) {
	fmt.Fprintf(w, "sandbox start-up: %s, n=%d after %d warm-up starts of each, interleaved\n", strings.Join(r.Command, " "), r.N, r.Warmup)
	fmt.Fprintf(w, "python %s; executor %s; %d CPUs %s, kernel %s; %s\n\n", r.PythonVersion, r.Executor, r.Machine.NumCPU, r.Machine.CPU, r.Machine.Kernel, r.Machine.Date)
	fmt.Fprintf(w, "%-22s %9s %9s %9s %9s %9s\n", "start to exit (ms)", "min", "p50", "p90", "p99", "max")
	row := func(name string, s stats.Summary) {
		fmt.Fprintf(w, "%-22s %9.2f %9.2f %9.2f %9.2f %9.2f\n", name, s.MinMS, s.P50MS, s.P90MS, s.P99MS, s.MaxMS)
	}
	row("bare python", r.Bare)
	row("sandbox", r.Sandbox)
	row("  of which Start", r.SandboxStart)
	row("process executor", r.Process)
	fmt.Fprintf(w, "\nsandbox adds %.2f ms at p50 (x%.2f of bare); process executor adds %.2f ms (x%.2f)\n",
		r.SandboxAddedP50MS, r.SandboxRatioP50, r.ProcessAddedP50MS, r.ProcessRatioP50)
}
