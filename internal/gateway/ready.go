package gateway

import (
	"net/http"

	"nimbus/internal/controlplane"
)

// leaderKnower is a control plane that knows the cluster's leader
// (controlplane.Node). One that does not say is taken to have one.
type leaderKnower interface {
	LeaderID() string
}

// readiness is the answer of GET /readyz.
type readiness struct {
	Status  string   `json:"status"`            // "ready" or "not ready"
	Reasons []string `json:"reasons,omitempty"` // why not, when not
}

// ready answers GET /readyz: 200 when this server can serve the API (a
// member of the cluster, caught up with it, which has a leader, and a
// writable data directory), else 503 with the reasons. /healthz stays a
// liveness check (200 while the process serves), which nodes also read
// to find a server's internal address.
func (g *Gateway) ready(w http.ResponseWriter, r *http.Request) {
	reasons := g.notReady()
	if len(reasons) == 0 {
		writeJSON(w, http.StatusOK, readiness{Status: "ready"})
		return
	}
	w.Header().Set("Retry-After", "1")
	writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "not ready", Reasons: reasons})
}

// notReady lists why this server is not ready; none when it is. The
// reasons name no host paths: /readyz needs no key.
func (g *Gateway) notReady() []string {
	var reasons []string
	if why := g.notMember(); why != "" {
		reasons = append(reasons, "not a member of the cluster: "+why)
	}
	if l, ok := g.cfg.Control.(leaderKnower); ok && l.LeaderID() == "" {
		reasons = append(reasons, "no leader: this server knows of no leader of the cluster (an election is under way, or too few servers are up for a quorum)")
	}
	if c, ok := g.cfg.Control.(catchingUp); ok && !c.CaughtUp() {
		reasons = append(reasons, controlplane.ErrCatchingUp.Error())
	}
	if err := g.cfg.Disk.Check(); err != nil {
		reasons = append(reasons, err.Error())
	}
	return reasons
}
