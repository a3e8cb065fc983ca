package gateway

import (
	"net/http"
	"time"

	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// streamEvents streams invocation events as server-sent events: every
// change of an invocation record (queued, running, success, failed,
// dead_letter), as this server applies it, optionally for one function.
func (g *Gateway) streamEvents(w http.ResponseWriter, r *http.Request) {
	function, ns := r.URL.Query().Get("function"), callerNS(r.Context())
	sub := g.events.subscribe()
	defer g.events.unsubscribe(sub)
	streamSSE(w, r, g, "invocation", nil, sub, func(rec model.Invocation) (client.Event, bool) {
		if rec.Namespace != ns || (function != "" && rec.Function != function) {
			return client.Event{}, false
		}
		return eventOf(rec), true
	})
}

// eventOf trims a record to what an event carries.
func eventOf(r model.Invocation) client.Event {
	return client.Event{Type: "invocation", RequestID: r.ID, Function: r.Function, Trigger: r.Trigger,
		Status: r.Status, ErrorType: r.ErrorType, Attempts: r.Attempts, DurationMS: r.DurationMS, Time: time.Now().UTC()}
}
