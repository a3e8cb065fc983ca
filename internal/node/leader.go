package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"nimbus/internal/blob"
	"nimbus/internal/controlplane"
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
)

// asyncParts are the pieces of the asynchronous path a node runs: the
// enqueuer on every server, the dispatcher and scheduler on the leader.
type asyncParts struct {
	placer     *placement.Placer
	enqueuer   *queue.Enqueuer
	dispatcher *queue.Dispatcher
	scheduler  *scheduler.Loop
	notifier   *notify.Notifier
}

func newAsyncParts(cp *controlplane.Node, placer *placement.Placer, smtpCfg notify.SMTP, log *slog.Logger) *asyncParts {
	a := &asyncParts{placer: placer, enqueuer: queue.NewEnqueuer(cp)}
	a.scheduler = scheduler.NewLoop(cp, 0, log.With("subsystem", "scheduler"))
	secret := func(ns string) string { s, _ := gateway.WebhookSecret(cp.Store(), ns); return s }
	a.notifier = notify.NewNotifier(cp.Store().Subscriptions, secret, smtpCfg, log.With("subsystem", "notify"))
	cp.Store().ObserveRecordOutcomes(a.notifier.Observe)
	return a
}

// connect wires the dispatcher's hooks to the gateway (logs, records,
// destinations) once both exist.
func (a *asyncParts) connect(cp *controlplane.Node, placer *placement.Placer, gw *gateway.Gateway, log *slog.Logger) {
	deliverer := &notify.Deliverer{}
	hooks := queue.Hooks{
		Log:     gw.AddLog,
		Admit:   gw.Admit,
		Observe: gw.ObserveRun,
		Outcome: func(o queue.Outcome) {
			url := queue.URLDestination(o)
			if url == "" {
				return
			}
			go func() {
				secret, _ := gateway.WebhookSecret(cp.Store(), o.Function.Namespace)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
	a.dispatcher = queue.NewDispatcher(cp, placer, hooks, log.With("subsystem", "dispatcher"))
	a.enqueuer.Committed = a.dispatcher.Wake
	a.scheduler.Fired = a.dispatcher.Wake
}

// runLeaderServices runs, while this node leads and only after a Raft
// barrier on taking office, the services only the leader runs; they stop
// the moment leadership is lost. extra runs once per term of office.
func runLeaderServices(ctx context.Context, cp *controlplane.Node, a *asyncParts, log *slog.Logger, extra func(ctx context.Context)) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	// wait polls until leading is want, or ctx ends (false).
	wait := func(want bool) bool {
		for cp.IsLeader() != want {
			select {
			case <-ctx.Done():
				return false
			case <-t.C:
			}
		}
		return true
	}
	for wait(true) {
		if err := cp.Barrier(10 * time.Second); err != nil {
			log.Warn("barrier on taking office", "err", err)
			continue
		}
		lctx, cancel := context.WithCancel(ctx)
		log.Info("leader services started")
		ensureWebhookSecret(lctx, cp, log)
		if extra != nil {
			go extra(lctx)
		}
		go a.dispatcher.Run(lctx)
		go a.scheduler.Run(lctx)
		go a.notifier.Run(lctx)
		go provision(lctx, cp, a.placer)
		stillRunning := wait(false)
		cancel()
		if !stillRunning {
			return
		}
		log.Info("leadership lost: leader services stopped")
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
		for _, fn := range cp.Store().Functions("") {
			if fn.Provisioned > 0 {
				placer.Provision(fn, fn.Provisioned)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
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
	scanPolicy scan.Policy
	scanDir    string // where code scans unpack packages (see resetScratch)
	smtp       notify.SMTP
	retention  model.Retention  // zero: model.DefaultRetention
	checker    *pycheck.Checker // nil: deploys are not compile-checked
}

// newAPI builds what every node serves: the metrics registry, the async
// parts (enqueuer, dispatcher, scheduler, notifier) and the gateway,
// wired together. more adds what only some nodes have. The caller closes
// the gateway, then the enqueuer.
func newAPI(cp *controlplane.Node, placer *placement.Placer, blobs *blob.Store, logs *logstore.Store,
	set apiSettings, log *slog.Logger, more func(*gateway.Config)) (*gateway.Gateway, *asyncParts) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	async := newAsyncParts(cp, placer, set.smtp, log)
	retention := set.retention
	if retention == (model.Retention{}) {
		retention = model.DefaultRetention()
	}
	cfg := gateway.Config{
		Enqueuer:    async.enqueuer,
		RateLimit:   set.rateLimit,
		ScanPolicy:  set.scanPolicy,
		Scanner:     scan.Scanner{TempDir: set.scanDir},
		Checker:     set.checker,
		Control:     cp,
		Blobs:       blobs,
		Logs:        logs,
		Placer:      placer,
		Retention:   retention,
		Registry:    reg,
		Log:         log.With("subsystem", "gateway"),
		APIAddr:     set.addr,
		BodyTimeout: set.timeouts.Body,
		Mail:        set.smtp.Addr != "",
	}
	if more != nil {
		more(&cfg)
	}
	gw := gateway.New(cfg)
	async.connect(cp, placer, gw, log)
	gw.SetWoken(async.dispatcher.Wake)
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
