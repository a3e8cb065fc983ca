package gateway

import (
	"fmt"
	"net/http"
	"strconv"

	"nimbus/internal/state"
	"nimbus/pkg/client"
)

func (g *Gateway) listInvocations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 50
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 || n > 10000 {
			writeError(w, g.log, badRequest(fmt.Sprintf("limit=%q is not a number between 1 and 10000", s)))
			return
		}
		limit = n
	}
	status := q.Get("status")
	switch status {
	case "", client.StatusSuccess, client.StatusFailed:
	default:
		writeError(w, g.log, badRequest(fmt.Sprintf("status=%q is not one of success, failed", status)))
		return
	}
	recs := g.cfg.Control.Store().Records(state.RecordQuery{Namespace: callerNS(r.Context()), Function: q.Get("function"), Status: status, Limit: limit})
	if recs == nil {
		recs = []client.Invocation{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"invocations": recs})
}

func (g *Gateway) getInvocation(w http.ResponseWriter, r *http.Request) {
	rec, err := g.cfg.Control.Store().Record(r.PathValue("id"))
	if err == nil && rec.Namespace != callerNS(r.Context()) {
		err = notFound("invocation %q", r.PathValue("id")) // another namespace's: as if absent
	}
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// ownRecord reports whether invocation id exists in namespace ns.
func (g *Gateway) ownRecord(ns, id string) bool {
	rec, err := g.cfg.Control.Store().Record(id)
	return err == nil && rec.Namespace == ns
}

// notFound is the 404 of an object that does not exist, or that belongs
// to another namespace: the two answer alike, so a key cannot learn what
// other namespaces hold.
func notFound(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, state.ErrNotFound)...)
}
