package gateway

import (
	"net/http"

	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// getPrices answers the prices that apply to the caller's namespace (with
// ?cluster=1, the cluster's table) and where they came from.
func (g *Gateway) getPrices(w http.ResponseWriter, r *http.Request) {
	ns := callerNS(r.Context())
	if r.URL.Query().Get("cluster") != "" {
		ns = ""
	}
	writeJSON(w, http.StatusOK, g.prices(ns))
}

func (g *Gateway) prices(ns string) client.Prices {
	p, from := g.svc.Prices(ns)
	return client.Prices{Namespace: ns, Source: from, PriceTable: wire.PriceTable(p)}
}

// putPrices sets the cluster's price table (PUT /v1/prices) or a
// namespace's own (PUT /v1/namespaces/{name}/prices): the whole table.
func (g *Gateway) putPrices(w http.ResponseWriter, r *http.Request) {
	var body client.PriceTable
	if err := decodeStrict(w, r, &body, 8<<10, "price table"); err != nil {
		writeError(w, g.log, err)
		return
	}
	ns := r.PathValue("name")
	if err := g.svc.SetPrices(r.Context(), ns, wire.ModelPriceTable(body)); err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, g.prices(ns))
}

// deletePrices removes a namespace's own prices, or the cluster's table
// (back to the default).
func (g *Gateway) deletePrices(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("name")
	if err := g.svc.ResetPrices(r.Context(), ns); err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, g.prices(ns))
}
