package gateway

import (
	"net/http"
	"time"
)

// scaling answers the scaling signal: the workers the cluster's load
// needs, as this server sees it (service.DesiredWorkers).
func (g *Gateway) scaling(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, g.svc.Scaling(time.Now()))
}
