package gateway

import (
	"context"
	"encoding/json"
	"net/http"

	"nimbus/pkg/client"
)

// Membership changes the cluster.
type Membership interface {
	JoinServer(ctx context.Context, addr string, voter bool) (id string, err error)
	RemoveServer(ctx context.Context, id string) error
	DrainWorker(ctx context.Context, id string) error
	UndrainWorker(ctx context.Context, id string) error
}

var errNotACluster = &apiError{http.StatusBadRequest, "BadRequest", "this is a single-node nimbus dev: there is no cluster membership to change"}

func (g *Gateway) cluster(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, client.Cluster{Servers: g.clusterServers(), Workers: g.cfg.Placer.Workers(), NotMember: g.notMember()})
}

// clusterServers is the control plane's members as this server sees
// them, with what each says of itself where PeerView asks.
func (g *Gateway) clusterServers() []client.Server {
	servers := g.cfg.Control.Servers(func(id string) string {
		if info, ok := g.cfg.Control.Store().ServerInfo(id); ok {
			return info.APIAddr
		}
		return g.cfg.APIAddr
	})
	if g.cfg.PeerView != nil {
		servers = g.cfg.PeerView(servers)
	}
	return servers
}

// joinServer adds the server at {"address": "HOST:PORT"} (its API
// address) to the cluster, as a voter unless "nonvoter" is true.
func (g *Gateway) joinServer(w http.ResponseWriter, r *http.Request) {
	if g.cfg.Membership == nil {
		writeError(w, g.log, errNotACluster)
		return
	}
	var body struct {
		Address  string `json:"address"`
		Nonvoter bool   `json:"nonvoter"`
	}
	const want = `send {"address": "HOST:PORT"}, the API address of the server to add`
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&body); err != nil {
		writeError(w, g.log, bodyError(err, want))
		return
	}
	if body.Address == "" {
		writeError(w, g.log, badRequest(want))
		return
	}
	id, err := g.cfg.Membership.JoinServer(r.Context(), body.Address, !body.Nonvoter)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "address": body.Address})
}

func (g *Gateway) removeServer(w http.ResponseWriter, r *http.Request) {
	if g.cfg.Membership == nil {
		writeError(w, g.log, errNotACluster)
		return
	}
	if err := g.cfg.Membership.RemoveServer(r.Context(), r.PathValue("id")); err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"removed": r.PathValue("id")})
}

func (g *Gateway) drainWorker(w http.ResponseWriter, r *http.Request) {
	g.changeDrain(w, r, false)
}

// undrainWorker makes a drained worker take new invocations again.
func (g *Gateway) undrainWorker(w http.ResponseWriter, r *http.Request) {
	g.changeDrain(w, r, true)
}

func (g *Gateway) changeDrain(w http.ResponseWriter, r *http.Request, undrain bool) {
	if g.cfg.Membership == nil {
		writeError(w, g.log, errNotACluster)
		return
	}
	id := r.PathValue("id")
	change, answer := g.cfg.Membership.DrainWorker, "draining"
	if undrain {
		change, answer = g.cfg.Membership.UndrainWorker, "ready"
	}
	if err := change(r.Context(), id); err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{answer: id})
}

// createJoinToken makes a join token: {"role": "worker"|"server", "ttl":
// "1h", "note"}. A token is a key of role join-worker or join-server that
// opens no route; a node presents it to a server's internal port to get
// its certificate signed (internal/pki). Only its hash is stored. The
// answer holds the token, the only time it is shown.
func (g *Gateway) createJoinToken(w http.ResponseWriter, r *http.Request) {
	if g.cfg.Membership == nil {
		writeError(w, g.log, errNotACluster)
		return
	}
	var body struct {
		Role string `json:"role"`
		TTL  string `json:"ttl"`
		Note string `json:"note"`
	}
	if err := decodeStrict(w, r, &body, 4<<10, "token request"); err != nil {
		writeError(w, g.log, err)
		return
	}
	token, key, err := g.svc.CreateJoinToken(r.Context(), body.Role, body.TTL, body.Note)
	g.answerKey(w, r, token, key, err, "join token created")
}
