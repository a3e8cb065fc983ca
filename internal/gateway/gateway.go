// Package gateway owns the REST API (docs/spec.md §5): routing,
// authentication, request limits, and turning errors into statuses. One
// file per resource.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/blob"
	"nimbus/internal/console"
	"nimbus/internal/controlplane"
	"nimbus/internal/datadir"
	"nimbus/internal/deps"
	"nimbus/internal/fsm"
	"nimbus/internal/logstore"
	"nimbus/internal/model"
	"nimbus/internal/placement"
	"nimbus/internal/pycheck"
	"nimbus/internal/queue"
	"nimbus/internal/scan"
	"nimbus/internal/service"
	"nimbus/internal/state"
	"nimbus/pkg/client"
)

// ControlPlane is what the gateway needs of the Raft node.
type ControlPlane interface {
	Store() *state.Store
	fsm.Writer
	Servers(apiAddr func(id string) string) []client.Server
}

// Config holds the gateway's dependencies and settings.
type Config struct {
	Control   ControlPlane
	Blobs     *blob.Store
	Logs      *logstore.Store
	Placer    *placement.Placer
	Retention model.Retention
	Registry  *prometheus.Registry
	Log       *slog.Logger
	APIAddr   string // this server's API address, for the cluster view
	// ServerID is this server's ID in the Raft configuration: /metrics
	// reports the rollups of the functions it is responsible for.
	ServerID string
	// ReplicateBlob copies a new code package to enough other servers
	// before its revision is committed; nil on a single node.
	ReplicateBlob func(ctx context.Context, data []byte) error
	// FetchBlob, when set, fetches a code package this server lacks from
	// the others (a deploy replicates to a majority only); nil on a
	// single node.
	FetchBlob func(ctx context.Context, digest string) ([]byte, error)
	// Snapshots takes and restores backups (nil: this server does not).
	Snapshots service.Snapshotter
	// PeerView, when set, fills in what the other servers say of
	// themselves (role, term, index, health) in the cluster view.
	PeerView func([]client.Server) []client.Server
	// Membership changes the cluster (join, remove, drain); nil on a
	// single node.
	Membership Membership
	// Enqueuer commits asynchronous events before they are acknowledged.
	Enqueuer *queue.Enqueuer
	// Woken, when set, is called after the queue gained events outside
	// the enqueuer (redrive), to wake the dispatcher.
	Woken func()
	// RateLimit is the default requests per second per key (a key may
	// carry its own); 0 for none.
	RateLimit float64
	// Pprof serves Go's runtime profiles under /debug/pprof/ to admin
	// keys (--enable-pprof).
	Pprof bool
	// ScanPolicy and Scanner decide code scanning at deploy (Mode ""
	// or off: no scan).
	ScanPolicy scan.Policy
	Scanner    scan.Scanner
	// Checker, when set, compiles a deploy's Python and refuses code that
	// cannot be imported (a syntax error, no handler module).
	Checker *pycheck.Checker
	// Builder, when set, builds deploys' dependency layers.
	Builder *deps.Builder
	// Concurrency admits invocations within their functions' reserved
	// concurrency and their namespaces' limits; shared with the
	// asynchronous dispatcher. New makes one when nil.
	Concurrency *placement.Concurrency
	// BodyTimeout bounds the arrival of a request body (plus its size at
	// 100 KB/s); 0 for DefaultBodyTimeout, negative for none.
	BodyTimeout time.Duration
	// Health, when set, adds what a server says of itself to /healthz
	// (its id, internal address, whether it has state and which CA):
	// what a new node needs to find a server's internal port.
	Health func() any
	// Mail says whether this server can send e-mail (it has an SMTP
	// relay, --smtp-addr).
	Mail bool
	// NotMember, when set, says why this server is not a member of the
	// cluster ("" when it is one): such a server answers every API
	// request but the cluster view with 503, and /healthz with 503.
	NotMember func() string
	// Disk watches the data directory: /readyz probes it and the
	// metrics count its full-disk errors. Nil for none (always writable).
	Disk *datadir.Monitor
	// ConsoleOnce, when set, redeems a one-time console sign-in token
	// (nimbus dev prints a link with one): it returns the id of the key
	// the session acts as, once, and "" for a token it does not know or
	// has redeemed already.
	ConsoleOnce func(token string) (keyID string)
	// LambdaRegion is the region of the Lambda API's ARNs ("" for
	// DefaultLambdaRegion).
	LambdaRegion string
	// Scaling shapes the scaling signal (GET /v1/scaling and the
	// nimbus_scaling_* gauges).
	Scaling service.ScalingPolicy
}

// Gateway serves the API.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	svc     *service.Service
	limits  limiter
	follow  *hub[model.LogEntry]
	events  *hub[model.Invocation]
	ui      *console.Renderer
	mux     *http.ServeMux
	handler http.Handler
}

// New builds a gateway and starts its record batcher; Close stops it.
func New(cfg Config) *Gateway {
	if cfg.Concurrency == nil {
		cfg.Concurrency = placement.NewConcurrency()
	}
	g := &Gateway{cfg: cfg, log: cfg.Log, metrics: newMetrics(cfg.Registry), follow: newHub[model.LogEntry](), events: newHub[model.Invocation](),
		ui: console.New(cfg.Log)}
	if cfg.Disk != nil {
		registerDiskMetrics(cfg.Registry, cfg.Disk)
	}
	cfg.Control.Store().ObserveRecords(g.events.publish)
	var loads service.ScalingLoads
	if cfg.Placer != nil {
		loads = cfg.Placer
	}
	g.svc = service.New(service.Deps{
		Control: cfg.Control, Blobs: cfg.Blobs, Placer: cfg.Placer, ReplicateBlob: cfg.ReplicateBlob,
		FetchBlob: cfg.FetchBlob, Snapshots: cfg.Snapshots,
		ScanPolicy: cfg.ScanPolicy, Scanner: cfg.Scanner, Checker: cfg.Checker, Builder: cfg.Builder,
		Mail: cfg.Mail, Clustered: cfg.Membership != nil, Woken: cfg.Woken,
		Logs: cfg.Logs, Retention: cfg.Retention, Log: cfg.Log, Registry: cfg.Registry,
		Concurrency: cfg.Concurrency, Slots: cfg.Placer.Slots,
		Loads: loads, Scaling: cfg.Scaling,
	})
	registerScalingMetrics(cfg.Registry, g.svc)
	cfg.Registry.MustRegister(newRollupCollector(g))
	g.routes()
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = DefaultBodyTimeout
	}
	g.handler = withBodyDeadline(g.serving(g.mux), cfg.BodyTimeout)
	return g
}

// AddLog stores an invocation's log and streams it to followers (the
// asynchronous path, whose records commit with their outcomes).
func (g *Gateway) AddLog(entry model.LogEntry) {
	g.follow.publish(entry)
	g.svc.AddRecord(nil, &entry)
}

// UpdateRecord commits a changed invocation record in the next batch.
func (g *Gateway) UpdateRecord(rec model.Invocation) { g.svc.AddRecord(&rec, nil) }

// Close flushes pending invocation records and stops the batcher.
func (g *Gateway) Close() { g.svc.Close() }

// Service is the gateway's service layer, for the node's leader duties
// (the budget check).
func (g *Gateway) Service() *service.Service { return g.svc }

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.handler.ServeHTTP(w, r) }

// routes is the route table: every route names the permission it needs,
// and allow checks it (and the key's rate limit) in one place.
func (g *Gateway) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", g.health)
	m.HandleFunc("GET /readyz", g.ready)
	m.HandleFunc("POST /v1/login", g.login) // authenticates by itself
	m.Handle("GET /metrics", g.allow(permAdmin, global, g.metrics.handler(g.cfg.Registry).ServeHTTP))
	if g.cfg.Pprof {
		m.Handle("GET /debug/pprof/", g.allow(permAdmin, global, pprof.Index))
		m.Handle("GET /debug/pprof/profile", g.allow(permAdmin, global, pprof.Profile))
		m.Handle("GET /debug/pprof/trace", g.allow(permAdmin, global, pprof.Trace))
	}
	for _, r := range g.routeTable() {
		m.Handle(r.pattern, g.allow(r.perm, r.scope, r.h))
	}
	// Function URLs: any method; each URL says whether it needs a key
	// (checkURLCaller).
	m.HandleFunc("/fn/{namespace}/{name}", g.serveURL)
	m.HandleFunc("/fn/{namespace}/{name}/{rest...}", g.serveURL)
	g.uiRoutes(m)
	g.lambdaRoutes(m) // the AWS Lambda API, SigV4-signed (lambda.go)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if allowed := allowedMethods(m, r); len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
			writeError(w, g.log, &apiError{http.StatusMethodNotAllowed, "MethodNotAllowed",
				fmt.Sprintf("%s is not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(allowed, " or "))})
			return
		}
		writeError(w, g.log, &apiError{http.StatusNotFound, "NotFound", "no such route: " + r.Method + " " + r.URL.Path})
	})
	g.mux = m
}

// route is one API route: its pattern, the permission and scope it
// needs, and its handler.
type route struct {
	pattern string
	perm    perm
	scope   scope
	h       http.HandlerFunc
}

// routeTable lists the API routes that need a key.
func (g *Gateway) routeTable() []route {
	return []route{
		{"GET /v1/functions", permRead, scoped, g.listFunctions},
		{"PUT /v1/functions/{name}", permWrite, scoped, g.putFunction},
		{"GET /v1/functions/{name}", permRead, scoped, g.getFunction},
		{"DELETE /v1/functions/{name}", permWrite, scoped, g.deleteFunction},
		{"POST /v1/functions/{name}/invoke", permWrite, scoped, g.invoke},
		{"POST /v1/functions/{name}/versions", permWrite, scoped, g.publishVersion},
		{"GET /v1/functions/{name}/versions", permRead, scoped, g.listVersions},
		{"DELETE /v1/functions/{name}/versions/{version}", permWrite, scoped, g.deleteVersion},
		{"GET /v1/functions/{name}/aliases", permRead, scoped, g.listAliases},
		{"POST /v1/functions/{name}/aliases", permWrite, scoped, g.createAlias},
		{"GET /v1/functions/{name}/aliases/{alias}", permRead, scoped, g.getAlias},
		{"PUT /v1/functions/{name}/aliases/{alias}", permWrite, scoped, g.updateAlias},
		{"DELETE /v1/functions/{name}/aliases/{alias}", permWrite, scoped, g.deleteAlias},
		{"GET /v1/runs", permWrite, scoped, g.run},
		{"GET /v1/functions/{name}/logs", permRead, scoped, g.logs},
		{"GET /v1/functions/{name}/url", permRead, scoped, g.getFunctionURL},
		{"PUT /v1/functions/{name}/url", permWrite, scoped, g.putFunctionURL},
		{"DELETE /v1/functions/{name}/url", permWrite, scoped, g.deleteFunctionURL},
		{"GET /v1/urls", permRead, scoped, g.listFunctionURLs},
		{"GET /v1/functions/{name}/test-events", permRead, scoped, g.listTestEvents},
		{"GET /v1/functions/{name}/test-events/{event}", permRead, scoped, g.getTestEvent},
		{"PUT /v1/functions/{name}/test-events/{event}", permWrite, scoped, g.putTestEvent},
		{"DELETE /v1/functions/{name}/test-events/{event}", permWrite, scoped, g.deleteTestEvent},
		{"GET /v1/invocations", permRead, scoped, g.listInvocations},
		{"GET /v1/invocations/{id}", permRead, scoped, g.getInvocation},
		{"GET /v1/events", permRead, scoped, g.streamEvents},
		{"GET /v1/metrics/query", permRead, scoped, g.queryMetrics},
		{"GET /v1/subscriptions", permRead, scoped, g.listSubscriptions},
		{"POST /v1/subscriptions", permWrite, scoped, g.createSubscription},
		{"DELETE /v1/subscriptions/{id}", permWrite, scoped, g.deleteSubscription},
		{"GET /v1/deadletters", permRead, scoped, g.listDeadLetters},
		{"POST /v1/deadletters/redrive", permWrite, scoped, g.redrive},
		{"GET /v1/webhooks/secret", permWrite, scoped, g.webhookSecret},
		{"GET /v1/schedules", permRead, scoped, g.listSchedules},
		{"GET /v1/schedules/{name}", permRead, scoped, g.getSchedule},
		{"PUT /v1/schedules/{name}", permWrite, scoped, g.putSchedule},
		{"DELETE /v1/schedules/{name}", permWrite, scoped, g.deleteSchedule},
		{"POST /v1/schedules/{name}/enable", permWrite, scoped, g.enableSchedule(true)},
		{"POST /v1/schedules/{name}/disable", permWrite, scoped, g.enableSchedule(false)},
		{"GET /v1/sources", permRead, scoped, g.listSources},
		{"GET /v1/sources/{name}", permRead, scoped, g.getSource},
		{"PUT /v1/sources/{name}", permWrite, scoped, g.putSource},
		{"DELETE /v1/sources/{name}", permWrite, scoped, g.deleteSource},
		{"POST /v1/sources/{name}/enable", permWrite, scoped, g.enableSource(true)},
		{"POST /v1/sources/{name}/disable", permWrite, scoped, g.enableSource(false)},
		{"GET /v1/topics", permRead, scoped, g.listTopics},
		{"GET /v1/topics/{name}", permRead, scoped, g.getTopic},
		{"PUT /v1/topics/{name}", permWrite, scoped, g.putTopic},
		{"DELETE /v1/topics/{name}", permWrite, scoped, g.deleteTopic},
		{"POST /v1/topics/{name}/publish", permWrite, scoped, g.publish},
		{"POST /v1/topics/{name}/subscriptions", permWrite, scoped, g.subscribeTopic},
		{"DELETE /v1/topics/{name}/subscriptions/{function}", permWrite, scoped, g.unsubscribeTopic},
		{"GET /v1/usage", permRead, scoped, g.getUsage},
		{"GET /v1/usage/cost", permRead, scoped, g.getCost},
		{"GET /v1/runtimes", permRead, global, g.listRuntimes},
		{"GET /v1/builds", permRead, scoped, g.listBuilds},
		{"GET /v1/builds/{id}", permRead, scoped, g.getBuild},
		{"GET /v1/layers", permRead, scoped, g.listLayers},
		{"POST /v1/layers/{name}", permWrite, scoped, g.publishLayer},
		{"GET /v1/layers/{name}", permRead, scoped, g.getLayer},
		{"GET /v1/layers/{name}/versions/{version}", permRead, scoped, g.getLayer},
		{"DELETE /v1/layers/{name}/versions/{version}", permWrite, scoped, g.deleteLayer},
		{"GET /v1/budgets", permRead, scoped, g.listBudgets},
		{"PUT /v1/namespaces/{name}/budget", permAdmin, global, g.putBudget},
		{"DELETE /v1/namespaces/{name}/budget", permAdmin, global, g.deleteBudget},
		{"GET /v1/prices", permRead, scoped, g.getPrices},
		{"PUT /v1/prices", permAdmin, global, g.putPrices},
		{"GET /v1/operator/snapshot", permAdmin, global, g.saveSnapshot},
		{"POST /v1/operator/snapshot", permAdmin, global, g.restoreSnapshot},
		{"DELETE /v1/prices", permAdmin, global, g.deletePrices},
		{"PUT /v1/namespaces/{name}/prices", permAdmin, global, g.putPrices},
		{"DELETE /v1/namespaces/{name}/prices", permAdmin, global, g.deletePrices},
		{"GET /v1/namespaces", permRead, global, g.listNamespaces},
		{"GET /v1/namespaces/{name}", permRead, global, g.getNamespace},
		{"PUT /v1/namespaces/{name}", permAdmin, global, g.putNamespace},
		{"DELETE /v1/namespaces/{name}", permAdmin, global, g.deleteNamespace},
		{"GET /v1/cluster", permAdmin, global, g.cluster},
		{"GET /v1/scaling", permAdmin, global, g.scaling},
		{"POST /v1/cluster/servers", permAdmin, global, g.joinServer},
		{"DELETE /v1/cluster/servers/{id}", permAdmin, global, g.removeServer},
		{"POST /v1/cluster/workers/{id}/drain", permAdmin, global, g.drainWorker},
		{"POST /v1/cluster/workers/{id}/undrain", permAdmin, global, g.undrainWorker},
		{"POST /v1/cluster/tokens", permAdmin, global, g.createJoinToken},
		{"GET /v1/keys", permAdmin, global, g.listKeys},
		{"POST /v1/keys", permAdmin, global, g.createKey},
		{"DELETE /v1/keys/{id}", permAdmin, global, g.revokeKey},
		{"GET /v1/audit", permAdmin, global, g.audit},
		{"GET /v1/session", permRead, global, g.session},
		{"POST /v1/logout", permRead, global, g.logout},
		{"GET /v1/users", permAdmin, global, g.listUsers},
		{"POST /v1/users", permAdmin, global, g.createUser},
		{"DELETE /v1/users/{name}", permAdmin, global, g.deleteUser},
		{"PUT /v1/users/{name}/password", permRead, global, g.setPassword}, // admin or the user: checked inside
	}
}

// allowedMethods lists the methods that have a route for r's path on m
// (other than the catch-all "/"): when there are some, r's method is the
// wrong one (405), not its path (404).
func allowedMethods(m *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, method := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := &http.Request{Method: method, URL: r.URL, Host: r.Host}
		if _, pattern := m.Handler(probe); pattern != "" && pattern != "/" {
			out = append(out, method)
		}
	}
	return out
}

func (g *Gateway) health(w http.ResponseWriter, r *http.Request) {
	out := map[string]any{"status": "ok"}
	if g.cfg.Health != nil {
		out["server"] = g.cfg.Health()
	}
	status := http.StatusOK
	if why := g.notMember(); why != "" {
		out["status"], out["not_member"] = "not a member of the cluster", why
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, out)
}

// notMember says why this server is not a member of the cluster, "" when
// it is.
func (g *Gateway) notMember() string {
	if g.cfg.NotMember == nil {
		return ""
	}
	return g.cfg.NotMember()
}

// serving refuses every request with 503 while this server should not
// answer from its state (see unavailable), except /healthz and /readyz,
// which say so themselves, and the cluster view and metrics. Those two
// still need a key that this server's state knows; when it does not (a
// restarted server applies nothing of its log until a leader tells it
// what is committed), the refusal is the same 503 rather than a 401 that
// would hide the reason.
func (g *Gateway) serving(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
			next.ServeHTTP(w, r)
			return
		}
		err := g.unavailable()
		if errors.Is(err, controlplane.ErrCatchingUp) {
			g.awaitCatchUp(r.Context())
			err = g.unavailable()
		}
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		if r.URL.Path != "/v1/cluster" && r.URL.Path != "/metrics" {
			writeError(w, g.log, err)
			return
		}
		next.ServeHTTP(&refusedAsUnavailable{ResponseWriter: w, g: g, err: err}, r)
	})
}

// unavailable says why this server does not serve from its state now:
// it is not a member of the cluster (its state is stale), or it has not
// caught up with the cluster since it started (controlplane.ErrCatchingUp:
// what it has not loaded yet it would answer as missing, 401 or 404).
// nil when it serves.
func (g *Gateway) unavailable() error {
	if why := g.notMember(); why != "" {
		return fmt.Errorf("%w, so it does not serve its stale state: %s", controlplane.ErrNotMember, why)
	}
	if c, ok := g.cfg.Control.(catchingUp); ok && !c.CaughtUp() {
		return controlplane.ErrCatchingUp
	}
	return nil
}

// catchUpWait is how long a request that arrives while this server
// catches up waits for it before the 503: a server just started (a new
// cluster's first, a restarted one whose peers answer) usually catches
// up within a moment of an election, and a client that was told the
// cluster is up should not have its first write refused for that.
const catchUpWait = 2 * time.Second

// awaitCatchUp waits until this server has caught up, catchUpWait at
// most, or ctx ends.
func (g *Gateway) awaitCatchUp(ctx context.Context) {
	c, ok := g.cfg.Control.(catchingUp)
	if !ok {
		return
	}
	t := time.NewTimer(catchUpWait)
	defer t.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !c.CaughtUp() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-tick.C:
		}
	}
}

// catchingUp is a control plane whose state may not yet be current after
// a start (controlplane.Node).
type catchingUp interface {
	CaughtUp() bool
}

// refusedAsUnavailable turns an authentication or permission refusal
// into the answer of an unavailable server.
type refusedAsUnavailable struct {
	http.ResponseWriter
	g        *Gateway
	err      error
	replaced bool
}

// Unwrap lets a websocket upgrade reach the connection.
func (w *refusedAsUnavailable) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *refusedAsUnavailable) WriteHeader(code int) {
	if code == http.StatusUnauthorized || code == http.StatusForbidden {
		w.replaced = true
		w.Header().Del("WWW-Authenticate")
		writeError(w.ResponseWriter, w.g.log, w.err)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *refusedAsUnavailable) Write(b []byte) (int, error) {
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}
