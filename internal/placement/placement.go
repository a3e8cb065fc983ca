// Package placement owns the choice of a worker for a synchronous
// invocation: a worker with an idle warm instance of the revision first,
// else the least loaded, falling through to the next when one refuses.
package placement

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/model"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// ErrUnreachable is returned by a target that could not be reached at
// all (the invocation was not delivered), so the next may be tried.
var ErrUnreachable = errors.New("worker unreachable")

// Target is a worker that can be offered an invocation.
type Target interface {
	Invoke(ctx context.Context, req worker.Request) (worker.Result, error)
	// Retire ends the instances of a function (by qualified name,
	// model.QualifiedName), which was deleted.
	Retire(function string)
	Status() client.Worker
	// HasWarm reports whether the worker has an idle instance of the
	// function's revision (function: the qualified name).
	HasWarm(function string, revision int64) bool
	// Runtimes lists the runtimes the worker can run, newest first.
	Runtimes() []string
}

// Source lists the workers currently available (a server's view of its
// remote workers). Targets returns a slice of the caller's own.
type Source interface {
	Targets() []Target
}

// Placer spreads invocations over local targets and those of a source.
type Placer struct {
	local  []Target
	remote Source
	// SlotWait is how long an invocation that finds every worker full
	// may wait for a slot on one of them before it is refused (429).
	SlotWait time.Duration
	pick     prometheus.Histogram // how long rank took, per invocation
}

// New returns a placer over local targets and, when remote is not nil,
// the workers it lists.
func New(remote Source, local ...Target) *Placer {
	return &Placer{local: local, remote: remote, SlotWait: DefaultSlotWait, pick: newPickHistogram()}
}

// DefaultSlotWait is the placer's default SlotWait.
const DefaultSlotWait = time.Second

func (p *Placer) targets() []Target {
	if len(p.local) == 0 && p.remote != nil {
		return p.remote.Targets() // already the caller's own slice
	}
	out := append([]Target(nil), p.local...)
	if p.remote != nil {
		out = append(out, p.remote.Targets()...)
	}
	return out
}

// Invoke offers req to the workers in order of preference until one
// accepts. It returns worker.ErrNoCapacity when every worker refused for
// lack of capacity, and ErrNoWorkers when there is none.
func (p *Placer) Invoke(ctx context.Context, req worker.Request) (worker.Result, error) {
	t0 := time.Now()
	order, whole := p.order(req.Function)
	since(p.pick, t0)
	if len(order) == 0 {
		if rt := req.Function.Runtime; rt != "" && len(p.Runtimes()) > 0 {
			return worker.Result{}, fmt.Errorf("%w: none of the healthy workers offers runtime %s (they offer %s)",
				ErrNoWorkers, rt, strings.Join(p.Runtimes(), ", "))
		}
		return worker.Result{}, ErrNoWorkers
	}
	var last error = worker.ErrNoCapacity
	busy := []Target{}
	for i := 0; i < len(order); i++ {
		t := order[i]
		res, err := t.Invoke(ctx, req)
		if errors.Is(err, worker.ErrNoCapacity) {
			busy = append(busy, t)
		}
		if errors.Is(err, worker.ErrNoCapacity) || errors.Is(err, worker.ErrClosed) || errors.Is(err, ErrUnreachable) {
			last = err
			if !whole { // the first refused: now the rest, in rank's order
				rest := slices.DeleteFunc(p.rank(req.Function), func(o Target) bool { return o == t })
				order, whole = append(order[:1:1], rest...), true
			}
			continue
		}
		return res, err
	}
	// Every worker is full: rather than refuse at once, wait a moment for
	// a slot on the least loaded of them (a burst then queues briefly
	// instead of turning into a storm of 429s).
	if len(busy) > 0 && req.Queued {
		// A queued event waits there for as long as a sync call may,
		// behind any sync call waiting too; its dispatcher sends at most
		// one more than a worker's slots (see Room).
		req.SlotWait = max(p.SlotWait, DefaultSlotWait)
		res, err := busy[0].Invoke(ctx, req)
		if !errors.Is(err, worker.ErrNoCapacity) {
			return res, err
		}
	} else if len(busy) > 0 && p.SlotWait > 0 {
		req.SlotWait = p.SlotWait
		res, err := busy[0].Invoke(ctx, req)
		if !errors.Is(err, worker.ErrNoCapacity) {
			return res, err
		}
	}
	if errors.Is(last, ErrUnreachable) || errors.Is(last, worker.ErrClosed) {
		return worker.Result{}, ErrNoWorkers
	}
	return worker.Result{}, last
}

// ErrNoWorkers is returned when no worker is available at all.
var ErrNoWorkers = errors.New("no worker is available")

// order is the targets to offer fn to, in rank's order, and whether
// that is all of them: among a registry's workers alone (a server's) it
// is only the first, found without ranking the rest (Registry.best), and
// Invoke ranks them when that one refuses.
func (p *Placer) order(fn model.Function) ([]Target, bool) {
	if reg, ok := p.remote.(*Registry); ok && len(p.local) == 0 {
		key := fn.InstanceKey()
		if t := reg.best(fn.Runtime, key, warmKey(key, fn.Revision)); t != nil {
			return []Target{t}, false
		}
	}
	return p.rank(fn), true
}

// homeOf is where among n targets a function's walk starts (a hash of its
// instance key): see rank.
func homeOf(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// rank orders the targets that offer fn's runtime (any, for a function
// that names none): warm instance of this revision first, then
// by load (busy slots over slots), healthy ones only. Ties are broken
// by the function: the targets' order (local ones, then the source's by
// ID) rotated to start at fn's home (homeOf), so that a function's
// cold starts among equally loaded workers go to the same one (its home,
// while the set of workers holds) and different functions' to different
// ones, instead of every cold start to the lowest ID.
func (p *Placer) rank(fn model.Function) []Target {
	type scored struct {
		t    Target
		warm bool
		load float64
	}
	all := p.targets()
	if len(all) == 0 {
		return nil
	}
	if len(all) == 1 && (fn.Runtime == "" || slices.Contains(all[0].Runtimes(), fn.Runtime)) {
		return all // one worker (nimbus dev): nothing to rank
	}
	key := fn.InstanceKey()
	warmKey := warmKey(key, fn.Revision)
	now := time.Now()
	s := make([]scored, 0, len(all))
	home := homeOf(key, len(all))
	for i := range all {
		t := all[(home+i)%len(all)]
		if r, ok := t.(rankable); ok {
			if ok, warm, load := r.rankAt(now, fn.Runtime, warmKey); ok {
				s = append(s, scored{t, warm, load})
			}
			continue
		}
		st := t.Status()
		if !st.Healthy || (fn.Runtime != "" && !slices.Contains(t.Runtimes(), fn.Runtime)) {
			continue
		}
		load := 1.0
		if st.Slots > 0 {
			load = float64(st.InUse) / float64(st.Slots)
		}
		s = append(s, scored{t, t.HasWarm(key, fn.Revision), load})
	}
	slices.SortStableFunc(s, func(a, b scored) int {
		if a.warm != b.warm {
			if a.warm {
				return -1
			}
			return 1
		}
		switch {
		case a.load < b.load:
			return -1
		case a.load > b.load:
			return 1
		}
		return 0
	})
	out := make([]Target, len(s))
	for i := range s {
		out[i] = s[i].t
	}
	return out
}

// rankable is a target that gives rank what it needs in one step (a
// remote worker: one lock, one clock reading per rank instead of several
// per worker), with the same meaning as Status, Runtimes and HasWarm:
// whether it is healthy and offers runtime ("" for any), whether it has
// an idle instance under warmKey (see warmKey), and its load.
type rankable interface {
	rankAt(now time.Time, runtime, warmKey string) (eligible, warm bool, load float64)
}

// Retire tells every worker that a function is gone.
func (p *Placer) Retire(function string) {
	for _, t := range p.targets() {
		t.Retire(function)
	}
}

// Workers returns the status of every worker.
func (p *Placer) Workers() []client.Worker {
	ts := p.targets()
	out := make([]client.Worker, len(ts))
	for i, t := range ts {
		out[i] = t.Status()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Runtimes returns the runtimes some healthy worker can run, newest
// first (python3.13 before python3.9).
func (p *Placer) Runtimes() []string {
	var out []string
	now := time.Now()
	for _, t := range p.targets() {
		b := briefOf(t, now)
		if !b.healthy {
			continue
		}
		for _, r := range b.runtimes {
			if !slices.Contains(out, r) { // a handful: a scan beats a map
				out = append(out, r)
			}
		}
	}
	minor := func(name string) int {
		n, err := strconv.Atoi(strings.TrimPrefix(name, "python3."))
		if err != nil {
			return -1
		}
		return n
	}
	sort.SliceStable(out, func(i, j int) bool { return minor(out[i]) > minor(out[j]) })
	return out
}

// brief is what Runtimes, Slots and Room need of a target.
type brief struct {
	healthy     bool
	slots, used int
	runtimes    []string
}

// briefer is a target that gives its brief in one step (a remote
// worker: one lock and no copy of its status), with the meaning of
// Status and Runtimes.
type briefer interface {
	briefAt(now time.Time) brief
}

func briefOf(t Target, now time.Time) brief {
	if b, ok := t.(briefer); ok {
		return b.briefAt(now)
	}
	st := t.Status()
	return brief{healthy: st.Healthy, slots: st.Slots, used: st.InUse, runtimes: t.Runtimes()}
}

// Offers lists each runtime the healthy workers offer with those that
// offer it, in the order of Runtimes.
func (p *Placer) Offers() []model.RuntimeOffer {
	by := map[string][]string{}
	for _, t := range p.targets() {
		st := t.Status()
		if !st.Healthy {
			continue
		}
		for _, r := range t.Runtimes() {
			by[r] = append(by[r], st.ID)
		}
	}
	var out []model.RuntimeOffer
	for _, r := range p.Runtimes() {
		ws := by[r]
		slices.Sort(ws)
		out = append(out, model.RuntimeOffer{Name: r, Workers: ws})
	}
	return out
}

// Slots counts the slots of the healthy workers.
func (p *Placer) Slots() int {
	n := 0
	now := time.Now()
	for _, t := range p.targets() {
		if b := briefOf(t, now); b.healthy {
			n += b.slots
		}
	}
	return n
}

// Room is the number of queued events the healthy workers could take
// now: their free slots, and one more each that waits at the worker for
// the next slot to free (behind any sync call waiting: see
// worker.Request.Queued), so that a slot does not idle for a round trip
// to the dispatcher between two events.
func (p *Placer) Room() int {
	n := 0
	now := time.Now()
	for _, t := range p.targets() {
		if b := briefOf(t, now); b.healthy {
			n += max(b.slots+1-b.used, 0)
		}
	}
	return n
}

// Prefetch announces a newly deployed revision to the workers its first
// invocations would go to, in this process or over RPC: they fetch its
// code and layers and stock a sandbox for it (worker.Prefetch).
func (p *Placer) Prefetch(fn model.Function) {
	for i, t := range p.rank(fn) {
		if i == prefetchWorkers {
			break
		}
		if pf, ok := t.(interface{ Prefetch(model.Function) }); ok {
			pf.Prefetch(fn)
		}
	}
}

// prefetchWorkers is how many workers a deploy is announced to: those
// placement would offer its first invocations to (a cluster of a
// thousand workers must not fetch every deploy a thousand times).
const prefetchWorkers = 3

// Provision spreads n ready instances of fn over the healthy workers
// that run its runtime (Lambda's provisioned concurrency), in a stable
// order so that repeated calls ask the same workers for the same share.
func (p *Placer) Provision(fn model.Function, n int) {
	type provisioner interface{ Provision(model.Function, int) }
	var ts []Target
	for _, t := range p.targets() {
		if _, ok := t.(provisioner); ok && t.Status().Healthy && slices.Contains(t.Runtimes(), fn.Runtime) {
			ts = append(ts, t)
		}
	}
	if len(ts) == 0 {
		return
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].Status().ID < ts[j].Status().ID })
	for i, t := range ts {
		share := n / len(ts)
		if i < n%len(ts) {
			share++
		}
		t.(provisioner).Provision(fn, share)
	}
}
