package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/service"
	"nimbus/internal/state"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

const (
	defaultLogLimit = 100
	keepAlive       = 15 * time.Second
)

// logs serves stored logs of a function and, with follow=1, streams new
// ones as server-sent events.
func (g *Gateway) logs(w http.ResponseWriter, r *http.Request) {
	name, ns := r.PathValue("name"), callerNS(r.Context())
	q := r.URL.Query()
	if _, err := g.cfg.Control.Store().Function(client.QualifiedName(ns, name)); err != nil && !g.ownRecord(ns, q.Get("request_id")) {
		writeError(w, g.log, err)
		return
	}
	var since time.Time
	if s := q.Get("since"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			writeError(w, g.log, badRequest(fmt.Sprintf("since=%q is not a duration such as 10m or 2h", s)))
			return
		}
		since = time.Now().Add(-d)
	}
	limit, err := queryLimit(r, defaultLogLimit, maxListLimit)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	requestID := q.Get("request_id")
	match := func(e model.LogEntry) bool {
		return client.NamespaceOf(e.Namespace) == ns && e.Function == name && (requestID == "" || e.RequestID == requestID)
	}
	var entries []model.LogEntry
	// Logs this server has yet to store, as records it has yet to commit
	// (see records), are listed already.
	unstored := g.svc.PendingLogs(match)
	if requestID != "" {
		var e model.LogEntry
		found := len(unstored) > 0
		if found {
			e = unstored[len(unstored)-1]
		} else {
			var err error
			if e, found, err = g.cfg.Logs.Get(requestID); err != nil {
				writeError(w, g.log, err)
				return
			}
		}
		if !found {
			if rec, err := g.record(requestID); err == nil && rec.LogTail != "" {
				e, found = service.LogOfRecord(rec), true
			}
		}
		if found && match(e) {
			entries = append(entries, e)
		}
	} else {
		stored, err := g.cfg.Logs.List(client.QualifiedName(ns, name), since, limit)
		if err != nil {
			writeError(w, g.log, err)
			return
		}
		// Read before the store, so that a log stored meanwhile is in one
		// of the two, if not both.
		have := make(map[string]bool, len(stored))
		for _, e := range stored {
			have[e.RequestID] = true
		}
		for _, e := range unstored {
			if !e.Time.Before(since) && !have[e.RequestID] {
				stored = append(stored, e)
			}
		}
		// No limit on the query: records of queued or running async
		// invocations carry no log, and must not take the places of
		// those that do (retention bounds a function's records).
		recs := g.records(state.RecordQuery{Namespace: ns, Function: name, Since: since})
		entries = mergeLogs(stored, recs, limit)
	}
	if q.Get("follow") != "1" && q.Get("follow") != "true" {
		out := wire.List(entries, wire.LogEntry)
		if out == nil {
			out = []client.LogEntry{}
		}
		writeJSON(w, http.StatusOK, map[string]any{"logs": out})
		return
	}
	g.streamLogs(w, r, entries, match)
}

// mergeLogs returns the newest limit logs, oldest first, of the stored
// ones and those the records carry (a stored log wins over its record's
// tail): short logs live in records only, and records of invocations
// served by other servers have no log in this server's store.
func mergeLogs(stored []model.LogEntry, recs []model.Invocation, limit int) []model.LogEntry {
	seen := make(map[string]bool, len(stored))
	for _, e := range stored {
		seen[e.RequestID] = true
	}
	out := stored
	for _, rec := range recs {
		if !seen[rec.ID] && rec.LogTail != "" { // "": queued, or running
			out = append(out, service.LogOfRecord(rec))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

func (g *Gateway) streamLogs(w http.ResponseWriter, r *http.Request, backlog []model.LogEntry, match func(model.LogEntry) bool) {
	sub := g.follow.subscribe()
	defer g.follow.unsubscribe(sub)
	seen := make(map[string]bool, len(backlog))
	for _, e := range backlog {
		seen[e.RequestID] = true
	}
	streamSSE(w, r, g, "log", wire.List(backlog, wire.LogEntry), sub, func(e model.LogEntry) (client.LogEntry, bool) {
		return wire.LogEntry(e), match(e) && !seen[e.RequestID]
	})
}

// streamSSE writes backlog, then what pick makes of each value from sub
// (when it keeps it), as server-sent events named event, with a
// keep-alive comment every keepAlive, until the client goes away.
func streamSSE[T, V any](w http.ResponseWriter, r *http.Request, g *Gateway, event string, backlog []V, sub <-chan T, pick func(T) (V, bool)) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, g.log, fmt.Errorf("streaming unsupported"))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(v V) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	}
	fmt.Fprint(w, ": nimbus "+event+"s\n\n")
	for _, v := range backlog {
		send(v)
	}
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
		case t := <-sub:
			if v, ok := pick(t); ok {
				send(v)
				flusher.Flush()
			}
		}
	}
}

// hub fans values out to followers (logs, events). A follower that
// cannot keep up loses values rather than slowing the publisher down.
type hub[T any] struct {
	mu   sync.Mutex
	subs map[chan T]struct{}
}

func newHub[T any]() *hub[T] { return &hub[T]{subs: map[chan T]struct{}{}} }

func (h *hub[T]) subscribe() chan T {
	ch := make(chan T, 256)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch
}

func (h *hub[T]) unsubscribe(ch chan T) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

func (h *hub[T]) publish(v T) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- v:
		default:
		}
	}
}
