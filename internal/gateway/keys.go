package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/fsm"
	"nimbus/internal/state"
	"nimbus/pkg/client"
)

// keyView is a key as the API shows it: never its secret or its hash.
type keyView struct {
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	Namespace string    `json:"namespace,omitempty"`
	Note      string    `json:"note,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	RateLimit float64   `json:"rate_limit,omitempty"`
	Key       string    `json:"key,omitempty"` // only in the answer that creates it
}

func viewOf(k state.Key) keyView {
	return keyView{ID: k.ID, Role: k.Role, Namespace: k.Namespace, Note: k.Note, CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RateLimit: k.RateLimit}
}

func (g *Gateway) listKeys(w http.ResponseWriter, r *http.Request) {
	out := []keyView{}
	for _, k := range g.cfg.Control.Store().Keys() {
		out = append(out, viewOf(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

// parseExpiry reads "30d", "12h" or "90m" (a Go duration, plus days).
func parseExpiry(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a duration such as 30d or 12h", s)
	}
	return d, nil
}

// createKey makes a key: {"role", "expires"?, "rate_limit"?, "note"?}.
// The answer holds the key itself, the only time it is shown.
func (g *Gateway) createKey(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Role      string  `json:"role"`
		Namespace string  `json:"namespace"`
		Expires   string  `json:"expires"`
		RateLimit float64 `json:"rate_limit"`
		Note      string  `json:"note"`
	}
	if err := decodeStrict(w, r, &body, 4<<10, "key request"); err != nil {
		writeError(w, g.log, err)
		return
	}
	if !slices.Contains(auth.Roles, body.Role) {
		writeError(w, g.log, badRequest(fmt.Sprintf("role %q is not one of %s", body.Role, strings.Join(auth.Roles, ", "))))
		return
	}
	if body.RateLimit < 0 {
		writeError(w, g.log, badRequest("rate_limit must be 0 (the server's default) or more requests per second"))
		return
	}
	switch {
	case body.Namespace != "" && (body.Role == auth.RoleAdmin || body.Role == auth.RoleWorker):
		writeError(w, g.log, badRequest(fmt.Sprintf("a %s key belongs to no namespace (admin keys act in every one, choosing with %s)", body.Role, client.HeaderNamespace)))
		return
	case body.Role == auth.RoleDeveloper || body.Role == auth.RoleViewer:
		body.Namespace = client.NamespaceOf(body.Namespace)
		if _, err := g.cfg.Control.Store().Namespace(body.Namespace); err != nil {
			writeError(w, g.log, err)
			return
		}
	}
	opts := auth.KeyOptions{Role: body.Role, Namespace: body.Namespace, Note: body.Note, RateLimit: body.RateLimit}
	if body.Expires != "" {
		d, err := parseExpiry(body.Expires)
		if err != nil {
			writeError(w, g.log, badRequest("expires: "+err.Error()))
			return
		}
		opts.ExpiresAt = time.Now().UTC().Add(d)
	}
	g.issueKey(w, r, opts, "key created")
}

// issueKey commits a new key (or join token) and answers 201 with it,
// the only time its secret is shown.
func (g *Gateway) issueKey(w http.ResponseWriter, r *http.Request, opts auth.KeyOptions, logMsg string) {
	token, key, err := auth.CreateKeyWith(r.Context(), g.cfg.Control, opts)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	v := viewOf(key)
	v.Key = token
	g.log.Info(logMsg, "key_id", key.ID, "role", key.Role, "by", callerKey(r.Context()).ID)
	writeJSON(w, http.StatusCreated, v)
}

// revokeKey deletes a key; every server refuses it once the deletion is
// applied there (a Raft command, so everywhere within a heartbeat).
func (g *Gateway) revokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == callerKey(r.Context()).ID {
		writeError(w, g.log, &apiError{http.StatusConflict, "Conflict", "a key cannot revoke itself: use another admin key"})
		return
	}
	if _, err := fsm.Apply(r.Context(), g.cfg.Control, fsm.DeleteKey{ID: id}); err != nil {
		writeError(w, g.log, err)
		return
	}
	g.log.Info("key revoked", "key_id", id, "by", callerKey(r.Context()).ID)
	writeJSON(w, http.StatusOK, map[string]string{"revoked": id})
}

// audit lists the newest audit entries (?limit=, default 100).
func (g *Gateway) audit(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			writeError(w, g.log, badRequest(fmt.Sprintf("limit=%q is not a positive number", s)))
			return
		}
		limit = n
	}
	writeJSON(w, http.StatusOK, map[string]any{"audit": g.cfg.Control.Store().Audit(limit)})
}
