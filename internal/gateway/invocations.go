package gateway

import (
	"fmt"
	"net/http"
	"sort"

	"nimbus/internal/model"
	"nimbus/internal/state"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

func (g *Gateway) listInvocations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, err := queryLimit(r, 50, maxListLimit)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	status := q.Get("status")
	switch status {
	case "", client.StatusSuccess, client.StatusFailed:
	default:
		writeError(w, g.log, badRequest(fmt.Sprintf("status=%q is not one of success, failed", status)))
		return
	}
	recs := g.records(state.RecordQuery{Namespace: callerNS(r.Context()), Function: q.Get("function"), Status: status, Limit: limit})
	out := wire.List(recs, wire.Invocation)
	if out == nil {
		out = []client.Invocation{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"invocations": out})
}

func (g *Gateway) getInvocation(w http.ResponseWriter, r *http.Request) {
	rec, err := g.record(r.PathValue("id"))
	if err == nil && rec.Namespace != callerNS(r.Context()) {
		err = notFound("invocation %q", r.PathValue("id")) // another namespace's: as if absent
	}
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Invocation(rec))
}

// ownRecord reports whether invocation id exists in namespace ns.
func (g *Gateway) ownRecord(ns, id string) bool {
	rec, err := g.record(id)
	return err == nil && rec.Namespace == ns
}

// records is the store's Records(q) with this server's uncommitted
// records laid over it (recorder.pending): an invocation answered here is
// listed as soon as it has answered, not when its batch is committed, up
// to a batch interval later. The pending version of a record replaces a
// committed one (an async invocation's status moves on).
func (g *Gateway) records(q state.RecordQuery) []model.Invocation {
	// Pending first: a record committed meanwhile is then in one of the
	// two, if not both.
	pend := g.svc.PendingRecords()
	committed := g.cfg.Control.Store().Records(q)
	if pend == nil {
		return committed
	}
	out := make([]model.Invocation, 0, len(committed)+len(pend))
	for _, c := range committed {
		if _, newer := pend[c.ID]; !newer {
			out = append(out, c)
		}
	}
	for _, p := range pend {
		if (q.Function == "" || p.Function == q.Function) && q.Matches(&p) {
			out = append(out, p)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.After(out[j].Start) })
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// record is invocation id's record: this server's uncommitted version if
// it has one (see records), else the store's.
func (g *Gateway) record(id string) (model.Invocation, error) {
	if p, ok := g.svc.PendingRecord(id); ok {
		return p, nil
	}
	return g.cfg.Control.Store().Record(id)
}

// notFound is the 404 of an object that does not exist, or that belongs
// to another namespace: the two answer alike, so a key cannot learn what
// other namespaces hold.
func notFound(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, state.ErrNotFound)...)
}
