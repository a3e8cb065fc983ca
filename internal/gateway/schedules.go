package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/scheduler"
	"nimbus/pkg/client"
)

func (g *Gateway) withNextFire(sc client.Schedule) client.Schedule {
	if e, err := scheduler.ParseIn(sc.Expression, sc.Timezone); err == nil && !sc.Disabled {
		if next, ok := e.Next(time.Now()); ok {
			sc.NextFire = next.UTC()
		}
	}
	return sc
}

func (g *Gateway) listSchedules(w http.ResponseWriter, r *http.Request) {
	out := []client.Schedule{}
	for _, sc := range g.cfg.Control.Store().Schedules(callerNS(r.Context())) {
		if fn := r.URL.Query().Get("function"); fn == "" || sc.Function == fn {
			out = append(out, g.withNextFire(sc))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": out})
}

func (g *Gateway) getSchedule(w http.ResponseWriter, r *http.Request) {
	sc, err := g.cfg.Control.Store().Schedule(client.QualifiedName(callerNS(r.Context()), r.PathValue("name")))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, g.withNextFire(sc))
}

// putSchedule creates or replaces a schedule after checking its name,
// function, expression, time zone, policy and event.
func (g *Gateway) putSchedule(w http.ResponseWriter, r *http.Request) {
	var sc client.Schedule
	if err := decodeStrict(w, r, &sc, 1<<20, "schedule"); err != nil {
		writeError(w, g.log, err)
		return
	}
	name := r.PathValue("name")
	if err := nameFromPath("schedule", &sc.Name, name, dnsLabelRe, dnsLabelRule); err != nil {
		writeError(w, g.log, err)
		return
	}
	switch {
	case sc.Function == "":
		writeError(w, g.log, badRequest("a schedule needs a function"))
		return
	case sc.Policy != "" && sc.Policy != "allow" && sc.Policy != "forbid":
		writeError(w, g.log, badRequest(fmt.Sprintf("policy %q is not allow or forbid", sc.Policy)))
		return
	case len(sc.Event) > 0 && !json.Valid(sc.Event):
		writeError(w, g.log, badRequest("the schedule's event is not valid JSON"))
		return
	}
	sc.Namespace = callerNS(r.Context())
	if _, err := g.cfg.Control.Store().Function(client.QualifiedName(sc.Namespace, sc.Function)); err != nil {
		writeError(w, g.log, err)
		return
	}
	if _, err := scheduler.ParseIn(sc.Expression, sc.Timezone); err != nil {
		writeError(w, g.log, badRequest(err.Error()))
		return
	}
	sc.CreatedAt = time.Now().UTC()
	sc.LastSlot, sc.LastRequest, sc.Fires, sc.Missed, sc.NextFire = time.Time{}, "", 0, 0, time.Time{}
	res, err := fsm.Apply(r.Context(), g.cfg.Control, fsm.PutSchedule{Schedule: sc})
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	stored, _ := g.cfg.Control.Store().Schedule(client.QualifiedName(sc.Namespace, name))
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	writeJSON(w, status, g.withNextFire(stored))
}

func (g *Gateway) deleteSchedule(w http.ResponseWriter, r *http.Request) {
	name, ns := r.PathValue("name"), callerNS(r.Context())
	sc, err := g.cfg.Control.Store().Schedule(client.QualifiedName(ns, name))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	if _, err := fsm.Apply(r.Context(), g.cfg.Control, fsm.DeleteSchedule{Namespace: ns, Name: name}); err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, sc)
}

func (g *Gateway) enableSchedule(enabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name, ns := r.PathValue("name"), callerNS(r.Context())
		if _, err := fsm.Apply(r.Context(), g.cfg.Control, fsm.EnableSchedule{Namespace: ns, Name: name, Enabled: enabled, Now: time.Now().UTC()}); err != nil {
			writeError(w, g.log, err)
			return
		}
		sc, err := g.cfg.Control.Store().Schedule(client.QualifiedName(ns, name))
		if err != nil {
			writeError(w, g.log, err)
			return
		}
		writeJSON(w, http.StatusOK, g.withNextFire(sc))
	}
}
