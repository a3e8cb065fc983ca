package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"nimbus/pkg/client"
)

// streamEvents streams invocation events as server-sent events: every
// change of an invocation record (queued, running, success, failed,
// dead_letter), as this server applies it, optionally for one function.
func (g *Gateway) streamEvents(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, g.log, fmt.Errorf("streaming unsupported"))
		return
	}
	function := r.URL.Query().Get("function")
	sub := g.events.subscribe()
	defer g.events.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": nimbus events\n\n")
	flusher.Flush()
	ka := time.NewTicker(keepAlive)
	defer ka.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-ka.C:
			fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
		case rec := <-sub:
			if function != "" && rec.Function != function {
				continue
			}
			b, _ := json.Marshal(eventOf(rec))
			fmt.Fprintf(w, "event: invocation\ndata: %s\n\n", b)
			flusher.Flush()
		}
	}
}

// eventOf trims a record to what an event carries.
func eventOf(r client.Invocation) client.Event {
	return client.Event{Type: "invocation", RequestID: r.ID, Function: r.Function, Trigger: r.Trigger,
		Status: r.Status, ErrorType: r.ErrorType, Attempts: r.Attempts, DurationMS: r.DurationMS, Time: time.Now().UTC()}
}
