package placement

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"nimbus/internal/model"
	"nimbus/internal/rpc"
	"nimbus/internal/rpc/rpcpb"
	"nimbus/internal/runtime/python"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// ErrorWorkerLost is the errorType of an invocation whose worker died
// or became unreachable while running it.
const ErrorWorkerLost = "Sandbox.WorkerLost"

// Registry is a server's soft view of remote workers, fed by their
// heartbeats. A worker that misses DeadAfter worth of heartbeats is
// considered dead and offered nothing; one silent for ForgetAfter leaves
// the registry (and the cluster view). Safe for concurrent use.
type Registry struct {
	pool        *rpc.Pool
	deadAfter   time.Duration
	forgetAfter time.Duration
	log         *slog.Logger
	started     time.Time // when it began to hear heartbeats

	heartbeats prometheus.Histogram // how long Heartbeat took

	mu      sync.Mutex
	workers map[string]*remote
	// sorted is workers by ID, rebuilt only when a worker joins or is
	// forgotten (nil then); lastForget is when forgetLocked last looked.
	// Both need mu.
	sorted     []Target
	lastForget time.Time
	// warmIdx lists, for each warm key a heartbeat named (see warmKey),
	// the workers whose last heartbeat named it: what best reads instead
	// of asking every worker. Needs mu; kept with each remote's warm set.
	warmIdx map[string][]*remote
}

// forgetEvery is how often, at most, the registry looks for workers to
// forget. Looking on every heartbeat cost a pass over every worker per
// heartbeat: with 1,000 workers heartbeating every second, a million
// lock-and-check steps a second on each server.
const forgetEvery = time.Second

// Worker states in the cluster view (client.Worker.State).
const (
	StateReady    = "ready"
	StateDraining = "draining"
	StateDead     = "dead"
)

// DefaultForgetAfter is how long a dead worker stays in the cluster view
// (as dead) before the registry forgets it.
const DefaultForgetAfter = 5 * time.Minute

// NewRegistry returns a registry that calls workers through pool,
// considers a worker dead after missing deadAfter of heartbeats and
// forgets it after forgetAfter of silence (0 for DefaultForgetAfter; never
// less than deadAfter).
func NewRegistry(pool *rpc.Pool, deadAfter, forgetAfter time.Duration, log *slog.Logger) *Registry {
	if forgetAfter <= 0 {
		forgetAfter = DefaultForgetAfter
	}
	forgetAfter = max(forgetAfter, deadAfter)
	return &Registry{pool: pool, deadAfter: deadAfter, forgetAfter: forgetAfter, log: log, started: time.Now(), workers: map[string]*remote{},
		heartbeats: newHeartbeatHistogram(), warmIdx: map[string][]*remote{}}
}

// Heartbeat records a worker's heartbeat. A worker that comes back at
// another address (restarted with the same ID) leaves its old address's
// connection closed; workers silent for longer than forgetAfter are
// forgotten (see forgetLocked).
func (r *Registry) Heartbeat(hb *rpcpb.WorkerHeartbeat) {
	defer since(r.heartbeats, time.Now())
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.workers[hb.WorkerId]
	if w == nil {
		w = &remote{reg: r}
		r.workers[hb.WorkerId] = w
		r.sorted = nil
		r.log.Info("worker registered", "worker", hb.WorkerId, "address", hb.Address, "slots", hb.Slots)
	}
	w.mu.Lock()
	var moved string
	if w.hb != nil && w.hb.Address != hb.Address {
		moved = w.hb.Address
	}
	w.hb = hb
	w.prevSeen, w.seen = w.seen, time.Now()
	w.inflightAtHB = w.inflight
	if len(w.warm) != len(hb.WarmRevisions) || !allIn(hb.WarmRevisions, w.warm) {
		r.unindexLocked(w)
		w.warm = make(map[string]bool, len(hb.WarmRevisions))
		for _, k := range hb.WarmRevisions {
			w.warm[k] = true
		}
		for k := range w.warm {
			r.warmIdx[k] = append(r.warmIdx[k], w)
		}
	}
	w.mu.Unlock()
	if moved != "" {
		r.closeUnusedLocked(moved)
	}
	r.forgetLocked()
}

// Targets returns the workers the registry knows, sorted by ID (dead
// ones among them until they are forgotten), in a slice of the caller's.
// It forgets the workers silent for longer than forgetAfter.
func (r *Registry) Targets() []Target {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forgetLocked()
	return append([]Target(nil), r.sortedLocked()...)
}

// sortedLocked returns the workers by ID, building the list when a worker
// joined or was forgotten since, and each worker's place in it (pos).
// The slice is never changed once built: a caller may read it after
// letting go of mu. Needs r.mu.
func (r *Registry) sortedLocked() []Target {
	if r.sorted == nil {
		ids := make([]string, 0, len(r.workers))
		for id := range r.workers {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		r.sorted = make([]Target, 0, len(ids))
		for i, id := range ids {
			w := r.workers[id]
			w.pos = i
			r.sorted = append(r.sorted, w)
		}
	}
	return r.sorted
}

// best is what Placer.rank puts first among the registry's workers, found
// without ranking them all: the least loaded of the healthy workers that
// run runtime and have an idle instance under warmKey (from warmIdx),
// else, walking the workers by ID from the function's home (see
// homeOf), the least loaded of the others, stopping at the first idle
// one; ties go to the first from home. Nil when no worker is eligible.
// It costs a few workers' locks when the function is warm somewhere or
// a worker near its home is idle, one pass over the workers otherwise,
// where ranking them all cost a pass, a sort and two slices of them.
func (r *Registry) best(runtime, key, warmKey string) Target {
	type candidate struct {
		w   *remote
		pos int
	}
	var buf [16]candidate
	r.mu.Lock()
	r.forgetLocked()
	all := r.sortedLocked()
	warm := buf[:0]
	for _, w := range r.warmIdx[warmKey] {
		warm = append(warm, candidate{w, w.pos})
	}
	r.mu.Unlock()
	n := len(all)
	if n == 0 {
		return nil
	}
	home := homeOf(key, n)
	now := time.Now()
	var best Target
	bestLoad, bestRot := 0.0, n
	for _, c := range warm {
		ok, _, load := c.w.rankAt(now, runtime, "")
		if rot := (c.pos - home + n) % n; ok && (best == nil || load < bestLoad || load == bestLoad && rot < bestRot) {
			best, bestLoad, bestRot = c.w, load, rot
		}
	}
	if best != nil {
		return best
	}
	for i := range n {
		w := all[(home+i)%n].(*remote)
		if ok, _, load := w.rankAt(now, runtime, ""); ok && (best == nil || load < bestLoad) {
			best, bestLoad = w, load
			if load == 0 {
				break // none is less loaded, and the rest come later
			}
		}
	}
	return best
}

// unindexLocked takes w out of warmIdx under each key of its warm set.
// Needs r.mu and w.mu.
func (r *Registry) unindexLocked(w *remote) {
	for k := range w.warm {
		ws := r.warmIdx[k]
		if i := slices.Index(ws, w); i >= 0 {
			ws = slices.Delete(ws, i, i+1)
		}
		if len(ws) == 0 {
			delete(r.warmIdx, k)
		} else {
			r.warmIdx[k] = ws
		}
	}
}

// allIn reports whether every key is in set.
func allIn(keys []string, set map[string]bool) bool {
	for _, k := range keys {
		if !set[k] {
			return false
		}
	}
	return true
}

// forgetLocked removes the workers silent for longer than forgetAfter and
// closes the pool's connections to their addresses (a worker that silent
// is gone: calls still in flight to it fail as they would anyway). It
// looks at most every forgetEvery: a worker is forgotten up to that much
// later than forgetAfter. Needs r.mu.
func (r *Registry) forgetLocked() {
	now := time.Now()
	if now.Sub(r.lastForget) < forgetEvery {
		return
	}
	r.lastForget = now
	for id, w := range r.workers {
		w.mu.Lock()
		silent := time.Since(w.seen)
		addr := w.hb.GetAddress()
		if silent > r.forgetAfter {
			r.unindexLocked(w)
		}
		w.mu.Unlock()
		if silent <= r.forgetAfter {
			continue
		}
		delete(r.workers, id)
		r.sorted = nil
		r.log.Info("worker forgotten", "worker", id, "silent_for", silent.Round(time.Second))
		r.closeUnusedLocked(addr)
	}
}

// closeUnusedLocked closes the pool's connection to addr unless a worker
// the registry knows is there. Needs r.mu.
func (r *Registry) closeUnusedLocked(addr string) {
	if addr == "" || r.pool == nil {
		return
	}
	for _, w := range r.workers {
		w.mu.Lock()
		there := w.hb.GetAddress() == addr
		w.mu.Unlock()
		if there {
			return
		}
	}
	r.pool.CloseWorker(addr)
}

// remote is a worker reached over RPC.
type remote struct {
	reg *Registry

	mu       sync.Mutex
	hb       *rpcpb.WorkerHeartbeat
	seen     time.Time
	prevSeen time.Time // when the heartbeat before the last came (see RunningQueued)
	warm     map[string]bool
	pos      int // its place among the workers by ID (Registry.sortedLocked; needs reg.mu)
	inflight int // invocations this server has on it now
	// inflightAtHB is inflight when the last heartbeat came: the part of
	// the heartbeat's in_use that was this server's.
	inflightAtHB int
	down         time.Time
}

func (w *remote) snapshot() (*rpcpb.WorkerHeartbeat, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	alive := time.Since(w.seen) < w.reg.deadAfter && w.down.Before(w.seen)
	return w.hb, alive
}

func (w *remote) Status() client.Worker {
	hb, alive := w.snapshot()
	w.mu.Lock()
	inUse := w.inUseLocked()
	w.mu.Unlock()
	st := client.Worker{
		ID: hb.WorkerId, Address: hb.Address, Slots: int(hb.Slots), InUse: inUse,
		WarmInstances: int(hb.Warm), Healthy: alive && !hb.Draining, Executor: hb.Executor,
		Instances: int(hb.Instances), InstanceMemory: hb.InstanceMemory, InstanceMemoryUsed: hb.InstanceMemoryUsed,
		State: StateReady,
	}
	switch {
	case !alive:
		// What it last said is stale: a dead worker holds nothing warm
		// that a server could use, nor any instance (its budget stays
		// what it said).
		st.State, st.WarmInstances, st.InUse = StateDead, 0, 0
		st.Instances, st.InstanceMemoryUsed = 0, 0
	case hb.Draining:
		st.State = StateDraining
	}
	return st
}

// inUseLocked estimates the worker's busy slots: this server's own
// invocations on it now, which it knows exactly, plus the other servers'
// as of the last heartbeat. A worker that knows which server a heartbeat
// goes to says how many of its in_use are that server's; an older one
// does not, and this server's part is taken as its inflight when the
// heartbeat came. Taking the heartbeat's in_use as it was would count
// this server's invocations that ended since as busy for up to a
// heartbeat interval, and the dispatcher would leave those slots idle
// meanwhile. Needs w.mu.
func (w *remote) inUseLocked() int {
	own := w.inflightAtHB
	if w.hb.GetPerServer() {
		own = int(w.hb.GetInUseByYou())
	}
	others := max(int(w.hb.GetInUse())-own, 0)
	return min(others+w.inflight, max(int(w.hb.GetSlots()), w.inflight))
}

func (w *remote) HasWarm(fn string, rev int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.warm[warmKey(fn, rev)]
}

// warmKey is how a heartbeat names a revision it has an idle instance
// of: the instance key (model.Function.InstanceKey), @, the revision.
func warmKey(fn string, rev int64) string { return fn + "@" + itoa(rev) }

// briefAt implements briefer: what Status says of its health, slots and
// slots in use, and its runtimes, under one lock, as of now.
func (w *remote) briefAt(now time.Time) brief {
	w.mu.Lock()
	defer w.mu.Unlock()
	hb := w.hb
	alive := now.Sub(w.seen) < w.reg.deadAfter && w.down.Before(w.seen)
	b := brief{healthy: alive && !hb.Draining, slots: int(hb.Slots), runtimes: hb.Runtimes}
	if alive {
		b.used = w.inUseLocked()
	}
	return b
}

// rankAt implements rankable: what Status, Runtimes and HasWarm say,
// under one lock, as of now.
func (w *remote) rankAt(now time.Time, runtime, warmKey string) (eligible, warm bool, load float64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	hb := w.hb
	alive := now.Sub(w.seen) < w.reg.deadAfter && w.down.Before(w.seen)
	if !alive || hb.Draining || (runtime != "" && !slices.Contains(hb.Runtimes, runtime)) {
		return false, false, 0
	}
	load = 1.0
	if hb.Slots > 0 {
		load = float64(w.inUseLocked()) / float64(hb.Slots)
	}
	return true, warmKey != "" && w.warm[warmKey], load
}

func (w *remote) Runtimes() []string {
	hb, _ := w.snapshot()
	return hb.Runtimes
}

func (w *remote) callCtx(ctx context.Context) context.Context {
	hb, _ := w.snapshot()
	return metadata.AppendToOutgoingContext(ctx, rpc.WorkerSecretHeader, hb.Secret)
}

// Invoke runs req on the worker. A worker that cannot be reached is
// ErrUnreachable (the next may be tried); one that fails mid-call gives
// a Sandbox.WorkerLost result, since the handler may have run.
func (w *remote) Invoke(ctx context.Context, req worker.Request) (worker.Result, error) {
	hb, _ := w.snapshot()
	c, err := w.reg.pool.Worker(hb.Address)
	if err != nil {
		return worker.Result{}, ErrUnreachable
	}
	fn, err := json.Marshal(req.Function)
	if err != nil {
		return worker.Result{}, err
	}
	w.mu.Lock()
	w.inflight++
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.inflight--
		w.mu.Unlock()
	}()
	start := time.Now()
	var sentTo peer.Peer
	in := &rpcpb.InvokeRequest{RequestId: req.RequestID, Function: fn, Payload: req.Payload,
		SlotWaitMs: req.SlotWait.Milliseconds(), Queued: req.Queued}
	var resp *rpcpb.InvokeResponse
	if req.Chunk != nil {
		resp, err = invokeStream(w.callCtx(ctx), c, in, req.Chunk, &sentTo)
	} else {
		resp, err = c.Invoke(w.callCtx(ctx), in, grpc.Peer(&sentTo))
	}
	if err != nil {
		if ctx.Err() != nil {
			return worker.Result{}, ctx.Err()
		}
		if neverSent(err, sentTo) {
			w.markDown()
			return worker.Result{}, ErrUnreachable
		}
		w.markDown()
		w.reg.log.Warn("worker lost mid-invocation", "worker", hb.WorkerId, "request_id", req.RequestID, "err", err)
		msg, _ := json.Marshal(map[string]string{
			"errorType":    ErrorWorkerLost,
			"errorMessage": "the worker " + hb.WorkerId + " running this invocation was lost: " + err.Error(),
		})
		return worker.Result{
			Response: python.Response{Payload: msg, ErrorType: ErrorWorkerLost, Duration: time.Since(start)},
			WorkerID: hb.WorkerId, Start: start,
		}, nil
	}
	switch resp.Refused {
	case "":
	case "capacity", "pressure", "draining":
		return worker.Result{}, worker.ErrNoCapacity
	default:
		return worker.Result{}, errors.New("worker refused: " + resp.Refused)
	}
	return worker.Result{
		Response: python.Response{
			Payload: resp.Payload, ErrorType: resp.ErrorType, Log: resp.Log,
			Duration: time.Duration(resp.DurationUs) * time.Microsecond, BilledMS: resp.BilledMs,
			MaxMemoryMB: int(resp.MaxMemoryMb), InitDuration: time.Duration(resp.InitUs) * time.Microsecond,
			ProcessesLeft: int(resp.ProcessesLeft), CPU: time.Duration(resp.CpuUs) * time.Microsecond,
		},
		Cold: resp.Cold, WorkerID: resp.WorkerId, Start: time.Unix(0, resp.StartUnixNano),
	}, nil
}

// invokeStream runs in over the worker's InvokeStream, handing each
// chunk to chunk as it arrives, and returns the response that ends it.
func invokeStream(ctx context.Context, c rpcpb.WorkerClient, in *rpcpb.InvokeRequest, chunk func([]byte), sentTo *peer.Peer) (*rpcpb.InvokeResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.InvokeStream(ctx, in, grpc.Peer(sentTo))
	if err != nil {
		return nil, err
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			if err == io.EOF {
				err = errors.New("the worker ended the stream without a response")
			}
			return nil, err
		}
		if m.Response != nil {
			return m.Response, nil
		}
		chunk(m.Chunk)
	}
}

// neverSent reports whether a failed call never left this server, so
// that the worker cannot have run it and another may be tried: gRPC
// failed it with Unavailable (no connection could be made) or Canceled
// (its connection was closed, see Registry.forgetLocked) before giving
// it to a connection, which is when gRPC fills in the call's peer.
// Anything else may have reached the worker.
func neverSent(err error, sentTo peer.Peer) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled:
		return sentTo.Addr == nil
	}
	return false
}

func (w *remote) markDown() {
	w.mu.Lock()
	w.down = time.Now()
	w.mu.Unlock()
}

func (w *remote) Retire(function string) {
	w.call(func(ctx context.Context, c rpcpb.WorkerClient) {
		c.Retire(ctx, &rpcpb.RetireRequest{Function: function})
	})
}

// Provision asks the worker to keep n instances of fn ready.
func (w *remote) Provision(fn model.Function, n int) {
	b, err := json.Marshal(fn)
	if err != nil {
		return
	}
	w.call(func(ctx context.Context, c rpcpb.WorkerClient) {
		c.Provision(ctx, &rpcpb.ProvisionRequest{Function: b, Count: int32(n)})
	})
}

// Prefetch announces a deployed revision to the worker (best effort).
func (w *remote) Prefetch(fn model.Function) {
	b, err := json.Marshal(fn)
	if err != nil {
		return
	}
	go w.call(func(ctx context.Context, c rpcpb.WorkerClient) {
		c.Prefetch(ctx, &rpcpb.PrefetchRequest{Function: b})
	})
}

// call makes a best-effort call to the worker, if it is alive, within
// five seconds.
func (w *remote) call(f func(ctx context.Context, c rpcpb.WorkerClient)) {
	hb, alive := w.snapshot()
	if !alive {
		return
	}
	c, err := w.reg.pool.Worker(hb.Address)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f(w.callCtx(ctx), c)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// ErrUnknownWorker is returned for a worker the registry has not heard of.
var ErrUnknownWorker = errors.New("no such worker")

// ErrWorkerDead is returned for a change asked of a worker that is dead
// (silent, or unreachable).
var ErrWorkerDead = errors.New("the worker is dead: it sends no heartbeats or cannot be reached")

// Drain asks a worker to stop taking new invocations.
func (r *Registry) Drain(ctx context.Context, id string) error {
	return r.drain(ctx, id, false)
}

// Undrain asks a drained worker to take new invocations again.
func (r *Registry) Undrain(ctx context.Context, id string) error {
	return r.drain(ctx, id, true)
}

func (r *Registry) drain(ctx context.Context, id string, undrain bool) error {
	r.mu.Lock()
	w := r.workers[id]
	r.mu.Unlock()
	if w == nil {
		return fmt.Errorf("worker %q: %w", id, ErrUnknownWorker)
	}
	hb, alive := w.snapshot()
	if !alive {
		return fmt.Errorf("worker %q: %w", id, ErrWorkerDead)
	}
	c, err := r.pool.Worker(hb.Address)
	if err != nil {
		return err
	}
	if _, err = c.Drain(w.callCtx(ctx), &rpcpb.DrainRequest{Undrain: undrain}); err != nil {
		if status.Code(err) == codes.Unavailable {
			return fmt.Errorf("worker %q: %w (%v)", id, ErrWorkerDead, err)
		}
		return err
	}
	// Show the change at once rather than at the next heartbeat.
	w.mu.Lock()
	if w.hb != nil {
		hb := proto.Clone(w.hb).(*rpcpb.WorkerHeartbeat)
		hb.Draining = !undrain
		w.hb = hb
	}
	w.mu.Unlock()
	return nil
}
