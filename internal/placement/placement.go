// Package placement owns the choice of a worker for a synchronous
// invocation: the least loaded worker with a free slot first, falling
// through to the next when one refuses.
package placement

import (
	"context"
	"errors"
	"sort"

	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// Target is a worker that can be offered an invocation.
type Target interface {
	Invoke(ctx context.Context, req worker.Request) (worker.Result, error)
	Retire(function string)
	Status() client.Worker
}

// Placer spreads invocations over a fixed set of workers.
type Placer struct {
	targets []Target
}

// New returns a placer over targets.
func New(targets ...Target) *Placer { return &Placer{targets: targets} }

// Invoke offers req to the workers, least loaded first, until one accepts.
// It returns worker.ErrNoCapacity when every worker refused for lack of
// capacity.
func (p *Placer) Invoke(ctx context.Context, req worker.Request) (worker.Result, error) {
	order := p.rank()
	var last error = worker.ErrNoCapacity
	for _, t := range order {
		res, err := t.Invoke(ctx, req)
		if errors.Is(err, worker.ErrNoCapacity) || errors.Is(err, worker.ErrClosed) {
			last = err
			continue
		}
		return res, err
	}
	return worker.Result{}, last
}

func (p *Placer) rank() []Target {
	if len(p.targets) < 2 {
		return p.targets
	}
	type scored struct {
		t    Target
		load float64
	}
	s := make([]scored, len(p.targets))
	for i, t := range p.targets {
		st := t.Status()
		load := 1.0
		if st.Slots > 0 {
			load = float64(st.InUse) / float64(st.Slots)
		}
		s[i] = scored{t, load}
	}
	sort.SliceStable(s, func(i, j int) bool { return s[i].load < s[j].load })
	out := make([]Target, len(s))
	for i := range s {
		out[i] = s[i].t
	}
	return out
}

// Retire tells every worker that a function is gone.
func (p *Placer) Retire(function string) {
	for _, t := range p.targets {
		t.Retire(function)
	}
}

// Workers returns the status of every worker.
func (p *Placer) Workers() []client.Worker {
	out := make([]client.Worker, len(p.targets))
	for i, t := range p.targets {
		out[i] = t.Status()
	}
	return out
}
