package python

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/nbio"
	"nimbus/internal/sandbox"
)

// Defaults for InstanceConfig.
const (
	DefaultLogLimit    = 1 << 20 // bytes of handler output per invocation
	DefaultResultLimit = 6 << 20 // bytes of result (or error) JSON
	DefaultMemoryMB    = 128
	DefaultTimeout     = 3 * time.Second
)

// Error types of the outcomes the platform imposes (spec §3).
const (
	ErrTypeTimeout      = "Sandbox.Timeout"
	ErrTypeOutOfMemory  = "Sandbox.OutOfMemory"
	ErrTypeOutputLimit  = "Sandbox.OutputLimitExceeded"
	ErrTypeCrashed      = "Sandbox.Crashed"
	logDrainGrace       = 250 * time.Millisecond // wait for a dead instance's last log bytes
	exitGrace           = 250 * time.Millisecond // let a process that closed its pipe exit on its own
	defaultStartTimeout = 60 * time.Second
)

// ErrClosed is returned by Invoke on an instance that was closed or has
// died (after any platform-imposed outcome, or a crash between invocations).
var ErrClosed = errors.New("python: instance closed")

// InstanceConfig says what an instance runs.
type InstanceConfig struct {
	Runtime   Runtime
	Bootstrap string // path returned by WriteBootstrap
	CodeDir   string // the function's code: cwd and first sys.path entry
	Handler   string // module.function
	// Layers are the function's read-only layers (its dependency layer
	// at /opt/python): on sys.path in this order, after CodeDir and
	// before the runtime's own modules, as Lambda orders them.
	Layers []sandbox.Mount
	// SysPath are the directories of the layers on sys.path, in order, as
	// the instance sees them (see sandbox.Executor.MountPath).
	SysPath []string
	// Preload names the layers' top-level modules a pre-started instance
	// imports while it waits for its function (PrestartConfig).
	Preload      []string
	FunctionName string
	Revision     int64 // reported as the function version when Version is ""
	// Version is the function version the instance reports (context,
	// AWS_LAMBDA_FUNCTION_VERSION, the log stream): "$LATEST" or a
	// published version's number.
	Version  string
	MemoryMB int // default DefaultMemoryMB
	TmpMB    int // size of /tmp in MB where the executor provides one; 0 for its default
	// Env holds the function's own variables. Names the platform reserves
	// (PATH, LANG, TZ, PYTHON*, LAMBDA_*, AWS_LAMBDA_*, _HANDLER) are
	// ignored: the platform's values win.
	Env map[string]string
	// LogLimit bounds the handler's output per invocation (default
	// DefaultLogLimit); the START/END/REPORT lines and, on the first
	// invocation, the init output (bounded the same way) come on top.
	LogLimit    int
	ResultLimit int // default DefaultResultLimit
	Executor    sandbox.Executor
	// FreezeIdle freezes the instance's processes between invocations
	// (and after its start), where the executor can (see
	// sandbox.Controlled): nothing of the function runs while no
	// invocation does. FreezeDelay is how long an instance stays idle
	// before it is frozen (0: at once, as the response is read).
	FreezeIdle  bool
	FreezeDelay time.Duration
}

// Request is one invocation.
type Request struct {
	RequestID string
	Payload   []byte        // the event, JSON; anything else arrives as a string
	Timeout   time.Duration // wall clock; default DefaultTimeout
	// Ready says the instance was started ahead of this invocation
	// (provisioned), so its start is not this invocation's: no Init
	// Duration, as Lambda reports provisioned instances. The start's log
	// still comes with the instance's first invocation.
	Ready bool
	// Spin is how long the worker may busy-poll for the response before
	// parking (0: not at all). Worth it only while a CPU is free for the
	// handler, which the caller judges (see worker.spinBudget).
	Spin time.Duration
	// Chunk, when set, receives each chunk of a streamed result (a
	// handler that returns a generator) as it comes; the handler's next
	// chunk waits until Chunk returns. data is valid during the call only.
	// Without it the chunks are joined into the Payload.
	Chunk func(data []byte)
}

// BilledMS is what a duration is billed at: rounded up to the
// millisecond, at least 1 (Lambda's rule), for invocations and runs alike.
func BilledMS(d time.Duration) int64 {
	return max(1, (d.Nanoseconds()+int64(time.Millisecond)-1)/int64(time.Millisecond))
}

// StreamLimit bounds the bytes a streamed result sends in all (Lambda's
// response streaming allows 20 MB).
const StreamLimit = 20 << 20

// Response is how an invocation ended. Handler errors and platform-imposed
// outcomes are both Responses with ErrorType set.
type Response struct {
	Payload      []byte // result JSON, or the error JSON {"errorMessage","errorType","stackTrace"?}
	ErrorType    string // "" on success; the Python exception type, "Runtime.*" or "Sandbox.*"
	Log          []byte // the handler's output framed by START, END and REPORT lines
	Duration     time.Duration
	BilledMS     int64 // Duration rounded up to the millisecond, at least 1
	MaxMemoryMB  int
	InitDuration time.Duration // nonzero only on the instance's first invocation
	// ProcessesLeft counts the processes besides the interpreter that
	// the instance had running when the handler returned (known where
	// the executor confines the instance in a cgroup).
	ProcessesLeft int
	// CPU is the CPU time the instance's cgroup used since the previous
	// invocation ended (its start, for the first: the import counts
	// with the cold start), where the executor confines the instance in
	// a cgroup that accounts CPU; 0 elsewhere.
	CPU time.Duration
}

// Instance is one interpreter process hosting one handler. Invoke serves
// one invocation at a time (concurrent calls queue); Alive, Pid and Close
// are safe to call from any goroutine at any time.
type Instance struct {
	cfg        InstanceConfig
	version    string
	proc       sandbox.Process
	reqW       *os.File  // fd 3 in the child
	req        io.Writer // writes reqW: raw system calls where it can (nbio)
	respR      *os.File  // fd 4 in the child
	logs       *logPipe
	exited     chan struct{} // closed when the process has exited; exit is set then
	exit       sandbox.Exit
	logStream  string
	prestarted bool // started by Prestart: needs Assign before Invoke
	assigned   bool
	initLog    []byte
	initDur    time.Duration
	initErr    string
	dead       atomic.Bool
	closed     atomic.Bool
	closeMu    sync.Once
	mu         sync.Mutex // serialises Invoke and the handshake; guards the fields below
	invoked    bool
	reqBuf     []byte
	scratch    []byte     // read-ahead for response frames
	resp       respReader // respR as the frame reader sees it
	lastRSSK   int64
	// ctl is the process's cgroup, nil where the executor has none.
	ctl         sandbox.Controlled
	pidsHits    int64         // pids-limit refusals already reported
	cpuSeen     time.Duration // the cgroup's CPU time at the last look
	freezeTimer *time.Timer   // freezes the instance FreezeDelay after it went idle
	freezeArmed bool          // the instance went idle and was not invoked since
}

// respReader reads the response pipe for one exchange. The pipe's read
// deadline is the exchange's deadline, or sooner the next check of ctx
// (every ctxCheck: cheaper per exchange than registering with ctx, and
// exchanges mostly end in microseconds); the instance's exit interrupts a
// read by moving the deadline to the past. A read interrupted for no
// reason of the exchange (a check, or a late interruption meant for an
// earlier exchange) is resumed.
type respReader struct {
	f        *os.File
	rc       syscall.RawConn // f's, for spinning; nil if it has none
	pollFunc func(uintptr)   // r.pollFD, bound once (at spawn)
	exited   <-chan struct{}
	ctx      context.Context
	deadline time.Time
	spin     time.Duration // the exchange's first read may busy-poll this long
	poll     spinPoll
}

// ctxCheck is how often a read waiting for a response checks whether its
// context has ended.
const ctxCheck = 50 * time.Millisecond

// interrupt makes a pending read on f return now.
func interrupt(f *os.File) { f.SetReadDeadline(time.Unix(1, 0)) }

func (r *respReader) Read(p []byte) (int, error) {
	if budget := r.spin; budget > 0 {
		r.spin = 0
		if n, err, ok := r.spinRead(p, budget); ok {
			return n, err
		}
	}
	for {
		n, err := r.f.Read(p)
		if n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		select {
		case <-r.exited:
			return 0, err
		default:
		}
		now := time.Now()
		if r.ctx.Err() != nil || !now.Before(r.deadline) {
			return 0, err
		}
		r.f.SetReadDeadline(r.next(now))
	}
}

// spinRead polls the pipe without blocking for up to budget, and reports
// whether it read (or met EOF or an error) in that time. A short handler
// answers within tens of microseconds: polling meanwhile spares the
// response the wake-up of a parked reader (the poller, then a thread
// brought back from sleep: on a virtual machine, an idle CPU's wake-up
// too), which costs more than the handler. Polling stops at the
// exchange's deadline; it does not watch ctx (a budget is microseconds).
// The descriptor is held (RawConn.Control) while polling, so a concurrent
// Close cannot hand its number to another file.
func (r *respReader) spinRead(p []byte, budget time.Duration) (n int, err error, ok bool) {
	if r.rc == nil {
		return 0, nil, false
	}
	r.poll = spinPoll{buf: p, end: time.Now().Add(budget)}
	if r.deadline.Before(r.poll.end) {
		r.poll.end = r.deadline
	}
	cerr := r.rc.Control(r.pollFunc)
	got := r.poll
	r.poll = spinPoll{}
	switch {
	case cerr != nil || !got.ok:
		return 0, nil, false // closed, or nothing yet: the parked read says which
	case got.err != nil:
		return 0, &os.PathError{Op: "read", Path: r.f.Name(), Err: got.err}, true
	case got.n == 0:
		return 0, io.EOF, true
	}
	return got.n, nil, true
}

// spinPoll is one spinRead's state, kept in the reader so that polling
// allocates nothing (pollFD is bound once, as pollFunc).
type spinPoll struct {
	buf []byte
	end time.Time
	n   int
	err error
	ok  bool
}

// pollFD is spinRead's loop on the held descriptor.
func (r *respReader) pollFD(fd uintptr) {
	sp := &r.poll
	for {
		n, err := nbio.Read(fd, sp.buf)
		if err != syscall.EAGAIN {
			sp.n, sp.err, sp.ok = n, err, true
			return
		}
		if !time.Now().Before(sp.end) {
			return
		}
	}
}

// next is the read deadline from now: the exchange's, or the next check
// of a context that can end.
func (r *respReader) next(now time.Time) time.Time {
	if r.ctx.Done() == nil {
		return r.deadline
	}
	if check := now.Add(ctxCheck); check.Before(r.deadline) {
		return check
	}
	return r.deadline
}

// exchange reads one response frame, bounded by deadline and ctx.
func (i *Instance) exchange(ctx context.Context, deadline time.Time) frame {
	i.resp.ctx, i.resp.deadline = ctx, deadline
	i.respR.SetReadDeadline(i.resp.next(time.Now()))
	f := readFrame(&i.resp, i.scratch, i.cfg.ResultLimit+frameOverhead)
	i.resp.ctx = nil
	return f
}

// Start starts an instance and waits, bounded by ctx, until the bootstrap
// has imported the handler. A handler that fails to import still gives a
// live instance (each invocation then answers with the import error; see
// InitErrorType); an interpreter that dies or never gets ready is an error.
func Start(ctx context.Context, cfg InstanceConfig) (*Instance, error) {
	if cfg.Executor == nil || cfg.Runtime.Executable == "" || (cfg.Bootstrap == "" && cfg.Runtime.Program == "") || cfg.CodeDir == "" || cfg.Handler == "" {
		return nil, errors.New("python: InstanceConfig needs Executor, Runtime, Bootstrap (or a Runtime's Program), CodeDir and Handler")
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultStartTimeout)
		defer cancel()
	}
	inst, err := spawn(cfg, false)
	if err != nil {
		return nil, err
	}
	if err := inst.init(ctx, nil); err != nil {
		return nil, err
	}
	return inst, nil
}

// spawn starts the interpreter with the bootstrap, which then waits for
// its init frame. lateCode says the code directory is an empty mount
// point that receives the code later (a pre-started instance).
func spawn(cfg InstanceConfig, lateCode bool) (*Instance, error) {
	if cfg.LogLimit <= 0 {
		cfg.LogLimit = DefaultLogLimit
	}
	if cfg.ResultLimit <= 0 {
		cfg.ResultLimit = DefaultResultLimit
	}
	if cfg.MemoryMB <= 0 {
		cfg.MemoryMB = DefaultMemoryMB
	}
	version := cfg.reportedVersion()
	logStream := newLogStream(version)

	var files [6]*os.File // reqR, reqW, respR, respW, logR, logW
	closeAll := func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}
	for k := 0; k < 6; k += 2 {
		r, w, err := os.Pipe()
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("python: pipe: %w", err)
		}
		files[k], files[k+1] = r, w
	}
	reqR, reqW, respR, respW, logR, logW := files[0], files[1], files[2], files[3], files[4], files[5]

	spec := sandbox.Spec{
		Path:       cfg.Runtime.Executable,
		Args:       append(append([]string{cfg.Runtime.Executable}, interpreterFlags...), cfg.Bootstrap),
		Env:        withPreload(environ(cfg, version, logStream), cfg),
		Dir:        cfg.Executor.TaskRoot(cfg.CodeDir),
		Output:     logW,
		ExtraFiles: []*os.File{reqR, respW},
		MemoryMB:   cfg.MemoryMB,
		TmpMB:      cfg.TmpMB,
		CodeDir:    cfg.CodeDir,
		Runtime:    cfg.Runtime.Prefix,
		Files:      []string{cfg.Bootstrap},
		Mounts:     cfg.Layers,
		LateCode:   lateCode,
		Background: lateCode, // started ahead: it waits at the lowest priority
	}
	if prog := cfg.Runtime.Program; prog != "" {
		spec.Path, spec.Args, spec.Files = prog, []string{prog, cfg.Runtime.ProgramArg}, []string{prog}
		spec.Interpreter = cfg.Runtime.Executable
		if cfg.Runtime.Executable != "/usr/bin/python3" {
			spec.Links = [][2]string{{cfg.Runtime.Executable, "/usr/bin/python3"}}
		}
	}
	proc, err := cfg.Executor.Start(spec)
	reqR.Close()
	respW.Close()
	logW.Close()
	if err != nil {
		reqW.Close()
		respR.Close()
		logR.Close()
		return nil, fmt.Errorf("python: start instance: %w", err)
	}
	inst := &Instance{
		cfg:     cfg,
		version: version,
		proc:    proc,
		reqW:    reqW,
		req:     reqW,
		respR:   respR,
		exited:  make(chan struct{}),
		scratch: make([]byte, 4<<10),
	}
	if w, err := nbio.NewWriter(reqW); err == nil {
		inst.req = w
	}
	inst.resp = respReader{f: respR, exited: inst.exited}
	if rc, err := respR.SyscallConn(); err == nil {
		inst.resp.rc = rc
		inst.resp.pollFunc = inst.resp.pollFD
	}
	inst.logStream = logStream
	inst.ctl, _ = proc.(sandbox.Controlled)
	inst.logs = newLogPipe(logR, cfg.LogLimit, proc.Kill)
	go func() {
		inst.exit = proc.Wait()
		close(inst.exited)
		interrupt(respR) // a read waiting for a response gives up
	}()
	go inst.logs.run()
	return inst, nil
}

// newLogStream names an instance's log stream as Lambda does.
func newLogStream(version string) string {
	streamID := make([]byte, 16)
	rand.Read(streamID)
	return time.Now().UTC().Format("2006/01/02") + "/[" + version + "]" + hex.EncodeToString(streamID)
}

// init sends the init frame (with env, for a pre-started instance: its
// function's complete environment) and waits until the handler is
// imported. On failure the instance is closed.
func (inst *Instance) init(ctx context.Context, env map[string]string) error {
	started := time.Now()
	if err := inst.handshake(ctx, inst.logStream, env); err != nil {
		tail := inst.logs.cut()
		inst.Close()
		if len(tail) > 2048 {
			tail = tail[len(tail)-2048:]
		}
		if len(tail) > 0 {
			return fmt.Errorf("python: start instance: %w; output: %s", err, bytes.TrimSpace(tail))
		}
		return fmt.Errorf("python: start instance: %w", err)
	}
	inst.initDur = time.Since(started)
	if inst.ctl != nil {
		// The handler is imported: init ran on a whole CPU, the
		// invocations run under the cap of the memory size.
		if err := inst.ctl.CapCPU(); err != nil {
			inst.Close()
			return fmt.Errorf("python: cap the instance's CPU: %w", err)
		}
	}
	inst.mu.Lock()
	inst.idle()
	inst.mu.Unlock()
	return nil
}

// idle is called, with mu held, when the instance has finished its start
// or an invocation: it freezes the instance, at once or FreezeDelay
// later, if it is to be frozen.
func (i *Instance) idle() {
	if i.ctl == nil || !i.cfg.FreezeIdle || !i.Alive() {
		return
	}
	if i.cfg.FreezeDelay <= 0 {
		i.ctl.Freeze()
		return
	}
	i.freezeArmed = true
	if i.freezeTimer == nil {
		i.freezeTimer = time.AfterFunc(i.cfg.FreezeDelay, i.freezeIfIdle)
		return
	}
	i.freezeTimer.Reset(i.cfg.FreezeDelay)
}

// freezeIfIdle freezes the instance unless an invocation came since it
// went idle (one running holds mu, and arms the timer again as it ends).
func (i *Instance) freezeIfIdle() {
	if !i.mu.TryLock() {
		return
	}
	defer i.mu.Unlock()
	if i.freezeArmed && i.Alive() {
		i.freezeArmed = false
		i.ctl.Freeze()
	}
}

// wake thaws the instance for an invocation, with mu held. A frozen
// instance that cannot be thawed is dead.
func (i *Instance) wake() error {
	if i.ctl == nil {
		return nil
	}
	if i.freezeArmed {
		i.freezeArmed = false
		i.freezeTimer.Stop()
	}
	if err := i.ctl.Thaw(); err != nil {
		i.dead.Store(true)
		i.proc.Kill()
		return fmt.Errorf("%w: thaw: %v", ErrClosed, err)
	}
	return nil
}

// handshake sends the init frame and waits for the ready frame and the
// init log.
func (i *Instance) handshake(ctx context.Context, logStream string, env map[string]string) error {
	fields := map[string]any{
		"handler":          i.cfg.Handler,
		"function_name":    i.cfg.FunctionName,
		"function_version": i.version,
		"arn":              i.cfg.functionARN(),
		"memory_mb":        i.cfg.MemoryMB,
		"log_group_name":   "/aws/lambda/" + i.cfg.FunctionName,
		"log_stream_name":  logStream,
	}
	if len(i.cfg.SysPath) > 0 {
		fields["path"] = i.cfg.SysPath
	}
	if env != nil {
		fields["env"] = env
		fields["chdir"] = i.cfg.Executor.TaskRoot(i.cfg.CodeDir)
	}
	initFrame, _ := json.Marshal(fields)
	i.mu.Lock()
	defer i.mu.Unlock()
	if deadline, ok := ctx.Deadline(); ok {
		i.reqW.SetWriteDeadline(deadline)
	}
	if _, err := i.reqW.Write(appendFrame(nil, initFrame)); err != nil {
		return fmt.Errorf("send init frame: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultStartTimeout)
	}
	f := i.exchange(ctx, deadline)
	if f.err != nil {
		select {
		case <-i.exited:
			return i.exitError(errors.New("interpreter exited during init"))
		default:
		}
		if errors.Is(f.err, os.ErrDeadlineExceeded) {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("waiting for init: %w", err)
			}
			return fmt.Errorf("waiting for init: %w", context.DeadlineExceeded)
		}
		return i.exitError(fmt.Errorf("reading ready frame: %w", f.err))
	}
	var ready readyFrame
	if err := json.Unmarshal(f.body, &ready); err != nil || ready.Ready == nil {
		return errors.New("bad ready frame")
	}
	// The bootstrap flushed its output before the ready frame.
	log, overflow := i.takeLog()
	if overflow {
		return errors.New("init output over the log limit")
	}
	i.initLog = log
	if !*ready.Ready {
		i.initErr = errorType(ready.Error)
	}
	return nil
}

// exitError adds how the process ended to err, once it has ended.
func (i *Instance) exitError(err error) error {
	t := time.NewTimer(exitGrace)
	defer t.Stop()
	select {
	case <-i.exited:
		return fmt.Errorf("%w (%s)", err, describeExit(i.exit))
	case <-t.C:
		return err
	}
}

// InitErrorType reports the error type of a failed handler import
// ("Runtime.ImportModuleError", ...), or "" if the handler loaded.
func (i *Instance) InitErrorType() string { return i.initErr }

// Pid returns the process id of the interpreter.
func (i *Instance) Pid() int { return i.proc.Pid() }

// MemoryBytes is the memory the instance's sandbox is charged for now,
// and whether the executor can tell (it cannot without a cgroup, or
// once the instance has ended). Safe to call while it is invoked.
func (i *Instance) MemoryBytes() (int64, bool) {
	if i.ctl == nil || !i.Alive() {
		return 0, false
	}
	n := i.ctl.MemoryBytes()
	return n, n > 0
}

// Alive reports whether the instance can take another invocation.
func (i *Instance) Alive() bool {
	if i.dead.Load() {
		return false
	}
	select {
	case <-i.exited:
		return false
	default:
		return true
	}
}

// Close kills the process (and everything it started), reaps it and
// releases the pipes. It is idempotent; an Invoke in progress returns
// ErrClosed.
func (i *Instance) Close() {
	i.closeMu.Do(func() {
		i.closed.Store(true)
		i.dead.Store(true)
		i.proc.Kill() // thaws a frozen instance, once the signal is sent
		<-i.exited
		i.reqW.Close()
		i.respR.Close()
		i.logs.close()
	})
}

// Invoke runs one invocation. Invocations on one instance run one at a
// time. Handler errors and platform-imposed outcomes (timeout, output
// limits, crash, OOM) come back as a Response with ErrorType set; after a
// platform outcome the instance is killed and Alive reports false. The Go
// error is ErrClosed for a closed or dead instance, or ctx's error when ctx
// ends first (the instance is then killed too).
func (i *Instance) Invoke(ctx context.Context, req Request) (Response, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if !i.Alive() {
		return Response{}, ErrClosed
	}
	// Thawed before the clock starts: time frozen is neither billed nor
	// counted against the timeout.
	if err := i.wake(); err != nil {
		return Response{}, err
	}
	defer i.idle()
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	first := !i.invoked
	i.invoked = true
	inv := invocation{inst: i, req: req, first: first, cold: first && !req.Ready, timeout: timeout, start: time.Now()}
	deadline := inv.start.Add(timeout)

	i.reqBuf = appendRequest(i.reqBuf[:0], req.RequestID, req.Payload, deadline.UnixMilli())
	i.reqW.SetWriteDeadline(deadline)
	if _, err := i.req.Write(i.reqBuf); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return inv.timedOut()
		}
		// The request never reached the runtime (it died while idle, or
		// a previous handler closed the pipe): not this invocation's
		// failure. The instance is dead; the caller may retry elsewhere.
		i.dead.Store(true)
		i.proc.Kill()
		return Response{}, fmt.Errorf("%w: runtime closed its request pipe", ErrClosed)
	}
	if cap(i.reqBuf) > 64<<10 {
		i.reqBuf = nil // do not pin a large payload's buffer
	}

	// The response is read here, by the invoking goroutine: no reader
	// goroutine hands it over.
	i.resp.spin = req.Spin
	var (
		f        frame
		streamed int
		joined   []byte
	)
	for {
		f = i.exchange(ctx, deadline)
		if f.err != nil || len(f.body) == 0 || f.body[0] != kindChunk {
			break
		}
		id, data, ok := parseChunk(f.body)
		if !ok || string(id) != req.RequestID {
			return inv.crashed("Runtime broke the response protocol: unexpected chunk")
		}
		if streamed += len(data); streamed > StreamLimit {
			return inv.fail(ErrTypeOutputLimit, fmt.Sprintf("Streamed response over the limit of %d bytes", StreamLimit))
		}
		if req.Chunk != nil {
			req.Chunk(data)
		} else {
			joined = append(joined, data...)
		}
		if _, err := i.req.Write(ackFrame); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return inv.timedOut()
			}
			return inv.crashed(whyClosedPipe)
		}
	}
	switch {
	case f.tooLarge:
		return inv.fail(ErrTypeOutputLimit, fmt.Sprintf("Response payload over the limit of %d bytes", i.cfg.ResultLimit))
	case errors.Is(f.err, os.ErrDeadlineExceeded):
		return inv.interrupted(ctx)
	case errors.Is(f.err, io.EOF):
		return inv.crashed(whyClosedPipe)
	case errors.Is(f.err, os.ErrClosed):
		return Response{}, ErrClosed
	case f.err != nil:
		return inv.crashed("Runtime broke the response protocol: " + f.err.Error())
	}
	inv.dur = time.Since(inv.start)
	result, ok := parseResponse(f.body)
	if !ok || string(result.id) != req.RequestID || !json.Valid(result.body) {
		return inv.crashed("Runtime broke the response protocol: unexpected frame")
	}
	// The bootstrap flushed the handler's output before the response.
	logBody, overflow := i.takeLog()
	if overflow {
		return inv.fail(ErrTypeOutputLimit, fmt.Sprintf("Log output over the limit of %d bytes", i.cfg.LogLimit))
	}

	if result.maxRSSKB > i.lastRSSK {
		i.lastRSSK = result.maxRSSKB
	}
	if len(result.body) > i.cfg.ResultLimit {
		return inv.fail(ErrTypeOutputLimit, fmt.Sprintf("Response payload over the limit of %d bytes", i.cfg.ResultLimit))
	}
	var resp Response
	resp.Payload = result.body
	if f.shared {
		resp.Payload = bytes.Clone(result.body)
	}
	if result.ok && streamed > 0 && req.Chunk == nil {
		if len(joined) > i.cfg.ResultLimit {
			return inv.fail(ErrTypeOutputLimit, fmt.Sprintf("Response payload over the limit of %d bytes", i.cfg.ResultLimit))
		}
		resp.Payload = joined // the stream, for a caller that did not stream it
	}
	if result.ok {
		if len(resp.Payload) == 0 {
			resp.Payload = []byte("null")
		}
	} else {
		resp.ErrorType = errorType(resp.Payload)
	}
	inv.fill(&resp, logBody, inv.leftovers(&resp))
	return resp, nil
}

// takeLog returns the log since the last one was taken, once the
// bootstrap has sent a frame (having flushed its output first): it reads
// the log pipe empty itself instead of waiting for the log reader.
func (i *Instance) takeLog() (log []byte, overflow bool) {
	i.logs.drain()
	if overflow, _ := i.logs.state(); overflow {
		return nil, true
	}
	return i.logs.cut(), false
}

// interrupted ends an invocation whose wait was cut short: by the
// instance's exit, by ctx, or by the deadline.
func (v *invocation) interrupted(ctx context.Context) (Response, error) {
	i := v.inst
	select {
	case <-i.exited:
		return v.crashed("")
	default:
	}
	if err := ctx.Err(); err != nil {
		i.dead.Store(true)
		i.proc.Kill()
		return Response{}, fmt.Errorf("python: invoke: %w", err)
	}
	return v.timedOut()
}

// invocation carries one Invoke's bookkeeping into the outcome helpers.
type invocation struct {
	inst    *Instance
	req     Request
	first   bool // the instance's first invocation: its start's log comes with it
	cold    bool // first, and the instance was started for it: Init Duration
	timeout time.Duration
	start   time.Time
	dur     time.Duration // set when the response arrived
}

func (v *invocation) timedOut() (Response, error) {
	return v.fail(ErrTypeTimeout, fmt.Sprintf("Task timed out after %.2f seconds", v.timeout.Seconds()))
}

// whyClosedPipe is a crash reason the exit status explains better, if
// there is one.
const whyClosedPipe = "Runtime closed its response pipe"

// crashed ends the invocation as Sandbox.Crashed, or as the more specific
// outcome the process's end reveals (OOM kill, log overflow). why is empty
// when the process was seen exiting.
func (v *invocation) crashed(why string) (Response, error) {
	i := v.inst
	if why != "" {
		// The child broke the protocol; give it a moment to exit by itself
		// so the exit status says why.
		t := time.NewTimer(exitGrace)
		select {
		case <-i.exited:
		case <-t.C:
		}
		t.Stop()
	}
	select {
	case <-i.exited:
		if i.exit.OOMKilled {
			return v.fail(ErrTypeOutOfMemory, fmt.Sprintf("Runtime exited: memory limit of %d MB exceeded", i.cfg.MemoryMB))
		}
		if overflow, _ := i.logs.state(); overflow {
			return v.fail(ErrTypeOutputLimit, fmt.Sprintf("Log output over the limit of %d bytes", i.cfg.LogLimit))
		}
		msg := "Runtime exited with " + describeExit(i.exit)
		if why != "" && why != whyClosedPipe {
			msg = why + "; " + msg
		}
		return v.fail(ErrTypeCrashed, msg)
	default:
		return v.fail(ErrTypeCrashed, why)
	}
}

// fail kills the instance and answers with a platform outcome.
func (v *invocation) fail(errType, msg string) (Response, error) {
	i := v.inst
	var resp Response
	var pidsLine string
	select {
	case <-i.exited: // its cgroup is going: nothing to count
	default:
		pidsLine = v.leftovers(&resp)
	}
	i.dead.Store(true)
	i.proc.Kill()
	<-i.exited
	if i.closed.Load() {
		return Response{}, ErrClosed
	}
	if v.dur == 0 {
		v.dur = time.Since(v.start)
	}
	// Collect the last bytes the process wrote before it died.
	t := time.NewTimer(logDrainGrace)
drain:
	for {
		if _, eof := i.logs.state(); eof {
			break
		}
		select {
		case <-i.logs.notify:
		case <-t.C:
			break drain
		}
	}
	t.Stop()
	body := i.logs.cut()
	if overflow, _ := i.logs.state(); overflow {
		body = append(body, fmt.Sprintf("\n[nimbus] log truncated at %d bytes", i.cfg.LogLimit)...)
	}
	resp.Payload, resp.ErrorType = ErrorJSON(errType, msg), errType
	line := time.Now().UTC().Format("2006-01-02T15:04:05.000Z") + " " + v.req.RequestID + " " + msg
	if pidsLine != "" {
		line = pidsLine + "\n" + line
	}
	// What the cgroup measured, read before it was removed: the
	// bootstrap's own figure never came (it reports with a response).
	if peakK := i.exit.PeakMemoryBytes >> 10; peakK > i.lastRSSK {
		i.lastRSSK = peakK
	}
	v.fill(&resp, body, line)
	return resp, nil
}

// leftovers counts the processes the instance has besides its
// interpreter into resp, and returns a log line if the function hit its
// pids limit since the last look (or "").
func (v *invocation) leftovers(resp *Response) string {
	i := v.inst
	if i.ctl == nil {
		return ""
	}
	u, err := i.ctl.Usage()
	if err != nil {
		return ""
	}
	resident := 1 // the interpreter
	if i.cfg.Runtime.Program != "" {
		resident = 2 // the program and the one child it keeps (see Runtime.Program)
	}
	resp.ProcessesLeft = max(u.Procs-resident, 0)
	if u.CPU > i.cpuSeen {
		resp.CPU = u.CPU - i.cpuSeen
		i.cpuSeen = u.CPU
	}
	if u.PidsLimitHits <= i.pidsHits {
		return ""
	}
	n := u.PidsLimitHits - i.pidsHits
	i.pidsHits = u.PidsLimitHits
	return fmt.Sprintf("%s %s [nimbus] the function reached its limit of %d processes and threads: %d process or thread starts refused",
		time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), v.req.RequestID, i.ctl.PidsLimit(), n)
}

// fill sets the accounting fields and the framed log of resp.
func (v *invocation) fill(resp *Response, body []byte, extraLine string) {
	i := v.inst
	resp.Duration = v.dur
	resp.BilledMS = BilledMS(v.dur)
	resp.MaxMemoryMB = int((i.lastRSSK + 1023) / 1024)
	if v.cold {
		resp.InitDuration = i.initDur
	}
	id := v.req.RequestID
	b := make([]byte, 0, len(body)+3*len(id)+200+len(i.initLog))
	if v.first && len(i.initLog) > 0 {
		b = appendLines(b, i.initLog)
	}
	b = model.AppendLogStart(b, id, i.version)
	b = appendLines(b, body)
	if extraLine != "" {
		b = append(b, extraLine...)
		b = append(b, '\n')
	}
	resp.Log = model.AppendLogEnd(b, model.LogReport{ID: id, DurationMS: model.DurationMS(resp.Duration),
		BilledMS: resp.BilledMS, MemoryMB: i.cfg.MemoryMB, MaxMemoryMB: resp.MaxMemoryMB, Cold: v.cold,
		InitMS: model.DurationMS(i.initDur), ProcessesLeft: resp.ProcessesLeft})
}

// appendLines appends p, ending it with a newline if it has none.
func appendLines(b, p []byte) []byte {
	if len(p) == 0 {
		return b
	}
	b = append(b, p...)
	if p[len(p)-1] != '\n' {
		b = append(b, '\n')
	}
	return b
}

func describeExit(e sandbox.Exit) string {
	if e.Signal != "" {
		return "signal " + e.Signal
	}
	return "exit status " + strconv.Itoa(e.Code)
}

// reservedEnv reports whether the platform owns the variable name.
func reservedEnv(k string) bool {
	switch k {
	case "PATH", "LANG", "TZ", "_HANDLER", "HOME", "LD_PRELOAD", "LD_LIBRARY_PATH":
		return true
	}
	return strings.HasPrefix(k, "PYTHON") || strings.HasPrefix(k, "LAMBDA_") || strings.HasPrefix(k, "AWS_LAMBDA_")
}

// environ is the complete environment of an instance: the platform's
// variables, then the function's own that do not collide with them.
// withPreload adds to a pre-started instance's environment the modules
// it imports ahead and where its layers are (the bootstrap removes both
// before the function's environment replaces it).
func withPreload(env []string, cfg InstanceConfig) []string {
	if len(cfg.Preload) == 0 {
		return env
	}
	return append(env, "NIMBUS_PRELOAD="+strings.Join(cfg.Preload, ","), "NIMBUS_PRELOAD_PATH="+strings.Join(cfg.SysPath, ":"))
}

func environ(cfg InstanceConfig, version, logStream string) []string {
	env := []string{
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"LANG=C.UTF-8",
		"TZ=UTC",
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONUNBUFFERED=1",
		"LAMBDA_TASK_ROOT=" + cfg.Executor.TaskRoot(cfg.CodeDir),
		"AWS_LAMBDA_FUNCTION_NAME=" + cfg.FunctionName,
		"AWS_LAMBDA_FUNCTION_VERSION=" + version,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=" + strconv.Itoa(cfg.MemoryMB),
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/" + cfg.FunctionName,
		"AWS_LAMBDA_LOG_STREAM_NAME=" + logStream,
		"_HANDLER=" + cfg.Handler,
	}
	keys := make([]string, 0, len(cfg.Env))
	for k := range cfg.Env {
		if k != "" && !strings.ContainsAny(k, "=\x00") && !strings.ContainsRune(cfg.Env[k], 0) && !reservedEnv(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+cfg.Env[k])
	}
	return env
}

// reportedVersion is the version the instance reports: Version, or the
// revision when that is not set.
func (cfg InstanceConfig) reportedVersion() string {
	if cfg.Version != "" {
		return cfg.Version
	}
	return strconv.FormatInt(cfg.Revision, 10)
}

// functionARN is the ARN the context reports, qualified by Version when
// that is a published one (Lambda's invoked_function_arn).
func (cfg InstanceConfig) functionARN() string {
	arn := "arn:aws:lambda:local:000000000000:function:" + cfg.FunctionName
	if v := cfg.Version; v != "" && v[0] >= '1' && v[0] <= '9' {
		arn += ":" + v
	}
	return arn
}
