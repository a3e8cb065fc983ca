// Package worker owns the worker agent: the code cache and the pools of
// warm instances per function revision, bounded by the worker's memory
// budget.
//
// A slot is the right to run one invocation. An instance is a running
// Python process that serves one invocation at a time; instances outlive
// invocations (warm) until they go idle for too long, their revision is
// replaced or deleted, or the worker needs their memory for others (see
// budget.go).
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"nimbus/internal/codepkg"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/runtime/python"
	"nimbus/internal/sandbox"
	"nimbus/pkg/client"
)

// ErrNoCapacity is returned when every slot is busy.
var ErrNoCapacity = errors.New("worker at capacity")

// ErrClosed is returned by a worker that is shutting down.
var ErrClosed = errors.New("worker is shutting down")

// DepsMount is where instances see their function's dependency layer
// (on sys.path after the function's code and its published layers).
// LayersMount holds the published layers, each under its name.
const (
	DepsMount   = "/opt/python"
	LayersMount = "/opt/layers"
)

// BlobSource fetches code packages by digest.
type BlobSource interface {
	Get(ctx context.Context, digest string) ([]byte, error)
}

// Config configures a Worker.
type Config struct {
	ID          string
	DataDir     string        // the worker keeps code/ and bootstrap/ below it
	Slots       int           // concurrent invocations; 0 for one per core
	IdleTimeout time.Duration // idle instances retire after this; 0 for 10 minutes
	LogLimit    int           // log bytes per invocation; 0 for 1 MB
	// InstanceMemory is the memory budget, in bytes, of the worker's
	// instances, idle and busy, each counted at its measured footprint
	// (see budget.go): idle ones are evicted to keep within it. 0 for
	// DefaultInstanceMemory.
	InstanceMemory int64
	Runtimes       []python.Runtime
	Executor       sandbox.Executor
	// Prestart keeps this many instances per runtime started ahead, in
	// complete sandboxes awaiting their function (cold starts then only
	// import the handler); 0 for none. Needs an executor that implements
	// sandbox.CodeAttacher.
	Prestart int
	// PrestartMost bounds what a stock grows to when cold starts are
	// expected (functions deployed and not started, recent cold starts):
	// 0 for maxStock (32), within a sixteenth of the memory budget;
	// never less than Prestart.
	PrestartMost int
	// KeepCode is how many unpacked code packages no instance uses the
	// code cache keeps, most recently used first; 0 for 32, negative for
	// none. A package used in the last CodeIdle (0 for 10 minutes) is
	// always kept.
	KeepCode int
	CodeIdle time.Duration
	// FreezeAfter is how long an instance stays idle (after its start or
	// an invocation) before its processes are frozen until the next
	// invocation, where the executor can freeze them: 0 at once,
	// negative never.
	FreezeAfter time.Duration
	// StartTimeout bounds a cold start: taking a pre-started sandbox or
	// starting one, and the function's init in it. 0 for 30 s.
	StartTimeout time.Duration
	Blobs        BlobSource
	Log          *slog.Logger
}

// Request is one invocation offered to the worker.
type Request struct {
	RequestID string
	Function  model.Function
	Payload   []byte
	// SlotWait is how long the invocation may wait for a free slot;
	// 0 refuses at once when every slot is busy.
	SlotWait time.Duration
	// Queued marks an event from the asynchronous queue. Waiting for a
	// slot, it comes after every synchronous invocation waiting for one
	// (see slotSet): an async backlog does not starve sync calls.
	Queued bool
	// Chunk, when set, receives a streamed result's chunks as the handler
	// yields them (see python.Request.Chunk).
	Chunk func(data []byte)
}

// Result is the outcome of an invocation the worker ran.
type Result struct {
	python.Response
	Cold     bool
	WorkerID string
	Start    time.Time
}

// Worker runs invocations. Safe for concurrent use.
type Worker struct {
	cfg        Config
	bootstrap  string
	slots      *slotSet
	code       codeCache
	prestarted *prestartPool
	runStock   *runStock // nil where the executor cannot stock
	// coldStarts counts the instances being started for invocations now
	// (the pool's fills wait for them).
	coldStarts    atomic.Int64
	lastColdStart atomic.Int64 // when the last one ended, Unix ns
	// preloads are the top-level modules of each dependency layer (by
	// digest) its pre-started sandboxes import.
	preloads sync.Map
	queued   queuedRuns // queued events offered and not yet returned (RunningQueued)

	mu        sync.Mutex
	pools     map[string]*pool // by qualified function name (namespace/name)
	instances int              // all instances, busy or idle (or starting)
	used      int64            // bytes the instances count at, against cfg.InstanceMemory
	live      map[*instance]struct{}
	closed    bool
	closing   sync.WaitGroup // instances being closed in the background

	stop chan struct{}
	done chan struct{}
}

type pool struct {
	revision int64       // newest revision seen; older instances retire
	idle     []*instance // most recently used last
	// provisioned instances of revision are kept ready (spared by the
	// idle reaper) until provisionedUntil, which each Provision renews.
	provisioned      int
	provisionedUntil time.Time
	starting         int // instances Provision is starting
}

type instance struct {
	*python.Instance
	revision int64
	digest   string   // of its code package, in the code cache
	layers   []string // digests of its layers, in the code cache
	memoryMB int      // its function's memory size
	lastUsed time.Time
	// size is what it counts against the budget (in w.used) while
	// counted. Both need w.mu.
	size    int64
	counted bool
	// restock, set on an instance taken from the pre-started pool until
	// its first invocation ends, restocks the pool (see prestartPool.take).
	restock func()
}

// New prepares a worker: writes the bootstrap, opens the code cache and
// starts the idle reaper.
func New(cfg Config) (*Worker, error) {
	if cfg.Slots <= 0 {
		cfg.Slots = runtime.NumCPU()
	}
	if cfg.InstanceMemory <= 0 {
		cfg.InstanceMemory = DefaultInstanceMemory()
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	if cfg.LogLimit <= 0 {
		cfg.LogLimit = 1 << 20
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	if cfg.KeepCode == 0 {
		cfg.KeepCode = 32
	}
	if cfg.CodeIdle <= 0 {
		cfg.CodeIdle = 10 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if len(cfg.Runtimes) == 0 {
		return nil, errors.New("worker: no Python runtime found on this host (looked for python3.X)")
	}
	bootstrap, err := python.WriteBootstrap(filepath.Join(cfg.DataDir, "bootstrap"))
	if err != nil {
		return nil, fmt.Errorf("worker: write bootstrap: %w", err)
	}
	w := &Worker{
		cfg:       cfg,
		bootstrap: bootstrap,
		slots:     newSlotSet(cfg.Slots),
		code:      codeCache{dir: filepath.Join(cfg.DataDir, "code"), blobs: cfg.Blobs, busy: map[string]*sync.Mutex{}, used: map[string]time.Time{}},
		pools:     map[string]*pool{},
		live:      map[*instance]struct{}{},
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
	}
	if err := os.MkdirAll(w.code.dir, 0o700); err != nil {
		return nil, err
	}
	if err := w.code.clearLeftovers(); err != nil {
		cfg.Log.Warn("clearing the code cache's leftovers", "err", err)
	}
	w.prestarted = newPrestartPool(w, cfg.Prestart, cfg.PrestartMost)
	w.runStock = newRunStock(w)
	if p, ok := cfg.Executor.(interface {
		Prepare(path, prefix string) error
	}); ok {
		go func() {
			for _, rt := range cfg.Runtimes {
				if err := p.Prepare(rt.Executable, rt.Prefix); err != nil {
					cfg.Log.Warn("preparing runtime", "runtime", rt.Name, "err", err)
				}
			}
		}()
	}
	go w.reapIdle()
	return w, nil
}

// ID returns the worker's ID.
func (w *Worker) ID() string { return w.cfg.ID }

// Runtimes returns the runtimes this worker can run, newest first.
func (w *Worker) Runtimes() []python.Runtime { return w.cfg.Runtimes }

// Invoke runs one invocation: on an idle warm instance of the function's
// revision when there is one, else on a new instance (a cold start). It
// returns ErrNoCapacity when every slot is busy: at once, or after
// req.SlotWait if no slot frees by then (a waiting sync invocation gets a
// slot before a waiting queued event: see slotSet). Platform outcomes
// (timeouts, crashes, output limits) are results, not errors.
func (w *Worker) Invoke(ctx context.Context, req Request) (Result, error) {
	if req.Queued {
		w.queued.add(req.RequestID)
		defer w.queued.remove(req.RequestID)
	}
	if !w.slots.acquire(ctx, req.SlotWait, req.Queued) {
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		return Result{}, ErrNoCapacity
	}
	defer w.slots.release()

	start := time.Now()
	for {
		inst, cold, err := w.acquire(ctx, req.Function)
		if err != nil {
			return Result{}, err
		}
		resp, err := inst.Invoke(ctx, python.Request{
			RequestID: req.RequestID,
			Payload:   req.Payload,
			Timeout:   time.Duration(req.Function.Timeout),
			Ready:     !cold, // started ahead (provisioned): its start is not this call's
			Spin:      w.spin(),
			Chunk:     req.Chunk,
		})
		if inst.restock != nil {
			inst.restock()
			inst.restock = nil
		}
		w.release(req.Function.InstanceKey(), inst, cold)
		if errors.Is(err, python.ErrClosed) && !cold {
			// A warm instance that died while idle never saw the request:
			// run it on another (a fresh one, if no other is warm).
			continue
		}
		if err != nil {
			return Result{}, err
		}
		return Result{Response: resp, Cold: cold, WorkerID: w.cfg.ID, Start: start}, nil
	}
}

// spinBudget is how long an invocation may busy-poll for its response:
// about a no-op handler's round trip on a 2-core machine (25-40 µs), with
// room. Measured with 3,000 sequential no-op invokes (bench/results.md):
// p50 150-168 µs parked, 133-142 µs polling.
const spinBudget = 50 * time.Microsecond

// spin is the busy-poll budget of an invocation about to run: spinBudget
// while it is the worker's only one on a machine with more than one CPU
// (so the handler has a CPU of its own meanwhile), else 0. Under
// concurrent load no invocation polls: the CPUs have better work.
func (w *Worker) spin() time.Duration {
	if w.slots.inUse() == 1 && runtime.NumCPU() > 1 {
		return spinBudget
	}
	return 0
}

// acquire takes an idle instance of fn's revision or starts one.
func (w *Worker) acquire(ctx context.Context, fn model.Function) (*instance, bool, error) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, false, ErrClosed
	}
	p := w.poolLocked(fn.InstanceKey(), fn.Revision)
	for n := len(p.idle); n > 0 && p.idle[n-1].revision == fn.Revision; n = len(p.idle) {
		inst := p.idle[n-1]
		p.idle = p.idle[:n-1]
		if !inst.Alive() {
			// It died while idle (a stray kill, OOM from a leftover thread).
			w.closeLocked(inst)
			continue
		}
		w.mu.Unlock()
		return inst, false, nil
	}
	size := w.reserveLocked(fn.MemoryMB, time.Now())
	w.mu.Unlock()

	w.coldStarts.Add(1)
	inst, err := w.start(ctx, fn)
	w.lastColdStart.Store(time.Now().UnixNano())
	w.coldStarts.Add(-1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.unreserveLocked(size)
		return nil, false, err
	}
	w.addLocked(inst, size)
	return inst, true, nil
}

// addLocked makes a started instance live, counted at size (what was
// reserved for it). Needs w.mu.
func (w *Worker) addLocked(inst *instance, size int64) {
	inst.size, inst.counted = size, true
	w.live[inst] = struct{}{}
}

// poolLocked returns fn's pool, retiring idle instances of older revisions
// when rev is newer than any seen. Needs w.mu.
func (w *Worker) poolLocked(name string, rev int64) *pool {
	p := w.pools[name]
	if p == nil {
		p = &pool{revision: rev}
		w.pools[name] = p
	}
	if rev > p.revision {
		p.revision = rev
		w.retireLocked(p, func(i *instance) bool { return i.revision < rev })
	}
	return p
}

// retireLocked closes (in the background) the idle instances of p that
// match. Needs w.mu.
func (w *Worker) retireLocked(p *pool, match func(*instance) bool) {
	kept := p.idle[:0]
	for _, i := range p.idle {
		if match(i) {
			w.closeLocked(i)
			continue
		}
		kept = append(kept, i)
	}
	for k := len(kept); k < len(p.idle); k++ {
		p.idle[k] = nil
	}
	p.idle = kept
}

// closeLocked uncounts an instance and closes it in the background;
// Close waits for it. Needs w.mu.
func (w *Worker) closeLocked(i *instance) {
	w.uncountLocked(i)
	w.closing.Add(1)
	go func() {
		defer w.closing.Done()
		i.Close()
	}()
}

// release returns an instance to its pool, or closes it if it died, its
// revision was replaced, its function was deleted or the worker closed.
// An instance just started (fresh) is measured first. The least recently
// used idle instances go while the worker is over its budget (this one
// last).
func (w *Worker) release(name string, inst *instance, fresh bool) {
	now := time.Now()
	inst.lastUsed = now
	if fresh {
		w.measure(inst)
	}
	w.mu.Lock()
	p := w.pools[name]
	if w.closed || !inst.Alive() || p == nil || inst.revision < p.revision {
		w.uncountLocked(inst)
		w.mu.Unlock()
		inst.Close()
		return
	}
	p.idle = append(p.idle, inst)
	w.evictLocked(0, now)
	w.mu.Unlock()
}

func (w *Worker) start(ctx context.Context, fn model.Function) (*instance, error) {
	rt, err := python.Pick(w.cfg.Runtimes, fn.Runtime)
	if err != nil {
		return nil, err
	}
	dir, err := w.code.dirFor(ctx, fn.CodeSHA256, codepkg.DefaultLimits())
	if err != nil {
		return nil, fmt.Errorf("code of %s revision %d: %w", fn.Name, fn.Revision, err)
	}
	st, err := w.layersStock(ctx, rt, fn)
	if err != nil {
		return nil, fmt.Errorf("layers of %s revision %d: %w", fn.Name, fn.Revision, err)
	}
	startCtx, cancel := context.WithTimeout(ctx, w.cfg.StartTimeout)
	defer cancel()
	cfg := python.InstanceConfig{
		Runtime:      rt,
		Bootstrap:    w.bootstrap,
		CodeDir:      dir,
		Handler:      fn.Handler,
		Layers:       st.layers,
		SysPath:      st.sysPath,
		FunctionName: fn.Name,
		Revision:     fn.Revision,
		Version:      model.VersionString(fn.Version),
		MemoryMB:     fn.MemoryMB,
		TmpMB:        fn.EphemeralMB,
		Env:          fn.Env,
		LogLimit:     w.cfg.LogLimit,
		Executor:     w.cfg.Executor,
		FreezeIdle:   w.cfg.FreezeAfter >= 0,
		FreezeDelay:  w.cfg.FreezeAfter,
	}
	// A function whose own code shadows a module its dependency set's
	// sandboxes imported ahead starts afresh.
	if !shadows(dir, st.preload) {
		if pi, restock := w.prestarted.take(st, fn.EphemeralMB, announced(fn)); pi != nil {
			if err := pi.Assign(startCtx, cfg); err == nil {
				return &instance{Instance: pi, revision: fn.Revision, digest: fn.CodeSHA256, layers: st.digests, memoryMB: fn.MemoryMB, restock: restock}, nil
			} else {
				restock()
				if ctx.Err() != nil {
					return nil, fmt.Errorf("start instance of %s: %w", fn.Name, ctx.Err())
				}
				if startCtx.Err() != nil {
					// No time is left to start another: say what took it.
					return nil, fmt.Errorf("start instance of %s: its init did not finish within the start timeout of %s in a pre-started sandbox: %w", fn.Name, w.cfg.StartTimeout, err)
				}
				w.cfg.Log.Warn("pre-started instance failed to take its function; starting afresh", "function", fn.Name, "err", err)
			}
		}
	}
	pi, err := python.Start(startCtx, cfg)
	if err != nil {
		return nil, fmt.Errorf("start instance of %s: %w", fn.Name, err)
	}
	return &instance{Instance: pi, revision: fn.Revision, digest: fn.CodeSHA256, layers: st.digests, memoryMB: fn.MemoryMB}, nil
}

// quiet reports whether no cold start is under way or ended within
// quietAfter: the pre-start pool builds sandboxes only then.
func (w *Worker) quiet() bool {
	return w.coldStarts.Load() == 0 && time.Since(time.Unix(0, w.lastColdStart.Load())) > quietAfter
}

// announced names a function's revision for the pre-start pool, which
// expects one cold start of each revision announced.
func announced(fn model.Function) string {
	return fmt.Sprintf("%s@%d", fn.InstanceKey(), fn.Revision)
}

// layersStock is the pre-start stock of fn's instances: rt alone for a
// function without layers; else its layers unpacked (fetched first if
// need be) and mounted, each published one at LayersMount/NAME (its
// python/ on sys.path, as Lambda's /opt/python) in order, then the
// dependency layer at DepsMount; the top-level modules they offer,
// which its pre-started sandboxes import ahead; and the function's own
// environment variables, which those imports see.
func (w *Worker) layersStock(ctx context.Context, rt python.Runtime, fn model.Function) (stock, error) {
	st := stock{rt: rt}
	if fn.Deps == nil && len(fn.LayerRefs) == 0 {
		return st, nil
	}
	add := func(digest, target string, sub []string) error {
		dir, err := w.code.dirFor(ctx, digest, codepkg.LayerLimits())
		if err != nil {
			return err
		}
		m := sandbox.Mount{Source: dir, Target: target}
		st.layers = append(st.layers, m)
		st.digests = append(st.digests, digest)
		for _, s := range sub {
			if fi, err := os.Stat(filepath.Join(dir, s)); err == nil && fi.IsDir() {
				st.sysPath = append(st.sysPath, filepath.Join(w.cfg.Executor.MountPath(m), s))
				preload, ok := w.preloads.Load(digest + "/" + s)
				if !ok {
					preload, _ = w.preloads.LoadOrStore(digest+"/"+s, topLevelModules(filepath.Join(dir, s)))
				}
				st.preload = append(st.preload, preload.([]string)...)
			}
		}
		return nil
	}
	for _, l := range fn.LayerRefs {
		if err := add(l.SHA256, path.Join(LayersMount, l.Name), []string{"python", path.Join("python", "lib", rt.Name, "site-packages")}); err != nil {
			return stock{}, fmt.Errorf("layer %s:%d: %w", l.Name, l.Version, err)
		}
	}
	if fn.Deps != nil {
		if err := add(fn.Deps.SHA256, DepsMount, []string{"."}); err != nil {
			return stock{}, fmt.Errorf("dependency layer: %w", err)
		}
	}
	st.env = fn.Env
	return st, nil
}

// Retire closes the idle instances of a function (named by its qualified
// name), its head's and its versions', and makes its busy ones retire
// when they finish (the function was deleted).
func (w *Worker) Retire(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, p := range w.pools {
		if base, _ := model.SplitQualifier(key); base == name {
			w.retireLocked(p, func(*instance) bool { return true })
			delete(w.pools, key)
		}
	}
}

// Status describes the worker's load.
func (w *Worker) Status() client.Worker {
	w.mu.Lock()
	defer w.mu.Unlock()
	warm := 0
	for _, p := range w.pools {
		warm += len(p.idle)
	}
	return client.Worker{
		ID:                 w.cfg.ID,
		Slots:              w.slots.size,
		InUse:              w.slots.inUse(),
		WarmInstances:      warm,
		Instances:          w.instances,
		InstanceMemory:     w.cfg.InstanceMemory,
		InstanceMemoryUsed: w.used,
		Healthy:            !w.closed,
		Executor:           w.cfg.Executor.Name(),
	}
}

// provisionLease is how long a Provision holds: the leader renews it
// every few seconds, so a worker that stops hearing it (the function was
// changed or deleted, or this worker is no longer asked) lets the
// instances go idle.
const provisionLease = 15 * time.Second

// Provision keeps n instances of fn's revision ready on this worker
// (Lambda's provisioned concurrency): it starts those missing, in the
// background and as far as the memory budget allows once idle instances
// that are not provisioned are evicted, and the idle reaper and evictions
// spare n of them while the provision holds. The first invocation that
// takes one is warm.
func (w *Worker) Provision(fn model.Function, n int) {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	name := fn.InstanceKey()
	p := w.poolLocked(name, fn.Revision)
	if fn.Revision < p.revision {
		w.mu.Unlock()
		return
	}
	p.provisioned, p.provisionedUntil = n, time.Now().Add(provisionLease)
	ready := p.starting
	for _, i := range p.idle {
		if i.revision == fn.Revision {
			ready++
		}
	}
	now := time.Now()
	var sizes []int64
	for len(sizes) < n-ready && w.fitsLocked(sizeOf(0, fn.MemoryMB), now) {
		sizes = append(sizes, w.reserveLocked(fn.MemoryMB, now))
	}
	p.starting += len(sizes)
	w.mu.Unlock()
	for _, size := range sizes {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			inst, err := w.start(ctx, fn)
			w.mu.Lock()
			p.starting--
			if err != nil {
				w.unreserveLocked(size)
				w.mu.Unlock()
				w.cfg.Log.Warn("starting a provisioned instance", "function", name, "err", err)
				return
			}
			w.addLocked(inst, size)
			w.mu.Unlock()
			w.release(name, inst, true)
		}()
	}
}

// spared returns the idle instances of p the reaper keeps: the most
// recently used provisioned ones of its revision, while provisioned.
func (p *pool) spared(now time.Time) map[*instance]bool {
	if p.provisioned == 0 || now.After(p.provisionedUntil) {
		return nil
	}
	keep := map[*instance]bool{}
	for k := len(p.idle) - 1; k >= 0 && len(keep) < p.provisioned; k-- {
		if p.idle[k].revision == p.revision {
			keep[p.idle[k]] = true
		}
	}
	return keep
}

func (w *Worker) reapIdle() {
	defer close(w.done)
	period := min(w.cfg.IdleTimeout/4, measurePeriod)
	if period < 10*time.Millisecond {
		period = 10 * time.Millisecond
	}
	t := time.NewTicker(period)
	defer t.Stop()
	var pruned, measured time.Time
	for {
		select {
		case <-w.stop:
			return
		case now := <-t.C:
			w.mu.Lock()
			for _, p := range w.pools {
				keep := p.spared(now)
				w.retireLocked(p, func(i *instance) bool { return !keep[i] && now.Sub(i.lastUsed) > w.cfg.IdleTimeout })
			}
			w.mu.Unlock()
			if now.Sub(measured) >= measurePeriod {
				measured = now
				w.measureAll(now)
			}
			if now.Sub(pruned) >= codePrunePeriod {
				pruned = now
				w.pruneCode(now)
			}
		}
	}
}

// codePrunePeriod is how often the reaper prunes the code cache.
const codePrunePeriod = time.Minute

// pruneCode removes from the code cache the unpacked packages that no
// live instance uses, beyond the KeepCode most recently used and unused
// for CodeIdle. An instance being started is not live yet, but its
// package was used within CodeIdle (a start takes at most 30 s).
func (w *Worker) pruneCode(now time.Time) []string {
	w.mu.Lock()
	inUse := map[string]bool{}
	for i := range w.live {
		inUse[i.digest] = true
		for _, d := range i.layers {
			inUse[d] = true
		}
	}
	w.mu.Unlock()
	w.prestarted.layersInUse(inUse)
	unstage := func(string) {}
	if a, ok := w.cfg.Executor.(sandbox.CodeAttacher); ok {
		unstage = a.UnstageCode
	}
	removed, err := w.code.prune(inUse, max(w.cfg.KeepCode, 0), now.Add(-w.cfg.CodeIdle), unstage)
	if err != nil {
		w.cfg.Log.Warn("pruning the code cache", "err", err)
	}
	if len(removed) > 0 {
		w.cfg.Log.Info("pruned the code cache", "packages", len(removed))
	}
	return removed
}

// Close stops the worker: new invocations are refused and every
// instance, idle or still busy, is stopped and cleaned up before Close
// returns. Callers let in-flight work finish first (by draining the HTTP
// server); what is still running then fails as Sandbox.Crashed.
func (w *Worker) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	for _, p := range w.pools {
		p.idle = nil
	}
	for i := range w.live {
		w.closeLocked(i)
	}
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	w.prestarted.close()
	w.runStock.close()
	w.closing.Wait()
}

// HasWarm reports whether an idle instance of the function's revision is
// waiting; function is its instance key (model.Function.InstanceKey).
func (w *Worker) HasWarm(function string, revision int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	p := w.pools[function]
	if p == nil {
		return false
	}
	for _, i := range p.idle {
		if i.revision == revision {
			return true
		}
	}
	return false
}

// WarmRevisions lists "function@revision" for every idle instance.
func (w *Worker) WarmRevisions() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for name, p := range w.pools {
		seen := map[int64]bool{}
		for _, i := range p.idle {
			if !seen[i.revision] {
				seen[i.revision] = true
				out = append(out, fmt.Sprintf("%s@%d", name, i.revision))
			}
		}
	}
	return out
}

// RuntimeNames lists the names of the worker's runtimes, newest first.
func (w *Worker) RuntimeNames() []string {
	out := make([]string, len(w.cfg.Runtimes))
	for i, r := range w.cfg.Runtimes {
		out[i] = r.Name
	}
	return out
}

// Prefetch fetches and unpacks a function's code ahead of its first
// invocation (after a deploy), in the background, and has the executor
// stage it (a read-only mount, ~0.2 ms), so that the cold start does not
// pay for either.
func (w *Worker) Prefetch(fn model.Function) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// A cold start of it is expected: one more sandbox waits, with
		// its layers mounted and their modules imported.
		if rt, err := python.Pick(w.cfg.Runtimes, fn.Runtime); err == nil {
			if st, err := w.layersStock(ctx, rt, fn); err == nil {
				w.prestarted.announce(st, announced(fn))
			} else {
				w.cfg.Log.Debug("prefetching the layers", "function", fn.Name, "err", err)
			}
		}
		dir, err := w.code.dirFor(ctx, fn.CodeSHA256, codepkg.DefaultLimits())
		if err != nil {
			w.cfg.Log.Debug("prefetching code", "function", fn.Name, "err", err)
			return
		}
		if a, ok := w.cfg.Executor.(sandbox.CodeAttacher); ok {
			if err := a.StageCode(dir); err != nil {
				w.cfg.Log.Debug("staging code", "function", fn.Name, "err", err)
			}
		}
	}()
}

// InUse returns how many of the worker's slots are taken: the invocations
// running (or about to) now.
func (w *Worker) InUse() int { return w.slots.inUse() }

// Waiting returns how many invocations wait for a slot.
func (w *Worker) Waiting() int { return w.slots.waiters() }
