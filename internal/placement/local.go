package placement

import (
	"context"

	"nimbus/internal/model"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// Local adapts a worker running in this process (nimbus dev) to Target.
func Local(w *worker.Worker) Target { return local{w} }

type local struct{ w *worker.Worker }

func (l local) Invoke(ctx context.Context, req worker.Request) (worker.Result, error) {
	return l.w.Invoke(ctx, req)
}
func (l local) Retire(function string)             { l.w.Retire(function) }
func (l local) HasWarm(fn string, rev int64) bool  { return l.w.HasWarm(fn, rev) }
func (l local) Runtimes() []string                 { return l.w.RuntimeNames() }
func (l local) Prefetch(fn model.Function)         { l.w.Prefetch(fn) }
func (l local) Provision(fn model.Function, n int) { l.w.Provision(fn, n) }

// runningQueued is the worker's queued events now: it answers in
// process, with nothing in flight between it and this server.
func (l local) runningQueued() ([]string, bool) {
	return l.w.RunningQueued(worker.RunningQueuedLimit(l.w.Status().Slots))
}

// Status is the worker's status, with the invocations waiting for one of
// its slots counted as in use: a server counts its calls waiting at a
// remote worker the same way (they are in flight), and Room must see
// the queued event waiting there.
func (l local) Status() client.Worker {
	st := l.w.Status()
	st.InUse += l.w.Waiting()
	if st.State == "" {
		st.State = StateReady
		if !st.Healthy {
			st.State = StateDead
		}
	}
	return st
}
