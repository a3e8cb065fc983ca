package gateway

import (
	"net/http"

	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// listSchedules answers a page of schedules, as listFunctions does.
func (g *Gateway) listSchedules(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, defaultListPage, maxListLimit)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	q := r.URL.Query()
	page, more := g.svc.SchedulesAfter(callerNS(r.Context()), q.Get("function"), q.Get("after"), limit)
	out := map[string]any{"schedules": wire.List(page, wire.Schedule)}
	if more {
		out["next"] = page[len(page)-1].Name
	}
	writeJSON(w, http.StatusOK, out)
}

func (g *Gateway) getSchedule(w http.ResponseWriter, r *http.Request) {
	sc, err := g.svc.Schedule(callerNS(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Schedule(sc))
}

// putSchedule creates or replaces a schedule (see service.PutSchedule).
func (g *Gateway) putSchedule(w http.ResponseWriter, r *http.Request) {
	var sc client.Schedule
	if err := decodeStrict(w, r, &sc, 1<<20, "schedule"); err != nil {
		writeError(w, g.log, err)
		return
	}
	if err := nameFromPath("schedule", &sc.Name, r.PathValue("name"), dnsLabelRe, dnsLabelRule); err != nil {
		writeError(w, g.log, err)
		return
	}
	stored, created, err := g.svc.PutSchedule(r.Context(), callerNS(r.Context()), wire.ModelSchedule(sc))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writePut(w, created, wire.Schedule(stored))
}

func (g *Gateway) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	sc, err := g.svc.DeleteSchedule(r.Context(), callerNS(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Schedule(sc))
}

func (g *Gateway) enableSchedule(enabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sc, err := g.svc.EnableSchedule(r.Context(), callerNS(r.Context()), r.PathValue("name"), enabled)
		if err != nil {
			writeError(w, g.log, err)
			return
		}
		writeJSON(w, http.StatusOK, wire.Schedule(sc))
	}
}
