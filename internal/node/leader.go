package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"nimbus/internal/blob"
	"nimbus/internal/controlplane"
	"nimbus/internal/deps"
	"nimbus/internal/fsm"
	"nimbus/internal/gateway"
	"nimbus/internal/logstore"
	"nimbus/internal/model"
	"nimbus/internal/notify"
	"nimbus/internal/placement"
	"nimbus/internal/pycheck"
	"nimbus/internal/queue"
	"nimbus/internal/scan"
	"nimbus/internal/scheduler"
	svc "nimbus/internal/service"
	"nimbus/internal/sources"
)

// asyncParts are the pieces of the asynchronous path a node runs: the
// enqueuer on every server; the dispatcher and the event source mappings'
// consumers (new ones each term), scheduler and notifier on the leader.
type asyncParts struct {
	cp            *controlplane.Node
	placer        *placement.Placer
	enqueuer      *queue.Enqueuer
	scheduler     *scheduler.Loop
	notifier      *notify.Notifier
	hooks         queue.Hooks     // set by connect, before the first term
	invoker       sources.Invoker // set by connect: runs the event source mappings' batches
	sourceMetrics *sources.Metrics
	log           *slog.Logger
	// checkBudgets is the service's budget check (set by connect), run
	// every budgetEvery (0: 30 s) on the leader.
	checkBudgets func(ctx context.Context, now time.Time) ([]model.BudgetAlert, error)
	budgetEvery  time.Duration
	// backups are the scheduled backups the leader saves (set by
	// connect: runBackups, with the schedule).
	runBackups func(ctx context.Context, b svc.BackupSchedule)
	backups    svc.BackupSchedule

	// dispatcher is the current term's, nil between terms: wake reaches
	// it, whoever calls wake and whenever.
	dispatcher atomic.Pointer[queue.Dispatcher]
	// deliveries tracks the destination deliveries in flight; close
	// cancels them (stopDeliveries) and waits.
	deliveries     sync.WaitGroup
	deliveryCtx    context.Context
	stopDeliveries context.CancelFunc
}

func newAsyncParts(cp *controlplane.Node, placer *placement.Placer, smtpCfg notify.SMTP, reg prometheus.Registerer, log *slog.Logger) *asyncParts {
	a := &asyncParts{cp: cp, placer: placer, enqueuer: queue.NewEnqueuer(cp), sourceMetrics: sources.NewMetrics(reg), log: log}
	a.deliveryCtx, a.stopDeliveries = context.WithCancel(context.Background())
	a.scheduler = scheduler.NewLoop(cp, 0, log.With("subsystem", "scheduler"))
	secret := func(ns string) string { s, _ := gateway.WebhookSecret(cp.Store(), ns); return s }
	a.notifier = notify.NewNotifier(cp.Store().Subscriptions, secret, smtpCfg, log.With("subsystem", "notify"))
	cp.Store().ObserveRecordOutcomes(a.notifier.Observe)
	a.enqueuer.Committed = a.wake
	a.scheduler.Fired = a.wake
	return a
}

// wake makes the current term's dispatcher look at the queue now. Between
// terms it does nothing: a term's dispatcher looks at the queue first.
func (a *asyncParts) wake() {
	if d := a.dispatcher.Load(); d != nil {
		d.Wake()
	}
}

// abandon cuts off the current term's runs (queue.Dispatcher.Abandon),
// for a node that stops and cannot wait for them.
func (a *asyncParts) abandon() {
	if d := a.dispatcher.Load(); d != nil {
		d.Abandon()
	}
}

// connect wires the dispatcher's hooks to the gateway (logs, records,
// destinations) once both exist, before the first term.
func (a *asyncParts) connect(gw *gateway.Gateway) {
	cp, log := a.cp, a.log
	a.invoker = gw
	a.checkBudgets = gw.Service().CheckBudgets
	a.runBackups = gw.Service().RunBackups
	deliverer := &notify.Deliverer{}
	a.hooks = queue.Hooks{
		Log:     gw.AddLog,
		Admit:   gw.Admit,
		Observe: gw.ObserveRun,
		Outcome: func(o queue.Outcome) {
			url := queue.URLDestination(o)
			if url == "" {
				return
			}
			a.deliveries.Add(1)
			go func() {
				defer a.deliveries.Done()
				secret, _ := gateway.WebhookSecret(cp.Store(), o.Function.Namespace)
				ctx, cancel := context.WithTimeout(a.deliveryCtx, 2*time.Minute)
				defer cancel()
				d := deliverer.Deliver(ctx, url, secret, queue.DestinationRecord(o))
				if d.Err != nil {
					log.Warn("destination delivery failed", "request_id", o.Item.RequestID, "url", url, "err", d.Err)
				}
				if rec, err := cp.Store().Record(o.Item.RequestID); err == nil {
					rec.Destination = d.String()
					gw.UpdateRecord(rec)
				}
			}()
		},
	}
}

// close cancels the destination deliveries in flight, waits for them,
// then stops the enqueuer after committing what it holds. Call it after
// the last term ended and before the gateway closes.
func (a *asyncParts) close() {
	a.stopDeliveries()
	a.deliveries.Wait()
	a.enqueuer.Close()
}

// term runs the services only the leader runs, for one term of office,
// until ctx ends; it returns once every one of them has returned (the
// dispatcher after its runs and their outcomes: see queue.Dispatcher.Run).
// extra, when not nil, runs once per term beside them.
func (a *asyncParts) term(ctx context.Context, extra func(ctx context.Context)) {
	d := queue.NewDispatcher(a.cp, a.placer, a.hooks, a.log.With("subsystem", "dispatcher"))
	a.dispatcher.Store(d)
	defer a.dispatcher.Store(nil)
	ensureWebhookSecret(ctx, a.cp, a.log)
	var wg sync.WaitGroup
	spawn := func(f func(ctx context.Context)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(ctx)
		}()
	}
	if extra != nil {
		spawn(extra)
	}
	spawn(d.Run)
	spawn(a.scheduler.Run)
	spawn(a.notifier.Run)
	spawn(func(ctx context.Context) { provision(ctx, a.cp, a.placer) })
	spawn(a.watchBudgets)
	if a.runBackups != nil && a.backups.Every > 0 {
		spawn(func(ctx context.Context) { a.runBackups(ctx, a.backups) })
	}
	spawn(sources.NewManager(a.cp, a.invoker, a.sourceMetrics, a.cp.ID(), a.log.With("subsystem", "sources")).Run)
	wg.Wait()
}

// leaderNode is what runLeadership needs of the Raft node.
type leaderNode interface {
	LeaderCh() <-chan bool
	IsLeader() bool
	Barrier(timeout time.Duration) error
}

// runLeadership runs term during each term of office of cp until ctx
// ends: from when cp leads and a Raft barrier has applied everything
// committed before, until it stops leading. It follows cp.LeaderCh, of
// which it must be the only reader; that channel keeps only the latest
// change, so a true while a term runs means leadership was lost and
// regained, and starts a new term. A term has ended (term returned) before
// the next one starts, and before runLeadership returns.
func runLeadership(ctx context.Context, cp leaderNode, log *slog.Logger, term func(ctx context.Context)) {
	var (
		endTerm context.CancelFunc
		ended   chan struct{}
	)
	stop := func() bool {
		if endTerm == nil {
			return false
		}
		endTerm()
		<-ended
		endTerm = nil
		return true
	}
	start := func() {
		tctx, cancel := context.WithCancel(ctx)
		endTerm, ended = cancel, make(chan struct{})
		go func(ended chan struct{}) {
			defer close(ended)
			if takeOffice(tctx, cp, log) {
				log.Info("leader services started")
				term(tctx)
			}
		}(ended)
	}
	for {
		select {
		case <-ctx.Done():
			stop()
			return
		case leading := <-cp.LeaderCh():
			if stop() {
				log.Info("leadership lost: leader services stopped")
			}
			if leading {
				start()
			}
		}
	}
}

// takeOffice waits for a Raft barrier, so that the leader's services see
// everything committed before its term; it tries again while cp still
// leads and reports whether the barrier passed before ctx ended.
func takeOffice(ctx context.Context, cp leaderNode, log *slog.Logger) bool {
	for {
		err := cp.Barrier(10 * time.Second)
		if err == nil {
			return ctx.Err() == nil
		}
		log.Warn("barrier on taking office", "err", err)
		if !cp.IsLeader() {
			return false // a change of leadership follows on LeaderCh
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// provisionEvery is how often the leader renews provisioned instances
// (well within the workers' provisionLease).
const provisionEvery = 3 * time.Second

// provision keeps the provisioned instances of every function that asks
// for them ready on the workers, renewing the request each period: a
// worker that restarts, or a new revision, gets its instances within a
// period, and a function that stops asking lets them lapse.
func provision(ctx context.Context, cp *controlplane.Node, placer *placement.Placer) {
	t := time.NewTicker(provisionEvery)
	defer t.Stop()
	for {
		for _, fn := range cp.Store().ProvisionedFunctions() {
			placer.Provision(fn, fn.Provisioned)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchBudgets runs the budget check every period while this node leads
// and sends the alerts it finds new to the namespaces' subscriptions.
func (a *asyncParts) watchBudgets(ctx context.Context) {
	every := a.budgetEvery
	if every <= 0 {
		every = 30 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		alerts, err := a.checkBudgets(ctx, time.Now().UTC())
		if err != nil && ctx.Err() == nil {
			a.log.Warn("budget check", "err", err)
		}
		for _, al := range alerts {
			a.log.Info("budget alert", "namespace", al.Namespace, "kind", al.Kind, "threshold", al.Threshold, "amount", al.Amount, "currency", al.Currency)
			a.notifier.NotifyBudget(al)
		}
	}
}

// ensureWebhookSecret creates the cluster's webhook signing secret once.
func ensureWebhookSecret(ctx context.Context, cp *controlplane.Node, log *slog.Logger) {
	if _, ok := cp.Store().Setting(gateway.WebhookSecretKey); ok {
		return
	}
	b := make([]byte, 32)
	rand.Read(b)
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := fsm.Apply(actx, cp, fsm.PutSetting{Key: gateway.WebhookSecretKey, Value: hex.EncodeToString(b), IfAbsent: true}); err != nil {
		log.Warn("creating the webhook secret", "err", err)
	}
}

// parseScanPolicy reads the --scan-policy flag ("" for warn).
func parseScanPolicy(s string) (scan.Policy, error) {
	if s == "" {
		s = scan.ModeWarn
	}
	return scan.ParsePolicy(s)
}

// apiSettings are the gateway settings nimbus dev and nimbus server share.
type apiSettings struct {
	addr       string
	timeouts   HTTPTimeouts
	rateLimit  float64
	pprof      bool
	scanPolicy scan.Policy
	scanDir    string // where code scans unpack packages (see resetScratch)
	smtp       notify.SMTP
	retention  model.Retention // zero: model.DefaultRetention
	// budgetEvery is how often the leader checks budgets (0: 30 s).
	budgetEvery time.Duration
	backups     svc.BackupSchedule
	checker     *pycheck.Checker // nil: deploys are not compile-checked
	builder     *deps.Builder    // nil: deploys with requirements are refused
	// consoleOnce redeems nimbus dev's one-time console sign-in link
	// (nil elsewhere).
	consoleOnce func(token string) (keyID string)

	lambdaRegion string // the region of the Lambda API's ARNs
	scaling      svc.ScalingPolicy
}

// newAPI builds what every node serves: the metrics registry, the async
// parts (enqueuer, dispatcher, scheduler, notifier) and the gateway,
// wired together. more adds what only some nodes have. The caller closes
// the async parts (after the last term), then the gateway.
func newAPI(cp *controlplane.Node, placer *placement.Placer, blobs *blob.Store, logs *logstore.Store,
	set apiSettings, log *slog.Logger, more func(*gateway.Config)) (*gateway.Gateway, *asyncParts) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(placer.Collectors()...)
	async := newAsyncParts(cp, placer, set.smtp, reg, log)
	async.budgetEvery = set.budgetEvery
	async.backups = set.backups
	retention := set.retention
	if retention == (model.Retention{}) {
		retention = model.DefaultRetention()
	}
	cfg := gateway.Config{
		Enqueuer:    async.enqueuer,
		Woken:       async.wake,
		RateLimit:   set.rateLimit,
		Pprof:       set.pprof,
		ScanPolicy:  set.scanPolicy,
		Scanner:     scan.Scanner{TempDir: set.scanDir},
		Checker:     set.checker,
		Builder:     set.builder,
		Control:     cp,
		Snapshots:   cp,
		Blobs:       blobs,
		Logs:        logs,
		Placer:      placer,
		Retention:   retention,
		Registry:    reg,
		Log:         log.With("subsystem", "gateway"),
		APIAddr:     set.addr,
		ServerID:    cp.ID(),
		BodyTimeout: set.timeouts.Body,
		Mail:        set.smtp.Addr != "",
		Disk:        cp.Disk(),
		ConsoleOnce: set.consoleOnce,
	}
	cfg.LambdaRegion = set.lambdaRegion
	cfg.Scaling = set.scaling
	if more != nil {
		more(&cfg)
	}
	gw := gateway.New(cfg)
	async.connect(gw)
	return gw, async
}

// HTTPTimeouts bound how long a client may take to send a request, so
// that slow senders (slow loris) do not hold connections.
type HTTPTimeouts struct {
	Header time.Duration // the request line and headers; 0: 10 s
	Body   time.Duration // the body, plus its size at 100 KB/s; 0: 30 s
}

func (t HTTPTimeouts) header() time.Duration {
	if t.Header <= 0 {
		return 10 * time.Second
	}
	return t.Header
}
