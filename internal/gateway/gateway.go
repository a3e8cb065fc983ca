// Package gateway owns the REST API (docs/spec.md §5): routing,
// authentication, request limits, and turning errors into statuses. One
// file per resource.
package gateway

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/auth"
	"nimbus/internal/blob"
	"nimbus/internal/fsm"
	"nimbus/internal/logstore"
	"nimbus/internal/placement"
	"nimbus/internal/queue"
	"nimbus/internal/state"
	"nimbus/pkg/client"
)

// ControlPlane is what the gateway needs of the Raft node.
type ControlPlane interface {
	Store() *state.Store
	Apply(ctx context.Context, t fsm.CommandType, cmd any) (any, error)
	Servers(apiAddr func(id string) string) []client.Server
}

// Config holds the gateway's dependencies and settings.
type Config struct {
	Control   ControlPlane
	Blobs     *blob.Store
	Logs      *logstore.Store
	Placer    *placement.Placer
	Retention state.Retention
	Registry  *prometheus.Registry
	Log       *slog.Logger
	APIAddr   string // this server's API address, for the cluster view
	// ReplicateBlob copies a new code package to enough other servers
	// before its revision is committed; nil on a single node.
	ReplicateBlob func(ctx context.Context, data []byte) error
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
}

// Gateway serves the API.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	metrics  *metrics
	recorder *recorder
	follow   *hub[client.LogEntry]
	events   *hub[client.Invocation]
	mux      *http.ServeMux
}

// New builds a gateway and starts its record batcher; Close stops it.
func New(cfg Config) *Gateway {
	g := &Gateway{cfg: cfg, log: cfg.Log, metrics: newMetrics(cfg.Registry), follow: newHub[client.LogEntry](), events: newHub[client.Invocation]()}
	cfg.Control.Store().ObserveRecords(g.events.publish)
	g.recorder = newRecorder(cfg.Control, cfg.Logs, cfg.Retention, cfg.Log)
	g.routes()
	return g
}

// SetWoken sets the function called after a redrive (to wake the
// dispatcher); the dispatcher is built after the gateway.
func (g *Gateway) SetWoken(f func()) { g.cfg.Woken = f }

// AddLog stores an invocation's log and streams it to followers (the
// asynchronous path, whose records commit with their outcomes).
func (g *Gateway) AddLog(entry client.LogEntry) {
	g.follow.publish(entry)
	g.recorder.add(nil, &entry)
}

// UpdateRecord commits a changed invocation record in the next batch.
func (g *Gateway) UpdateRecord(rec client.Invocation) { g.recorder.add(&rec, nil) }

// Close flushes pending invocation records and stops the batcher.
func (g *Gateway) Close() { g.recorder.close() }

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) { g.mux.ServeHTTP(w, r) }

func (g *Gateway) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", g.health)
	m.Handle("GET /metrics", g.auth(g.metrics.handler(g.cfg.Registry)))
	m.Handle("GET /v1/functions", g.authFunc(g.listFunctions))
	m.Handle("PUT /v1/functions/{name}", g.authFunc(g.putFunction))
	m.Handle("GET /v1/functions/{name}", g.authFunc(g.getFunction))
	m.Handle("DELETE /v1/functions/{name}", g.authFunc(g.deleteFunction))
	m.Handle("POST /v1/functions/{name}/invoke", g.authFunc(g.invoke))
	m.Handle("GET /v1/functions/{name}/logs", g.authFunc(g.logs))
	m.Handle("GET /v1/invocations", g.authFunc(g.listInvocations))
	m.Handle("GET /v1/invocations/{id}", g.authFunc(g.getInvocation))
	m.Handle("GET /v1/cluster", g.authFunc(g.cluster))
	m.Handle("GET /v1/events", g.authFunc(g.streamEvents))
	m.Handle("GET /v1/subscriptions", g.authFunc(g.listSubscriptions))
	m.Handle("POST /v1/subscriptions", g.authFunc(g.createSubscription))
	m.Handle("DELETE /v1/subscriptions/{id}", g.authFunc(g.deleteSubscription))
	m.Handle("GET /v1/deadletters", g.authFunc(g.listDeadLetters))
	m.Handle("POST /v1/deadletters/redrive", g.authFunc(g.redrive))
	m.Handle("GET /v1/webhooks/secret", g.authFunc(g.webhookSecret))
	m.Handle("GET /v1/schedules", g.authFunc(g.listSchedules))
	m.Handle("GET /v1/schedules/{name}", g.authFunc(g.getSchedule))
	m.Handle("PUT /v1/schedules/{name}", g.authFunc(g.putSchedule))
	m.Handle("DELETE /v1/schedules/{name}", g.authFunc(g.deleteSchedule))
	m.Handle("POST /v1/schedules/{name}/enable", g.authFunc(g.enableSchedule(true)))
	m.Handle("POST /v1/schedules/{name}/disable", g.authFunc(g.enableSchedule(false)))
	m.Handle("POST /v1/cluster/servers", g.authFunc(g.joinServer))
	m.Handle("DELETE /v1/cluster/servers/{id}", g.authFunc(g.removeServer))
	m.Handle("POST /v1/cluster/workers/{id}/drain", g.authFunc(g.drainWorker))
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, g.log, &apiError{http.StatusNotFound, "NotFound", "no such route: " + r.Method + " " + r.URL.Path})
	})
	g.mux = m
}

func (g *Gateway) health(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (g *Gateway) authFunc(h http.HandlerFunc) http.Handler { return g.auth(h) }

// auth checks the bearer token against the stored keys.
func (g *Gateway) auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.authenticate(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nimbus"`)
			writeError(w, g.log, err)
			return
		}
		h.ServeHTTP(w, r)
	})
}

var errUnauthorized = &apiError{http.StatusUnauthorized, "Unauthorized", "missing or invalid API key: send Authorization: Bearer <key> (nimbus dev writes the admin key to DATA/admin.token)"}

func (g *Gateway) authenticate(r *http.Request) error {
	if _, err := auth.Check(g.cfg.Control.Store(), auth.Bearer(r.Header.Get("Authorization"))); err != nil {
		return errUnauthorized
	}
	return nil
}
