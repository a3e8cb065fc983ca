package gateway

import (
	"fmt"
	"net/http"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/service"
	"nimbus/internal/state"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// usageNamespace is the namespace a usage request reads: the caller's,
// or every one with ?all=1, which only an admin may ask.
func usageNamespace(r *http.Request) (string, error) {
	if r.URL.Query().Get("all") == "" {
		return callerNS(r.Context()), nil
	}
	if key := callerKey(r.Context()); key.Role != auth.RoleAdmin {
		return "", &apiError{http.StatusForbidden, "Forbidden",
			fmt.Sprintf("key %s may read the usage of its own namespace only; every namespace's is for admins", key.ID)}
	}
	return state.AllNamespaces, nil
}

// timeParam parses a query parameter that is an RFC 3339 time or a
// date (YYYY-MM-DD, midnight UTC), or gives the zero time when absent.
func timeParam(v, name string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, badRequest(fmt.Sprintf("%s %q is not a time such as 2026-12-01 or 2026-12-01T15:04:05Z", name, v))
}

// getUsage answers what the selection used: ?function=, since and until
// (default: the current month to now), by (day, hour, function,
// namespace; none: one total) and all=1 (admins: every namespace).
func (g *Gateway) getUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ns, err := usageNamespace(r)
	var uq service.UsageQuery
	if err == nil {
		uq.From, err = timeParam(q.Get("since"), "since")
	}
	if err == nil {
		uq.To, err = timeParam(q.Get("until"), "until")
	}
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	uq.Namespace, uq.Function, uq.By = ns, q.Get("function"), q.Get("by")
	uq, rows, err := g.svc.Usage(uq, time.Now().UTC())
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, client.Usage{Since: uq.From, Until: uq.To, By: uq.By, Rows: wire.List(rows, wire.UsageRow)})
}

// getCost answers what a month costs and will cost: ?month=YYYY-MM (none:
// the current one) and all=1 (admins: every namespace).
func (g *Gateway) getCost(w http.ResponseWriter, r *http.Request) {
	ns, err := usageNamespace(r)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	rep, err := g.svc.Cost(ns, r.URL.Query().Get("month"), time.Now().UTC())
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.CostReport(rep))
}
