package gateway

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/state"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

const maxAsyncPayload = 1 << 20

// invokeAsync commits the event through Raft, then answers 202.
func (g *Gateway) invokeAsync(w http.ResponseWriter, r *http.Request, id string, fn model.Function) {
	payload, err := readEvent(w, r, maxAsyncPayload)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	if err := g.enqueueAsync(r.Context(), id, fn, payload); err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"request_id": id})
}

// enqueueAsync commits an asynchronous invocation of fn (as resolved,
// a version or the head) with payload, request id id: the native invoke
// route's and the Lambda API's.
func (g *Gateway) enqueueAsync(ctx context.Context, id string, fn model.Function, payload []byte) error {
	// The version is chosen now (an alias's routing included): every
	// attempt of the event runs the same one.
	item := model.QueueItem{RequestID: id, Namespace: fn.Namespace, Function: fn.Name, Event: payload, Trigger: "async", EnqueuedAt: time.Now().UTC()}
	if fn.Version > 0 {
		item.Function += ":" + model.VersionString(fn.Version)
	}
	return g.cfg.Enqueuer.Enqueue(ctx, item)
}

func (g *Gateway) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, 0, maxListLimit)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	dls := firstN(g.svc.DeadLetters(callerNS(r.Context()), r.URL.Query().Get("function")), limit)
	writeJSON(w, http.StatusOK, map[string]any{"dead_letters": wire.List(dls, wire.DeadLetter)})
}

// redrive re-enqueues dead letters: {"ids": [...]} or {"all": true,
// "function": "optional"}.
func (g *Gateway) redrive(w http.ResponseWriter, r *http.Request) {
	var body struct {
		IDs      []string `json:"ids"`
		All      bool     `json:"all"`
		Function string   `json:"function"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
		writeError(w, g.log, bodyError(err, `send {"ids": ["..."]} or {"all": true}`))
		return
	}
	moved, err := g.svc.Redrive(r.Context(), callerNS(r.Context()), body.IDs, body.All, body.Function)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"redriven": moved})
}

// webhookSecret shows the secret that signs the namespace's webhook
// deliveries.
func (g *Gateway) webhookSecret(w http.ResponseWriter, r *http.Request) {
	secret, ok := WebhookSecret(g.cfg.Control.Store(), callerNS(r.Context()))
	if !ok {
		writeError(w, g.log, &apiError{http.StatusServiceUnavailable, "ServiceUnavailable", "the webhook secret is not created yet: the leader makes it on taking office"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"secret": secret, "header": "X-Nimbus-Signature", "scheme": "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">"})
}

// WebhookSecretKey is the setting that holds the cluster's webhook
// master secret, from which each namespace's signing secret is derived.
const WebhookSecretKey = "webhook_secret"

// WebhookSecret returns the secret that signs namespace ns's webhook
// deliveries (destinations and notifications): HMAC-SHA256 of the
// namespace under the cluster's master secret, so each namespace has its
// own and knowing one tells nothing of another's or of the master. It is
// false until the leader has made the master secret.
func WebhookSecret(store *state.Store, ns string) (string, bool) {
	master, ok := store.Setting(WebhookSecretKey)
	if !ok {
		return "", false
	}
	m := hmac.New(sha256.New, []byte(master))
	m.Write([]byte("nimbus webhook secret of namespace " + client.NamespaceOf(ns)))
	return hex.EncodeToString(m.Sum(nil)), true
}
