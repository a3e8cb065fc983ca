package gateway

import (
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/fsm"
	"nimbus/internal/state"
	"nimbus/pkg/client"
)

// Logins are limited per client address: bursts of loginBurst, then
// loginRate a second (each also costs an argon2id hash).
const (
	loginRate  = 1.0
	loginBurst = 10.0
)

func userView(u state.User) client.User {
	return client.User{Name: u.Name, Role: u.Role, Namespace: u.Namespace, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// login checks {name, password} and starts a session: the token goes in
// a Secure, HttpOnly, SameSite=Strict cookie, the answer carries the
// session's CSRF token. A wrong name and a wrong password answer alike.
func (g *Gateway) login(w http.ResponseWriter, r *http.Request) {
	// Only JSON: a cross-site HTML form cannot send it, so no other site
	// can log a browser in to an account of its choosing.
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "application/json" {
		writeError(w, g.log, &apiError{http.StatusUnsupportedMediaType, "UnsupportedMediaType", "a login is JSON: Content-Type: application/json"})
		return
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if _, ok := g.limits.takeID("login:"+host, loginRate, loginBurst); !ok {
		w.Header().Set("Retry-After", "1")
		writeError(w, g.log, &apiError{http.StatusTooManyRequests, "TooManyRequests", "too many logins from this address: retry in a second"})
		return
	}
	var body struct {
		Name     string `json:"name"`
		Password string `json:"password"`
	}
	if err := decodeStrict(w, r, &body, 8<<10, "login request"); err != nil {
		writeError(w, g.log, err)
		return
	}
	store := g.cfg.Control.Store()
	user, err := auth.Login(store, body.Name, body.Password)
	if err != nil {
		writeError(w, g.log, &apiError{http.StatusUnauthorized, "Unauthorized", err.Error()})
		return
	}
	token, sess, err := auth.StartSession(r.Context(), g.cfg.Control, user.Name, time.Now().UTC())
	if errors.Is(err, state.ErrNotFound) { // the user was removed meanwhile
		err = &apiError{http.StatusUnauthorized, "Unauthorized", auth.ErrBadLogin.Error()}
	}
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", MaxAge: int(auth.SessionTTL.Seconds()),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	g.recorder.addAudit(client.AuditEntry{Time: time.Now().UTC(), KeyID: auth.UserPrefix + user.Name, Role: user.Role,
		Action: r.Method + " " + r.URL.Path, Status: http.StatusOK, Server: g.cfg.APIAddr})
	g.log.Info("user logged in", "user", user.Name)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, client.Session{User: user.Name, Role: user.Role, Namespace: user.Namespace,
		CSRFToken: auth.CSRFToken(token), ExpiresAt: sess.ExpiresAt})
}

// logout ends the request's session and clears its cookie.
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request) {
	cs := callerSessionOf(r.Context())
	if cs == nil {
		writeError(w, g.log, badRequest("logout ends a cookie session and this request came with an API key (revoke keys with DELETE /v1/keys/{id})"))
		return
	}
	if _, err := fsm.Apply(r.Context(), g.cfg.Control, fsm.DeleteSession{ID: cs.session.ID}); err != nil {
		writeError(w, g.log, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, map[string]string{"logged_out": cs.user.Name})
}

// session says who the caller is: the user of a session (with its CSRF
// token, for a page that lost it), or the key.
func (g *Gateway) session(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if cs := callerSessionOf(r.Context()); cs != nil {
		writeJSON(w, http.StatusOK, client.Session{User: cs.user.Name, Role: cs.user.Role, Namespace: cs.user.Namespace,
			CSRFToken: auth.CSRFToken(cs.token), ExpiresAt: cs.session.ExpiresAt})
		return
	}
	k := callerKey(r.Context())
	writeJSON(w, http.StatusOK, client.Session{KeyID: k.ID, Role: k.Role, Namespace: k.Namespace, ExpiresAt: k.ExpiresAt})
}

func (g *Gateway) listUsers(w http.ResponseWriter, r *http.Request) {
	out := []client.User{}
	for _, u := range g.cfg.Control.Store().Users() {
		out = append(out, userView(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

// createUser makes a user: {name, role, namespace?, password}.
func (g *Gateway) createUser(w http.ResponseWriter, r *http.Request) {
	var body client.UserRequest
	if err := decodeStrict(w, r, &body, 8<<10, "user request"); err != nil {
		writeError(w, g.log, err)
		return
	}
	if err := auth.ValidateUser(body.Name, body.Role); err != nil {
		writeError(w, g.log, badRequest(err.Error()))
		return
	}
	switch {
	case body.Namespace != "" && body.Role == auth.RoleAdmin:
		writeError(w, g.log, badRequest("an admin user belongs to no namespace: admins act in every one"))
		return
	case body.Role != auth.RoleAdmin:
		body.Namespace = client.NamespaceOf(body.Namespace)
		if _, err := g.cfg.Control.Store().Namespace(body.Namespace); err != nil {
			writeError(w, g.log, err)
			return
		}
	}
	if err := auth.ValidatePassword(body.Password); err != nil {
		writeError(w, g.log, badRequest(err.Error()))
		return
	}
	now := time.Now().UTC()
	u := state.User{Name: body.Name, Role: body.Role, Namespace: body.Namespace,
		PasswordHash: auth.HashPassword(body.Password), CreatedAt: now}
	res, err := fsm.Apply(r.Context(), g.cfg.Control, fsm.PutUser{User: u, Create: true})
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	if res.Conflict {
		writeError(w, g.log, &apiError{http.StatusConflict, "Conflict", fmt.Sprintf("user %q exists already", body.Name)})
		return
	}
	g.log.Info("user created", "user", u.Name, "role", u.Role, "by", callerKey(r.Context()).ID)
	writeJSON(w, http.StatusCreated, userView(u))
}

// deleteUser removes a user; their sessions end with them.
func (g *Gateway) deleteUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if callerKey(r.Context()).ID == auth.UserPrefix+name {
		writeError(w, g.log, &apiError{http.StatusConflict, "Conflict", "a user cannot delete themself: ask another admin"})
		return
	}
	if _, err := fsm.Apply(r.Context(), g.cfg.Control, fsm.DeleteUser{Name: name}); err != nil {
		writeError(w, g.log, err)
		return
	}
	g.log.Info("user deleted", "user", name, "by", callerKey(r.Context()).ID)
	writeJSON(w, http.StatusOK, map[string]string{"deleted": name})
}

// setPassword changes a user's password: {password, current_password?}.
// An admin may change anyone's; a user their own, giving the current one
// too. The user's other sessions end.
func (g *Gateway) setPassword(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	caller := callerKey(r.Context())
	self := caller.ID == auth.UserPrefix+name
	if caller.Role != auth.RoleAdmin && !self {
		writeError(w, g.log, &apiError{http.StatusForbidden, "Forbidden", "only an admin or the user themself may change a password"})
		return
	}
	var body struct {
		Password        string `json:"password"`
		CurrentPassword string `json:"current_password"`
	}
	if err := decodeStrict(w, r, &body, 8<<10, "password request"); err != nil {
		writeError(w, g.log, err)
		return
	}
	if err := auth.ValidatePassword(body.Password); err != nil {
		writeError(w, g.log, badRequest(err.Error()))
		return
	}
	store := g.cfg.Control.Store()
	u, err := store.User(name)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	if caller.Role != auth.RoleAdmin {
		if _, err := auth.Login(store, name, body.CurrentPassword); err != nil {
			writeError(w, g.log, &apiError{http.StatusForbidden, "Forbidden", "current_password is missing or wrong"})
			return
		}
	}
	u.PasswordHash = auth.HashPassword(body.Password)
	u.UpdatedAt = time.Now().UTC()
	cmd := fsm.PutUser{User: u}
	if cs := callerSessionOf(r.Context()); cs != nil && self {
		cmd.Keep = cs.session.ID
	}
	if _, err := fsm.Apply(r.Context(), g.cfg.Control, cmd); err != nil {
		writeError(w, g.log, err)
		return
	}
	g.log.Info("password changed", "user", name, "by", caller.ID)
	writeJSON(w, http.StatusOK, map[string]string{"user": name})
}
