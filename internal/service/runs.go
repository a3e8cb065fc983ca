package service

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"nimbus/internal/codepkg"
	"nimbus/internal/model"
	"nimbus/internal/placement"
	"nimbus/internal/runtime/python"
	"nimbus/internal/state"
	"nimbus/internal/worker"
)

// Interactive runs (docs/spec.md §2 "Interactive runs"): a client's
// program runs in a sandbox on a worker while the client feeds its stdin
// and reads its output. This is the one place a run is checked,
// admitted, queued, placed and recorded; the gateway only relays frames.

// Bounds of a run request.
const (
	MaxRunFiles       = 100
	MaxRunSource      = 6 << 20 // the files together
	MaxRunTimeout     = 15 * time.Minute
	MaxRunIdleTimeout = time.Hour
	MaxRunOutput      = 64 << 20
	// RunQueueLimit is how many runs of one namespace may wait for a slot
	// on one server; one more is refused (429).
	RunQueueLimit = 64
	// runTranscriptTail is how much of a run's output its record keeps.
	runTranscriptTail = worker.LogTailBytes
	// runRetry is how often the run at the head of a queue tries again
	// when nothing on this server said a slot freed (a run elsewhere may
	// have ended).
	runRetry = 250 * time.Millisecond
)

// TriggerRun is the trigger of an interactive run's record.
const TriggerRun = "run"

// RunRequest is an interactive run as a client asks for it: its own
// files, or a deployed function's code (Function).
type RunRequest struct {
	Runtime  string
	Files    map[string][]byte
	Function string // a function of the namespace whose package is run
	Entry    string // "" for main.py (for a function: its handler's module)
	Args     []string
	Env      map[string]string
	Limits   worker.RunLimits
}

// ErrRunQueueFull refuses a run when its namespace's queue on this server
// is full.
var ErrRunQueueFull = fmt.Errorf("%w: the run queue is full", worker.ErrNoCapacity)

// checkRun validates req and fills its defaults; a run of a function's
// code gets the function (its runtime and memory are the run's
// defaults).
func (s *Service) checkRun(ns string, req *RunRequest) (*model.Function, error) {
	if req.Function == "" {
		return nil, s.checkRunFiles(req)
	}
	if len(req.Files) > 0 {
		return nil, state.Errorf(state.ErrInvalid, "a run names a function or carries files, not both")
	}
	fn, err := s.Function(ns, req.Function)
	if err != nil {
		return nil, err
	}
	if req.Runtime != "" && req.Runtime != fn.Runtime {
		return nil, state.Errorf(state.ErrInvalid, "function %s runs on %s, not %s", fn.Name, fn.Runtime, req.Runtime)
	}
	req.Runtime = fn.Runtime
	if req.Limits.MemoryMB == 0 {
		req.Limits.MemoryMB = fn.MemoryMB
	}
	if req.Entry == "" {
		mod := fn.Handler
		if i := strings.LastIndex(mod, "."); i > 0 {
			mod = mod[:i]
		}
		req.Entry = strings.ReplaceAll(mod, ".", "/") + ".py"
	}
	if !strings.HasSuffix(req.Entry, ".py") || path.IsAbs(req.Entry) || path.Clean(req.Entry) != req.Entry || strings.HasPrefix(req.Entry, "../") {
		return nil, state.Errorf(state.ErrInvalid, "the entry %q is not a Python file (.py) of the package", req.Entry)
	}
	code, err := s.d.Blobs.Get(context.Background(), fn.CodeSHA256)
	if err != nil {
		return nil, err
	}
	zr, err := zip.NewReader(bytes.NewReader(code), int64(len(code)))
	if err != nil {
		return nil, err
	}
	found := false
	for _, f := range zr.File {
		found = found || f.Name == req.Entry
	}
	if !found {
		return nil, state.Errorf(state.ErrInvalid, "function %s's package (revision %d) has no file %s", fn.Name, fn.Revision, req.Entry)
	}
	return &fn, s.checkRunLimits(req)
}

// checkRunFiles validates a run of its own files.
func (s *Service) checkRunFiles(req *RunRequest) error {
	if req.Entry == "" {
		req.Entry = "main.py"
	}
	if len(req.Files) == 0 {
		return state.Errorf(state.ErrInvalid, "a run needs files: at least its entry, %s", req.Entry)
	}
	if len(req.Files) > MaxRunFiles {
		return state.Errorf(state.ErrInvalid, "a run has at most %d files, not %d", MaxRunFiles, len(req.Files))
	}
	total := 0
	for name, data := range req.Files {
		if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") || strings.ContainsRune(name, 0) {
			return state.Errorf(state.ErrInvalid, "file name %q is not a clean relative path", name)
		}
		total += len(data)
	}
	if total > MaxRunSource {
		return state.Errorf(ErrTooLarge, "a run's files hold %d bytes; at most %d", total, MaxRunSource)
	}
	if _, ok := req.Files[req.Entry]; !ok {
		return state.Errorf(state.ErrInvalid, "the entry %q is not one of the run's files", req.Entry)
	}
	if !strings.HasSuffix(req.Entry, ".py") {
		return state.Errorf(state.ErrInvalid, "the entry %q is not a Python file (.py)", req.Entry)
	}
	return s.checkRunLimits(req)
}

// checkRunLimits validates a run's limits, its runtime and environment.
func (s *Service) checkRunLimits(req *RunRequest) error {
	l := &req.Limits
	switch {
	case l.Timeout < 0 || l.Timeout > MaxRunTimeout:
		return state.Errorf(state.ErrInvalid, "timeout %s is outside 1s..%s", l.Timeout, MaxRunTimeout)
	case l.Timeout > 0 && l.Timeout < time.Second:
		return state.Errorf(state.ErrInvalid, "timeout %s is under a second", l.Timeout)
	case l.IdleTimeout < 0 || l.IdleTimeout > MaxRunIdleTimeout:
		return state.Errorf(state.ErrInvalid, "idle timeout %s is outside 1s..%s", l.IdleTimeout, MaxRunIdleTimeout)
	case l.IdleTimeout > 0 && l.IdleTimeout < time.Second:
		return state.Errorf(state.ErrInvalid, "idle timeout %s is under a second", l.IdleTimeout)
	case l.MemoryMB != 0 && (l.MemoryMB < codepkg.MinMemoryMB || l.MemoryMB > codepkg.MaxMemoryMB):
		return state.Errorf(state.ErrInvalid, "memory %d MB is outside %d..%d MB", l.MemoryMB, codepkg.MinMemoryMB, codepkg.MaxMemoryMB)
	case l.OutputBytes < 0 || l.OutputBytes > MaxRunOutput:
		return state.Errorf(state.ErrInvalid, "output limit %d is outside 1..%d bytes", l.OutputBytes, MaxRunOutput)
	}
	if codepkg.IsProvided(req.Runtime) {
		return state.Errorf(state.ErrInvalid, "runtime %s runs functions only: an interactive run is a Python program (pick a python3.X runtime)", req.Runtime)
	}
	if req.Runtime != "" {
		if offered := s.d.Placer.Runtimes(); len(offered) > 0 && !slices.Contains(offered, req.Runtime) {
			return state.Errorf(state.ErrInvalid, "no worker offers runtime %s (they offer %s)", req.Runtime, strings.Join(offered, ", "))
		}
	}
	for k := range req.Env {
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return state.Errorf(state.ErrInvalid, "environment variable name %q is not valid", k)
		}
	}
	return nil
}

// runQueues are this server's waiting runs, per namespace, first come
// first served.
type runQueues struct {
	mu      sync.Mutex
	waiting map[string][]*runWaiter
	freed   chan struct{} // closed (and replaced) when a run ends here
	avg     time.Duration // moving average of runs' wall time, for estimates
}

func (q *runQueues) init() {
	if q.waiting == nil {
		q.waiting = map[string][]*runWaiter{}
		q.freed = make(chan struct{})
	}
}

// ended records a run's wall time and wakes the waiting runs.
func (q *runQueues) ended(wall time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.init()
	if q.avg == 0 {
		q.avg = wall
	} else {
		q.avg = (q.avg*7 + wall) / 8
	}
	close(q.freed)
	q.freed = make(chan struct{})
}

// runWaiter is one run in a queue. It has a size: pointers to distinct
// zero-size values may be equal.
type runWaiter struct{ _ byte }

// RunQueued tells a client waiting for a slot where its run stands.
type RunQueued struct {
	Position int           // 1: next to run
	Estimate time.Duration // until it starts, from recent runs' times
}

// CheckRunQueue answers early (before a client is upgraded to a
// websocket) whether namespace ns may queue one more run here.
func (s *Service) CheckRunQueue(ns string) error {
	s.runs.mu.Lock()
	defer s.runs.mu.Unlock()
	s.runs.init()
	if len(s.runs.waiting[model.NamespaceOf(ns)]) >= RunQueueLimit {
		return ErrRunQueueFull
	}
	return nil
}

// StartRun checks req, admits it within namespace ns's budget and
// concurrency, and starts it on a worker; when every worker is full it
// waits in the namespace's queue, calling queued each time its place
// changes (ErrRunQueueFull when the queue is full). ctx bounds the wait
// and the run: when it ends the run is killed. The caller reads the
// session to its exit and closes it.
func (s *Service) StartRun(ctx context.Context, ns, id string, req RunRequest, queued func(RunQueued)) (*RunSession, error) {
	ns = model.NamespaceOf(ns)
	fn, err := s.checkRun(ns, &req)
	if err != nil {
		return nil, err
	}
	if err := s.CheckBudget(ns, time.Now()); err != nil {
		return nil, err
	}
	spec := worker.RunSpec{ID: id, Namespace: ns, Runtime: req.Runtime, Files: req.Files, Function: fn, Entry: req.Entry,
		Args: req.Args, Env: req.Env, Limits: req.Limits}
	me := &runWaiter{}
	inQueue := false
	leave := func() {
		if !inQueue {
			return
		}
		s.runs.mu.Lock()
		q := s.runs.waiting[ns]
		for i, w := range q {
			if w == me {
				s.runs.waiting[ns] = append(q[:i:i], q[i+1:]...)
				break
			}
		}
		s.runs.mu.Unlock()
		inQueue = false
	}
	defer leave()
	last := RunQueued{}
	for {
		s.runs.mu.Lock()
		s.runs.init()
		q := s.runs.waiting[ns]
		head := len(q) == 0 || q[0] == me
		freed := s.runs.freed
		s.runs.mu.Unlock()
		if head {
			sess, err := s.placeRun(ctx, spec)
			if err == nil {
				return sess, nil
			}
			if !errors.Is(err, worker.ErrNoCapacity) && !errors.Is(err, placement.ErrConcurrencyLimit) {
				return nil, err
			}
		}
		s.runs.mu.Lock()
		q = s.runs.waiting[ns]
		if !inQueue {
			if len(q) >= RunQueueLimit {
				s.runs.mu.Unlock()
				return nil, ErrRunQueueFull
			}
			q = append(q, me)
			s.runs.waiting[ns] = q
			inQueue = true
		}
		pos := 1
		for i, w := range q {
			if w == me {
				pos = i + 1
			}
		}
		est := s.runs.avg * time.Duration(pos)
		if n := s.runSlots(); n > 1 {
			est /= time.Duration(n)
		}
		s.runs.mu.Unlock()
		if now := (RunQueued{Position: pos, Estimate: est.Round(100 * time.Millisecond)}); queued != nil && now.Position != last.Position {
			queued(now)
			last = now
		}
		t := time.NewTimer(runRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-freed:
		case <-t.C:
		}
		t.Stop()
	}
}

// runSlots is how many slots the workers have, for queue estimates.
func (s *Service) runSlots() int {
	if s.d.Slots == nil {
		return 1
	}
	return s.d.Slots()
}

// placeRun admits spec within its namespace's concurrency and starts it
// on a worker (refusing at once when none has a free slot).
func (s *Service) placeRun(ctx context.Context, spec worker.RunSpec) (*RunSession, error) {
	release := func() {}
	if s.d.Concurrency != nil {
		limit, reserved := s.store.ConcurrencyLimit(spec.Namespace)
		r, err := s.d.Concurrency.Acquire(model.Function{Namespace: spec.Namespace},
			placement.Limits{Namespace: limit, Reserved: reserved})
		if err != nil {
			return nil, err
		}
		release = r
	}
	ctx, cancel := context.WithCancel(ctx)
	conn, err := s.d.Placer.Run(ctx, spec)
	if err != nil {
		cancel()
		release()
		return nil, err
	}
	return &RunSession{s: s, conn: conn, spec: spec, start: time.Now(), release: release, cancel: cancel}, nil
}

// RunSession is a started run as the gateway relays it.
type RunSession struct {
	s       *Service
	conn    worker.RunConn
	spec    worker.RunSpec
	start   time.Time
	release func()
	cancel  context.CancelFunc
	tail    []byte // the transcript's last runTranscriptTail bytes; Next's own
	ended   bool   // the exit was recorded; Next's own until Close
	once    sync.Once
}

// ID is the run's request ID (its record's).
func (r *RunSession) ID() string { return r.spec.ID }

// Next returns the run's next event (see worker.Run.Next). The exit is
// recorded (trigger "run", the transcript's tail as its log) before it
// is returned.
func (r *RunSession) Next(ctx context.Context) (worker.RunEvent, error) {
	ev, err := r.conn.Next(ctx)
	if err != nil {
		return ev, err
	}
	if ev.Exit == nil {
		r.tail = append(r.tail, ev.Data...)
		if over := len(r.tail) - runTranscriptTail; over > 0 {
			r.tail = append(r.tail[:0], r.tail[over:]...)
		}
		return ev, nil
	}
	r.record(ev.Exit)
	return ev, nil
}

// record records the run's end, once, and wakes the runs waiting for a
// slot.
func (r *RunSession) record(ex *worker.RunExit) {
	r.ended = true
	r.s.runs.ended(ex.Wall)
	rec := runRecord(r.spec, r.start, ex, string(r.tail))
	r.s.AddRecord(&rec, nil)
}

// runRecord is the invocation record of a run that ended with ex.
func runRecord(spec worker.RunSpec, start time.Time, ex *worker.RunExit, tail string) model.Invocation {
	result, _ := json.Marshal(map[string]any{"exit_code": ex.Code, "signal": ex.Signal})
	rec := model.Invocation{
		ID: spec.ID, Namespace: spec.Namespace, Trigger: TriggerRun, Status: model.StatusSuccess,
		Start: start.UTC(), DurationMS: model.DurationMS(ex.Wall), BilledMS: python.BilledMS(ex.Wall),
		MemoryMB: spec.Limits.MemoryMB, MaxMemoryMB: int((ex.MaxMemB + 1<<20 - 1) >> 20),
		ErrorType: ex.Verdict, Result: result, LogTail: tail, Worker: ex.WorkerID, CPUMS: model.DurationMS(ex.CPU),
	}
	if rec.MemoryMB == 0 {
		rec.MemoryMB = worker.DefaultRunMemory
	}
	if fn := spec.Function; fn != nil {
		rec.Function, rec.Revision = fn.Name, fn.Revision
	}
	switch {
	case rec.ErrorType != "":
	case ex.Signal != "":
		rec.ErrorType = "Run.Signaled"
	case ex.Code != 0:
		rec.ErrorType = "Run.NonZeroExit"
	}
	if rec.ErrorType != "" {
		rec.Status = model.StatusFailed
	}
	return rec
}

// Input passes stdin, its end or a signal to the program.
func (r *RunSession) Input(in worker.RunInput) error { return r.conn.Input(in) }

// Close ends the run (killing it if it still runs) and releases its
// admission. A run closed before its exit was read (the client went
// away) is recorded as Run.Canceled. Call it once Next is done.
func (r *RunSession) Close() {
	r.once.Do(func() {
		r.conn.Close()
		r.cancel()
		r.release()
		if !r.ended {
			r.record(&worker.RunExit{Code: -1, Verdict: worker.VerdictCanceled, Wall: time.Since(r.start)})
		}
	})
}
