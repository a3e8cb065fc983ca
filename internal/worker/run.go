package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/model"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
	"nimbus/pkg/client"
)

// Interactive runs: a program (a script and the files beside it) runs in
// the same sandbox as an instance, with its stdin fed by the caller and
// its stdout and stderr handed back in chunks as they are produced. The
// caller pulls the chunks (Run.Next): until it does, the program's next
// write blocks once the pipe is full, so a slow reader slows the program
// down instead of filling memory. The worker holds at most one chunk per
// stream of a run's output.

// RunChunk is the most output bytes one RunEvent carries, and Stdout and
// Stderr name a RunEvent's stream: the run protocol's own (pkg/client),
// so that a chunk goes to the client as it is.
const (
	RunChunk = client.RunChunk
	Stdout   = client.RunStdout
	Stderr   = client.RunStderr
)

// Verdicts of a run that did not end by itself (RunExit.Verdict).
const (
	VerdictTimeout     = "Sandbox.Timeout"
	VerdictIdle        = "Sandbox.IdleTimeout"
	VerdictOutOfMemory = "Sandbox.OutOfMemory"
	VerdictOutputLimit = "Sandbox.OutputLimitExceeded"
	VerdictTerminated  = "Run.Terminated"
	VerdictCanceled    = "Run.Canceled" // the caller went away
)

// RunLimits bound a run. The zero value of each takes its default.
type RunLimits struct {
	Timeout     time.Duration // wall-clock time from start; 0 for 60 s
	IdleTimeout time.Duration // no output and no input for this long; 0 for 5 minutes
	MemoryMB    int           // 0 for 128
	OutputBytes int64         // stdout and stderr bytes together; 0 for 1 MB
}

// Run limits' defaults.
const (
	DefaultRunTimeout = time.Minute
	DefaultRunIdle    = 5 * time.Minute
	DefaultRunMemory  = 128
	DefaultRunOutput  = 1 << 20
)

func (l RunLimits) withDefaults() RunLimits {
	if l.Timeout <= 0 {
		l.Timeout = DefaultRunTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = DefaultRunIdle
	}
	if l.MemoryMB <= 0 {
		l.MemoryMB = DefaultRunMemory
	}
	if l.OutputBytes <= 0 {
		l.OutputBytes = DefaultRunOutput
	}
	return l
}

// RunSpec is an interactive run offered to a worker.
type RunSpec struct {
	ID        string
	Namespace string
	Runtime   string            // a runtime name; "" for the newest
	Files     map[string][]byte // the program's files by relative path, seen read-only at the task root
	// Function, instead of Files, runs a deployed function's code (its
	// revision's package at the task root, its layers and dependencies
	// mounted and on sys.path as for its instances).
	Function *model.Function
	Entry    string   // the file run, one of Files (or of the function's package)
	Args     []string // sys.argv[1:]
	Env      map[string]string
	Limits   RunLimits
	// SlotWait is how long the run may wait for a free slot; 0 refuses
	// at once when every slot is busy (ErrNoCapacity).
	SlotWait time.Duration
}

// RunEvent is one thing a run produced: a chunk of output (Stream and
// Data), or its end (Exit), which is always the last.
type RunEvent struct {
	Stream int
	Data   []byte
	Exit   *RunExit
}

// RunExit is how a run ended.
type RunExit struct {
	Code     int    // exit status; -1 when a signal ended it
	Signal   string // e.g. "SIGKILL"
	Verdict  string // "" when the program ended by itself, else why it was ended
	Wall     time.Duration
	CPU      time.Duration
	MaxMemB  int64 // the most memory it used, where the executor can tell
	Output   int64 // output bytes sent
	WorkerID string
}

// RunInput is what the caller sends a run: stdin bytes, the end of
// stdin, or a signal ("interrupt" or "terminate").
type RunInput struct {
	Stdin  []byte
	EOF    bool
	Signal string
}

// Signals a caller may send a run.
const (
	SignalInterrupt = "interrupt"
	SignalTerminate = "terminate"
)

// terminateGrace is how long a terminated run has to end after SIGTERM
// before it is killed. (A program that installed no SIGTERM handler
// ignores it: it is its sandbox's pid 1.)
const terminateGrace = 2 * time.Second

// Run is a started interactive run. Next and Input may be called from
// different goroutines; Close may be called from any, any number of
// times.
type Run struct {
	w     *Worker
	spec  RunSpec
	proc  sandbox.Process
	dir   string
	stdin *os.File
	start time.Time

	out     chan RunEvent // chunks, from the two readers
	readers sync.WaitGroup
	exited  chan struct{} // closed once the process is reaped
	exit    sandbox.Exit

	mu      sync.Mutex
	verdict string // why the worker ended it, first reason wins
	sent    int64  // output bytes handed out
	idle    *time.Timer
	stdinMu sync.Mutex // one write or close of stdin at a time
	done    bool       // the exit event was handed out
	// closed is closed by Close: the readers stop handing out output.
	closed chan struct{}

	once    sync.Once
	release func()
}

// StartRun starts spec's program on this worker: it takes a slot (waiting
// up to spec.SlotWait), counts the run's memory against the budget and
// starts the sandbox. The caller must Close the run.
func (w *Worker) StartRun(ctx context.Context, spec RunSpec) (*Run, error) {
	if err := checkRunFiles(spec); err != nil {
		return nil, err
	}
	rt, err := python.Pick(w.cfg.Runtimes, spec.Runtime)
	if err != nil {
		return nil, err
	}
	spec.Limits = spec.Limits.withDefaults()
	if !w.slots.acquire(ctx, spec.SlotWait, false) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, ErrNoCapacity
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		w.slots.release()
		return nil, ErrClosed
	}
	size := w.reserveLocked(spec.Limits.MemoryMB, time.Now())
	w.mu.Unlock()
	release := func() {
		w.mu.Lock()
		w.unreserveLocked(size)
		w.mu.Unlock()
		w.slots.release()
	}
	// A run's start counts as a cold start: the pools' fills wait for it.
	w.coldStarts.Add(1)
	r, err := w.startRun(ctx, spec, rt)
	w.lastColdStart.Store(time.Now().UnixNano())
	w.coldStarts.Add(-1)
	if err != nil {
		release()
		return nil, err
	}
	r.release = release
	return r, nil
}

// checkRunFiles checks that every file name is a clean relative path and
// that the entry is one of them (a function's entry is checked by the
// server, which has its package).
func checkRunFiles(spec RunSpec) error {
	if spec.Function != nil {
		if len(spec.Files) > 0 || spec.Entry == "" || path.IsAbs(spec.Entry) || path.Clean(spec.Entry) != spec.Entry || strings.HasPrefix(spec.Entry, "../") {
			return fmt.Errorf("a function's run needs a clean relative entry and no files of its own")
		}
		return nil
	}
	if len(spec.Files) == 0 {
		return errors.New("a run needs at least one file")
	}
	for name := range spec.Files {
		if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == "." || strings.HasPrefix(name, "../") || name == ".." {
			return fmt.Errorf("file name %q is not a clean relative path", name)
		}
	}
	if _, ok := spec.Files[spec.Entry]; !ok {
		return fmt.Errorf("the entry %q is not one of the run's files", spec.Entry)
	}
	return nil
}

// writeRunFiles writes a run's files into a new directory under parent,
// readable by the sandbox's own uid and writable by the worker only (it is
// mounted read-only besides).
func writeRunFiles(parent string, files map[string][]byte) (string, error) {
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(parent, "run-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		err := os.MkdirAll(filepath.Dir(p), 0o755)
		if err == nil {
			err = os.WriteFile(p, data, 0o644)
		}
		if err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("write the run's files: %w", err)
		}
	}
	return dir, nil
}

// runSandbox is a started run's process and the worker's ends of its
// stdio.
type runSandbox struct {
	proc                sandbox.Process
	stdin, stdout, errs *os.File
}

// stockedRunSandbox gives the run a sandbox from the stock, with dir as
// its code: nil (and no error) when the stock has none for rt, or the
// stocked one could not take the run (it is closed, and the run starts
// afresh).
func (w *Worker) stockedRunSandbox(spec RunSpec, rt python.Runtime, dir string, owned bool) (*runSandbox, error) {
	sr := w.runStock.take(rt)
	if sr == nil {
		return nil, nil
	}
	attacher := w.cfg.Executor.(sandbox.CodeAttacher)
	err := attacher.AttachCode(sr.proc, dir, spec.Limits.MemoryMB)
	if err == nil {
		if p, ok := sr.proc.(sandbox.Prioritized); ok {
			err = p.Foreground()
		}
	}
	if err == nil {
		root := w.cfg.Executor.TaskRoot(dir)
		err = python.SendRun(sr.start, path.Join(root, spec.Entry), spec.Args, runEnv(spec, nil))
	}
	if err != nil {
		w.cfg.Log.Debug("a stocked run sandbox could not take its run", "err", err)
		sr.close()
		if owned {
			attacher.UnstageCode(dir)
		}
		return nil, nil
	}
	return &runSandbox{proc: sr.proc, stdin: sr.stdin, stdout: sr.stdout, errs: sr.errs}, nil
}

// freshRunSandbox starts a sandbox for the run with dir as its code and
// st's layers mounted, and gives it its run as a stocked one gets it
// (the run starter runs the entry either way).
func (w *Worker) freshRunSandbox(spec RunSpec, rt python.Runtime, dir string, st stock) (*runSandbox, error) {
	starter, err := python.WriteRunStarter(filepath.Dir(w.bootstrap))
	if err != nil {
		return nil, err
	}
	sr, err := w.startStarter(rt, starter, sandbox.Spec{MemoryMB: spec.Limits.MemoryMB, CodeDir: dir, Mounts: st.layers})
	if err != nil {
		return nil, err
	}
	root := w.cfg.Executor.TaskRoot(dir)
	if err := python.SendRun(sr.start, path.Join(root, spec.Entry), spec.Args, runEnv(spec, st.sysPath)); err != nil {
		sr.close()
		return nil, err
	}
	return &runSandbox{proc: sr.proc, stdin: sr.stdin, stdout: sr.stdout, errs: sr.errs}, nil
}

// startStarter starts rt's interpreter with the run starter in a sandbox
// of spec (its memory, code or late code, layers, priority), with pipes
// for its stdio and its fd 3, whose worker ends it returns.
func (w *Worker) startStarter(rt python.Runtime, starter string, spec sandbox.Spec) (*stockedRun, error) {
	var files [8]*os.File // stdinR, stdinW, outR, outW, errR, errW, startR, startW
	for k := 0; k < len(files); k += 2 {
		r, wr, err := os.Pipe()
		if err != nil {
			for _, f := range files {
				if f != nil {
					f.Close()
				}
			}
			return nil, err
		}
		files[k], files[k+1] = r, wr
	}
	root := w.cfg.Executor.TaskRoot(spec.CodeDir)
	spec.Path, spec.Args = rt.Executable, append(append([]string{rt.Executable}, python.RunFlags...), starter)
	spec.Env, spec.Dir, spec.Runtime, spec.Files = runBaseEnv(root), root, rt.Prefix, []string{starter}
	spec.Stdin, spec.Output, spec.Stderr, spec.ExtraFiles = files[0], files[3], files[5], []*os.File{files[6]}
	proc, err := w.cfg.Executor.Start(spec)
	for _, k := range []int{0, 3, 5, 6} {
		files[k].Close()
	}
	if err != nil {
		for _, k := range []int{1, 2, 4, 7} {
			files[k].Close()
		}
		return nil, err
	}
	return &stockedRun{proc: proc, stdin: files[1], stdout: files[2], errs: files[4], start: files[7]}, nil
}

func (w *Worker) startRun(ctx context.Context, spec RunSpec, rt python.Runtime) (*Run, error) {
	var (
		dir   string
		owned bool // dir is the run's own, removed when it ends (not the code cache's)
		st    stock
		err   error
	)
	if fn := spec.Function; fn != nil {
		if dir, err = w.code.dirFor(ctx, fn.CodeSHA256, codepkg.DefaultLimits()); err == nil {
			st, err = w.layersStock(ctx, rt, *fn)
		}
	} else {
		dir, err = writeRunFiles(filepath.Join(w.cfg.DataDir, "runs"), spec.Files)
		owned = true
	}
	if err != nil {
		return nil, err
	}
	start := time.Now()
	var sb *runSandbox
	if len(st.layers) == 0 { // a stocked sandbox has no layers mounted
		sb, err = w.stockedRunSandbox(spec, rt, dir, owned)
	}
	if sb == nil && err == nil {
		sb, err = w.freshRunSandbox(spec, rt, dir, st)
	}
	if err != nil {
		if owned {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("start the run: %w", err)
	}
	proc := sb.proc
	if !owned {
		dir = ""
	}
	r := &Run{
		w: w, spec: spec, proc: proc, dir: dir, stdin: sb.stdin, start: start,
		out: make(chan RunEvent), exited: make(chan struct{}), closed: make(chan struct{}),
	}
	r.idle = time.AfterFunc(spec.Limits.IdleTimeout, func() { r.end(VerdictIdle) })
	wall := time.AfterFunc(spec.Limits.Timeout, func() { r.end(VerdictTimeout) })
	go func() {
		r.exit = proc.Wait()
		wall.Stop()
		r.idle.Stop()
		close(r.exited)
	}()
	r.readers.Add(2)
	go r.read(sb.stdout, Stdout)
	go r.read(sb.errs, Stderr)
	go func() {
		r.readers.Wait()
		close(r.out)
	}()
	return r, nil
}

// runBaseEnv is the environment every run starts with.
func runBaseEnv(root string) []string {
	return []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LANG=C.UTF-8",
		"TZ=UTC",
		"HOME=/tmp",
		"PYTHONUNBUFFERED=1",
		"PYTHONDONTWRITEBYTECODE=1",
		"NIMBUS_TASK_ROOT=" + root,
	}
}

// runEnv is what a run adds to runBaseEnv: its id, the directories the
// run starter puts on sys.path after the entry's (a function's layers),
// then the caller's variables but those the platform sets.
func runEnv(spec RunSpec, sysPath []string) map[string]string {
	env := map[string]string{"NIMBUS_RUN_ID": spec.ID}
	if len(sysPath) > 0 {
		env["NIMBUS_SYS_PATH"] = strings.Join(sysPath, ":")
	}
	for k, v := range spec.Env {
		if k != "" && !strings.ContainsAny(k, "=\x00") && !strings.ContainsRune(v, 0) && !strings.HasPrefix(k, "NIMBUS_") && k != "PATH" {
			env[k] = v
		}
	}
	return env
}

// read hands out f's output in chunks of at most RunChunk bytes, counted
// against the output limit: the chunk that reaches the limit is cut at
// it and the run is ended.
func (r *Run) read(f *os.File, stream int) {
	defer r.readers.Done()
	defer f.Close()
	for {
		buf := make([]byte, RunChunk)
		n, err := f.Read(buf)
		if n > 0 {
			r.idle.Reset(r.spec.Limits.IdleTimeout)
			r.mu.Lock()
			left := r.spec.Limits.OutputBytes - r.sent
			over := int64(n) > left
			if over {
				n = int(max(left, 0))
			}
			r.sent += int64(n)
			r.mu.Unlock()
			if n > 0 {
				select {
				case r.out <- RunEvent{Stream: stream, Data: buf[:n]}:
				case <-r.closed:
					return
				}
			}
			if over {
				r.end(VerdictOutputLimit)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Next returns the run's next event, waiting for it: a chunk of output,
// or, once the program has ended and its output is all handed out, the
// exit (after which Next returns io.EOF). A ctx that ends stops the wait
// only.
func (r *Run) Next(ctx context.Context) (RunEvent, error) {
	select {
	case ev, ok := <-r.out:
		if ok {
			return ev, nil
		}
	case <-ctx.Done():
		return RunEvent{}, ctx.Err()
	}
	select {
	case <-r.exited:
	case <-ctx.Done():
		return RunEvent{}, ctx.Err()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return RunEvent{}, io.EOF
	}
	r.done = true
	return RunEvent{Exit: r.exitLocked()}, nil
}

// exitLocked describes how the run ended. Needs r.mu.
func (r *Run) exitLocked() *RunExit {
	ex := &RunExit{
		Code: r.exit.Code, Signal: r.exit.Signal, Verdict: r.verdict,
		Wall: time.Since(r.start), CPU: r.exit.CPU, MaxMemB: r.exit.PeakMemoryBytes,
		Output: r.sent, WorkerID: r.w.cfg.ID,
	}
	if ex.Verdict == "" && r.exit.OOMKilled {
		ex.Verdict = VerdictOutOfMemory
	}
	return ex
}

// Input passes in to the program: stdin bytes (waiting while the
// program does not read them and its pipe is full), the end of its
// stdin, or a signal. Input to a program that has ended is dropped.
func (r *Run) Input(in RunInput) error {
	r.idle.Reset(r.spec.Limits.IdleTimeout)
	switch in.Signal {
	case "":
	case SignalInterrupt:
		return signal(r.proc, syscall.SIGINT)
	case SignalTerminate:
		r.setVerdict(VerdictTerminated)
		signal(r.proc, syscall.SIGTERM)
		go func() {
			select {
			case <-r.exited:
			case <-time.After(terminateGrace):
				r.proc.Kill()
			}
		}()
		return nil
	default:
		return fmt.Errorf("unknown signal %q (interrupt or terminate)", in.Signal)
	}
	r.stdinMu.Lock()
	defer r.stdinMu.Unlock()
	if len(in.Stdin) > 0 {
		if _, err := r.stdin.Write(in.Stdin); err != nil && !errors.Is(err, syscall.EPIPE) && !errors.Is(err, os.ErrClosed) {
			return err
		}
	}
	if in.EOF {
		r.stdin.Close()
	}
	return nil
}

// signal sends sig to p where its process supports it.
func signal(p sandbox.Process, sig syscall.Signal) error {
	s, ok := p.(sandbox.Signaler)
	if !ok {
		return errors.New("this executor cannot signal its programs")
	}
	return s.Signal(sig)
}

func (r *Run) setVerdict(v string) {
	r.mu.Lock()
	if r.verdict == "" {
		r.verdict = v
	}
	r.mu.Unlock()
}

// end ends the run for a reason of the worker's (a limit).
func (r *Run) end(verdict string) {
	select {
	case <-r.exited:
		return // it ended by itself first
	default:
	}
	r.setVerdict(verdict)
	r.proc.Kill()
}

// Close ends the run (killing the program if it still runs, with
// VerdictCanceled), waits for it to be gone, and frees its slot and
// files.
func (r *Run) Close() {
	r.once.Do(func() {
		r.end(VerdictCanceled)
		<-r.exited
		r.stdin.Close()
		close(r.closed)
		r.readers.Wait()
		if r.dir != "" { // the run's own files, not a function's code
			if a, ok := r.w.cfg.Executor.(sandbox.CodeAttacher); ok {
				a.UnstageCode(r.dir) // a stocked sandbox's code was staged
			}
			os.RemoveAll(r.dir)
		}
		if r.release != nil {
			r.release()
		}
	})
}

// Exited is closed once the program has ended (its exit may not be
// handed out yet).
func (r *Run) Exited() <-chan struct{} { return r.exited }

// RunConn is a started run as its caller sees it, whether it runs in
// this process (*Run) or on a remote worker.
type RunConn interface {
	// Next waits for the run's next event (see Run.Next).
	Next(ctx context.Context) (RunEvent, error)
	// Input passes stdin, its end or a signal to the program.
	Input(in RunInput) error
	// Close ends the run (killing the program if it still runs) and
	// frees what it holds.
	Close()
}

var _ RunConn = (*Run)(nil)
