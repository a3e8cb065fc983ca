package gateway

import (
	"net/http"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// listBudgets answers the caller's namespace's budget (with all=1, for
// admins, every namespace's) with the month's spend and forecast.
func (g *Gateway) listBudgets(w http.ResponseWriter, r *http.Request) {
	ns, err := usageNamespace(r)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	list, err := g.svc.Budgets(ns, time.Now().UTC())
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"budgets": wire.List(list, wire.Budget)})
}

// putBudget sets a namespace's budget (the whole of it).
func (g *Gateway) putBudget(w http.ResponseWriter, r *http.Request) {
	var body client.BudgetRequest
	if err := decodeStrict(w, r, &body, 8<<10, "budget"); err != nil {
		writeError(w, g.log, err)
		return
	}
	b := model.Budget{Namespace: r.PathValue("name"), Monthly: body.Monthly, Notify: body.Notify, HardLimit: body.HardLimit}
	st, err := g.svc.PutBudget(r.Context(), b, time.Now().UTC())
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Budget(st))
}

// deleteBudget removes a namespace's budget.
func (g *Gateway) deleteBudget(w http.ResponseWriter, r *http.Request) {
	if err := g.svc.DeleteBudget(r.Context(), r.PathValue("name")); err != nil {
		writeError(w, g.log, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
