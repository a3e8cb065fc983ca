package gateway

import (
	"net/http"

	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

func (g *Gateway) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"subscriptions": wire.List(g.svc.Subscriptions(callerNS(r.Context())), wire.Subscription)})
}

// createSubscription stores {function?, on: [...], webhook | email} (see
// service.Subscribe).
func (g *Gateway) createSubscription(w http.ResponseWriter, r *http.Request) {
	var s client.Subscription
	if err := decodeStrict(w, r, &s, 64<<10, "subscription"); err != nil {
		writeError(w, g.log, err)
		return
	}
	stored, err := g.svc.Subscribe(r.Context(), callerNS(r.Context()), wire.ModelSubscription(s))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, wire.Subscription(stored))
}

func (g *Gateway) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := g.svc.Unsubscribe(r.Context(), callerNS(r.Context()), id); err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"deleted": id})
}
