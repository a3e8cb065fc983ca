package gateway

import (
	"errors"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/model"
	"nimbus/internal/service"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// Logins are limited per client address: bursts of loginBurst, then
// loginRate a second (each also costs an argon2id hash).
const (
	loginRate  = 1.0
	loginBurst = 10.0
)

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
	if err := g.loginAllowed(w, r); err != nil {
		writeError(w, g.log, err)
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
	token, sess, user, err := g.svc.Login(r.Context(), body.Name, body.Password)
	if errors.Is(err, auth.ErrBadLogin) {
		err = &apiError{http.StatusUnauthorized, "Unauthorized", err.Error()}
	}
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", MaxAge: int(auth.SessionTTL.Seconds()),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	g.svc.AddAudit(model.AuditEntry{Time: time.Now().UTC(), KeyID: auth.UserPrefix + user.Name, Role: user.Role,
		Action: r.Method + " " + r.URL.Path, Status: http.StatusOK, Server: g.cfg.APIAddr})
	g.log.Info("user logged in", "user", user.Name)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, client.Session{User: user.Name, Role: user.Role, Namespace: user.Namespace,
		CSRFToken: auth.CSRFToken(token), ExpiresAt: sess.ExpiresAt})
}

// loginAllowed takes a login from r's client address out of its
// budget: a 429 error (with Retry-After) when there is none left.
func (g *Gateway) loginAllowed(w http.ResponseWriter, r *http.Request) error {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if _, ok := g.limits.takeID("login:"+host, loginRate, loginBurst); !ok {
		w.Header().Set("Retry-After", "1")
		return &apiError{http.StatusTooManyRequests, "TooManyRequests", "too many logins from this address: retry in a second"}
	}
	return nil
}

// logout ends the request's session and clears its cookie.
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request) {
	cs := callerSessionOf(r.Context())
	if cs == nil {
		writeError(w, g.log, badRequest("logout ends a cookie session and this request came with an API key (revoke keys with DELETE /v1/keys/{id})"))
		return
	}
	if err := g.svc.Logout(r.Context(), cs.session.ID); err != nil {
		writeError(w, g.log, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	writeJSON(w, http.StatusOK, map[string]string{"logged_out": strings.TrimPrefix(cs.as.ID, auth.UserPrefix)})
}

// session says who the caller is: the user of a session (with its CSRF
// token, for a page that lost it), or the key.
func (g *Gateway) session(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if cs := callerSessionOf(r.Context()); cs != nil {
		writeJSON(w, http.StatusOK, client.Session{User: strings.TrimPrefix(cs.as.ID, auth.UserPrefix), KeyID: cs.session.Key, Role: cs.as.Role, Namespace: cs.as.Namespace,
			CSRFToken: auth.CSRFToken(cs.token), ExpiresAt: cs.session.ExpiresAt})
		return
	}
	k := callerKey(r.Context())
	writeJSON(w, http.StatusOK, client.Session{KeyID: k.ID, Role: k.Role, Namespace: k.Namespace, ExpiresAt: k.ExpiresAt})
}

func (g *Gateway) listUsers(w http.ResponseWriter, r *http.Request) {
	out := []client.User{}
	for _, u := range g.svc.Users() {
		out = append(out, wire.User(u))
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
	u, err := g.svc.CreateUser(r.Context(), service.UserRequest(body))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	g.log.Info("user created", "user", u.Name, "role", u.Role, "by", callerKey(r.Context()).ID)
	writeJSON(w, http.StatusCreated, wire.User(u))
}

// deleteUser removes a user; their sessions end with them.
func (g *Gateway) deleteUser(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := g.svc.DeleteUser(r.Context(), callerKey(r.Context()).ID, name); err != nil {
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
	caller := service.Caller{Key: callerKey(r.Context())}
	if cs := callerSessionOf(r.Context()); cs != nil {
		caller.SessionID = cs.session.ID
	}
	var body struct {
		Password        string `json:"password"`
		CurrentPassword string `json:"current_password"`
	}
	if err := decodeStrict(w, r, &body, 8<<10, "password request"); err != nil {
		writeError(w, g.log, err)
		return
	}
	if err := g.svc.SetPassword(r.Context(), caller, name, body.Password, body.CurrentPassword); err != nil {
		writeError(w, g.log, err)
		return
	}
	g.log.Info("password changed", "user", name, "by", caller.Key.ID)
	writeJSON(w, http.StatusOK, map[string]string{"user": name})
}
