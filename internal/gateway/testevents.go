package gateway

import (
	"net/http"

	"nimbus/internal/model"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// listTestEvents answers a function's saved test events (404 for a
// function that does not exist).
func (g *Gateway) listTestEvents(w http.ResponseWriter, r *http.Request) {
	ns, function := callerNS(r.Context()), r.PathValue("name")
	if _, err := g.svc.Function(ns, function); err != nil {
		writeError(w, g.log, err)
		return
	}
	out := []client.TestEvent{}
	for _, e := range g.svc.TestEvents(ns, function) {
		out = append(out, wire.TestEvent(e))
	}
	writeJSON(w, http.StatusOK, map[string]any{"test_events": out})
}

func (g *Gateway) getTestEvent(w http.ResponseWriter, r *http.Request) {
	e, err := g.svc.TestEvent(callerNS(r.Context()), r.PathValue("name"), r.PathValue("event"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.TestEvent(e))
}

// putTestEvent saves the request's body, the event's JSON itself, under
// the path's name (see service.PutTestEvent): 200 with what was stored.
func (g *Gateway) putTestEvent(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, model.MaxTestEventBytes, "reading the test event")
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	ctx := r.Context()
	e, err := g.svc.PutTestEvent(ctx, callerNS(ctx), r.PathValue("name"), r.PathValue("event"), body, callerKey(ctx).ID)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.TestEvent(e))
}

func (g *Gateway) deleteTestEvent(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := g.svc.DeleteTestEvent(ctx, callerNS(ctx), r.PathValue("name"), r.PathValue("event")); err != nil {
		writeError(w, g.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
