package gateway

import (
	"net/http"

	"nimbus/internal/wire"
)

// listRuntimes answers the Python runtimes the healthy workers offer,
// newest first, with the workers that offer each.
func (g *Gateway) listRuntimes(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"runtimes": wire.List(g.svc.Runtimes(), wire.RuntimeOffer)})
}
