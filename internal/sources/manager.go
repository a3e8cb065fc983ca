package sources

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// Control is what the manager needs of the Raft node: the mappings (read)
// and the one path for writes (progress, dead letters).
type Control interface {
	Store() *state.Store
	fsm.Writer
}

// Intervals of the manager's loop.
const (
	reconcileEvery = 500 * time.Millisecond
	reportEvery    = 2 * time.Second
)

// Manager runs the consumers of every enabled mapping during one term of
// office and reports their progress through Raft. Make one per term with
// NewManager and Run it until the term ends.
type Manager struct {
	cp      Control
	inv     Invoker
	server  string
	log     *slog.Logger
	metrics *metrics
	dialers map[string]dialer

	running map[string]*running // by the mapping's qualified name
}

type dialer func(ctx context.Context, src model.Source, base model.SourceProgress) (conn, error)

// running is a consumer that runs, with what it started from.
type running struct {
	c       *consumer
	version time.Time // the mapping's UpdatedAt when it started
	base    model.SourceProgress
	cancel  context.CancelFunc
	done    chan struct{}
	// last is the progress last reported, to report only a change and to
	// compute the rate.
	last     model.SourceProgress
	lastTime time.Time
}

// Metrics are the consumers' Prometheus series; make them once per
// process (NewMetrics) and give them to every term's Manager.
type Metrics = metrics

type metrics struct {
	messages *prometheus.CounterVec
	lag      *prometheus.GaugeVec
	up       *prometheus.GaugeVec
}

// NewMetrics registers the consumers' series with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nimbus_source_messages_total",
			Help: "Messages of event source mappings, by what happened to them: received, redelivered, succeeded, dead_lettered."},
			[]string{"namespace", "source", "outcome"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nimbus_source_lag",
			Help: "Messages waiting on the broker for an event source mapping (-1: unknown)."}, []string{"namespace", "source"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nimbus_source_connected",
			Help: "1 while an event source mapping's consumer is connected to its broker (on the leader)."}, []string{"namespace", "source"}),
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.lag, m.up)
	}
	return m
}

// NewManager returns a manager whose consumers run functions through inv
// and report as server.
func NewManager(cp Control, inv Invoker, m *Metrics, server string, log *slog.Logger) *Manager {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Manager{cp: cp, inv: inv, server: server, log: log, metrics: m, running: map[string]*running{},
		dialers: map[string]dialer{model.SourceRabbitMQ: dialRabbitMQ, model.SourceKafka: dialKafka, model.SourceNATS: dialNATS}}
}

// Run starts and stops consumers as mappings come, change and go, until
// ctx ends; then it stops them all, reports their last progress, and
// returns.
func (m *Manager) Run(ctx context.Context) {
	tick := time.NewTicker(reconcileEvery)
	defer tick.Stop()
	lastReport := time.Now()
	for {
		m.reconcile(ctx)
		if time.Since(lastReport) >= reportEvery {
			m.report(ctx)
			lastReport = time.Now()
		}
		select {
		case <-ctx.Done():
			m.stopAll()
			// The term is over: its last report may still commit if this
			// server leads again; the next leader counts from what did.
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			m.report(rctx)
			cancel()
			return
		case <-tick.C:
		}
	}
}

// reconcile makes the running consumers match the enabled mappings.
func (m *Manager) reconcile(ctx context.Context) {
	want := map[string]model.Source{}
	for _, src := range m.cp.Store().Sources("") {
		if !src.Disabled {
			want[model.QualifiedName(src.Namespace, src.Name)] = src
		}
	}
	for name, r := range m.running {
		if src, ok := want[name]; !ok || !src.UpdatedAt.Equal(r.version) {
			m.stop(name, r)
		}
	}
	for name, src := range want {
		if _, ok := m.running[name]; !ok {
			m.start(ctx, name, src)
		}
	}
}

func (m *Manager) start(ctx context.Context, name string, src model.Source) {
	store := m.cp.Store()
	dial := m.dialers[src.Type]
	if dial == nil { // the service refuses such a mapping; a newer release may know the type
		dial = func(context.Context, model.Source, model.SourceProgress) (conn, error) {
			return nil, fmt.Errorf("this server does not know event sources of type %q", src.Type)
		}
	}
	c := &consumer{
		src: src, inv: m.inv, dial: dial, log: m.log, metrics: m.metrics, lagValue: -1, n: newCounters(m.metrics, src),
		lookup: store.Function,
		deadEnd: func(ctx context.Context, dl []model.DeadLetter) error {
			_, err := fsm.Apply(ctx, m.cp, fsm.PutDeadLetters{Letters: dl})
			return err
		},
		offsets: maps.Clone(src.Progress.Offsets),
	}
	cctx, cancel := context.WithCancel(ctx)
	r := &running{c: c, version: src.UpdatedAt, base: src.Progress, cancel: cancel, done: make(chan struct{}), last: src.Progress, lastTime: time.Now()}
	m.running[name] = r
	m.log.Info("event source consumer started", "source", src.Name, "namespace", src.Namespace, "type", src.Type, "url", src.ShownURL())
	go func() {
		defer close(r.done)
		c.run(cctx, src.Progress)
	}()
}

func (m *Manager) stop(name string, r *running) {
	r.cancel()
	<-r.done
	delete(m.running, name)
	m.metrics.up.DeleteLabelValues(r.c.src.Namespace, r.c.src.Name)
	m.log.Info("event source consumer stopped", "source", r.c.src.Name, "namespace", r.c.src.Namespace)
}

func (m *Manager) stopAll() {
	var wg sync.WaitGroup
	for _, r := range m.running {
		r.cancel()
		wg.Add(1)
		go func() { defer wg.Done(); <-r.done }()
	}
	wg.Wait()
}

// report commits the progress of the consumers whose progress changed
// since the last report, in one entry.
func (m *Manager) report(ctx context.Context) {
	now := time.Now()
	out := map[string]model.SourceProgress{}
	for name, r := range m.running {
		p := r.progress(m.server, now)
		connected := 0.0
		if p.State == model.SourceRunning {
			connected = 1
		}
		m.metrics.up.WithLabelValues(r.c.src.Namespace, r.c.src.Name).Set(connected)
		if sameProgress(p, r.last) {
			continue
		}
		out[name] = p
	}
	if len(out) == 0 {
		return
	}
	if _, err := fsm.Apply(ctx, m.cp, fsm.SourceProgress{Progress: out}); err != nil {
		if ctx.Err() == nil {
			m.log.Warn("event source progress not stored", "err", err)
		}
		return
	}
	for name, p := range out {
		if r := m.running[name]; r != nil {
			r.last, r.lastTime = p, now
		}
	}
}

// progress is the consumer's progress as of now: its counters added to
// those it started from.
func (r *running) progress(server string, now time.Time) model.SourceProgress {
	c, b := r.c, r.base
	c.mu.Lock()
	p := model.SourceProgress{State: c.state, Error: c.lastErr, Server: server, Lag: c.lagValue, Offsets: maps.Clone(c.offsets)}
	c.mu.Unlock()
	p.Received = b.Received + c.n.received.Load()
	p.Redelivered = b.Redelivered + c.n.redelivered.Load()
	p.Succeeded = b.Succeeded + c.n.succeeded.Load()
	p.DeadLettered = b.DeadLettered + c.n.deadLettered.Load()
	p.Malformed = b.Malformed + c.n.malformed.Load()
	p.Batches = b.Batches + c.n.batches.Load()
	p.Failures = b.Failures + c.n.failures.Load()
	p.Retries = b.Retries + c.n.retries.Load()
	if dt := now.Sub(r.lastTime).Seconds(); dt > 0 {
		ended := (p.Succeeded + p.DeadLettered) - (r.last.Succeeded + r.last.DeadLettered)
		p.Rate = float64(ended) / dt
	}
	p.UpdatedAt = now.UTC()
	return p
}

// sameProgress reports whether a and b differ in nothing but the time
// and a rate that stays zero.
func sameProgress(a, b model.SourceProgress) bool {
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	return a.State == b.State && a.Error == b.Error && a.Server == b.Server && a.Received == b.Received &&
		a.Redelivered == b.Redelivered && a.Succeeded == b.Succeeded && a.DeadLettered == b.DeadLettered &&
		a.Malformed == b.Malformed && a.Batches == b.Batches && a.Failures == b.Failures && a.Retries == b.Retries &&
		a.Lag == b.Lag && a.Rate == b.Rate && maps.Equal(a.Offsets, b.Offsets)
}
