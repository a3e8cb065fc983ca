package gateway

import (
	"net/http"

	"nimbus/internal/model"
	"nimbus/internal/service"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

func (g *Gateway) listKeys(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, 0, maxListLimit)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	out := []client.Key{}
	for _, k := range firstN(g.svc.Keys(), limit) {
		out = append(out, wire.Key(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

// createKey makes a key: {"role", "namespace"?, "expires"?,
// "rate_limit"?, "note"?}. The answer holds the key itself, the only time
// it is shown.
func (g *Gateway) createKey(w http.ResponseWriter, r *http.Request) {
	var body service.KeyRequest
	if err := decodeStrict(w, r, &body, 4<<10, "key request"); err != nil {
		writeError(w, g.log, err)
		return
	}
	token, key, err := g.svc.CreateKey(r.Context(), body)
	g.answerKey(w, r, token, key, err, "key created")
}

// answerKey answers 201 with a new key (or join token) and its secret,
// the only time it is shown.
func (g *Gateway) answerKey(w http.ResponseWriter, r *http.Request, token string, key model.Key, err error, logMsg string) {
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	v := wire.Key(key)
	v.Secret = token
	g.log.Info(logMsg, "key_id", key.ID, "role", key.Role, "by", callerKey(r.Context()).ID)
	writeJSON(w, http.StatusCreated, v)
}

// revokeKey deletes a key; every server refuses it once the deletion is
// applied there (a Raft command, so everywhere within a heartbeat).
func (g *Gateway) revokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := g.svc.RevokeKey(r.Context(), callerKey(r.Context()).ID, id); err != nil {
		writeError(w, g.log, err)
		return
	}
	g.log.Info("key revoked", "key_id", id, "by", callerKey(r.Context()).ID)
	writeJSON(w, http.StatusOK, map[string]string{"revoked": id})
}

// audit lists the newest audit entries (?limit=, default 100).
func (g *Gateway) audit(w http.ResponseWriter, r *http.Request) {
	limit, err := queryLimit(r, 100, maxListLimit)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"audit": wire.List(g.svc.Audit(limit), wire.AuditEntry)})
}
