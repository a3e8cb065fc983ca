package gateway

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/console"
	"nimbus/internal/model"
)

// uiLoginView is the sign-in page's view.
type uiLoginView struct {
	Next string // where to go after signing in
	Name string // the user name typed, kept after a failure
	Once string // a one-time link's token, offered as a button
}

func (g *Gateway) uiLoginPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	g.ui.Render(w, http.StatusOK, "login", &console.Page{Title: "Sign in",
		Data: uiLoginView{Next: safeNext(q.Get("next")), Once: q.Get("once")}}, "")
}

// uiLogin signs a browser in: with a user's name and password, with an
// API key (an admin who has no user yet), or with the one-time token
// that nimbus dev prints. It answers only a form posted from this
// origin's own pages (its Origin header), so that no other site can sign
// a browser in to an account of its choosing.
func (g *Gateway) uiLogin(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	view := uiLoginView{Next: safeNext(r.PostFormValue("next")), Name: r.PostFormValue("name")}
	fail := func(status int, msg string) {
		g.ui.Render(w, status, "login", &console.Page{Title: "Sign in", Error: msg, Data: view}, "")
	}
	if !sameOrigin(r) {
		fail(http.StatusForbidden, "This sign-in did not come from this console's own page.")
		return
	}
	if err := g.loginAllowed(w, r); err != nil {
		fail(http.StatusTooManyRequests, "Too many sign-ins from this address: wait a second and try again.")
		return
	}
	var (
		err   error
		token string
		sess  model.Session
		who   model.Key
	)
	switch {
	case r.PostFormValue("once") != "":
		var keyID string
		if g.cfg.ConsoleOnce != nil {
			keyID = g.cfg.ConsoleOnce(r.PostFormValue("once"))
		}
		key, kerr := g.cfg.Control.Store().Key(keyID)
		if keyID == "" || kerr != nil {
			fail(http.StatusUnauthorized, "This one-time link was used already or is not valid: sign in with the admin key (nimbus dev writes it to .nimbus/admin.token).")
			return
		}
		token, sess, err = auth.StartKeySession(r.Context(), g.cfg.Control, key, time.Now().UTC())
		who = key
	case r.PostFormValue("key") != "":
		key, kerr := auth.Check(g.cfg.Control.Store(), r.PostFormValue("key"))
		if kerr != nil {
			fail(http.StatusUnauthorized, "That API key is not valid: it may be mistyped, revoked or expired.")
			return
		}
		token, sess, err = auth.StartKeySession(r.Context(), g.cfg.Control, key, time.Now().UTC())
		who = key
	default:
		var user model.User
		token, sess, user, err = g.svc.Login(r.Context(), r.PostFormValue("name"), r.PostFormValue("password"))
		who = auth.Principal(user, sess)
	}
	if errors.Is(err, auth.ErrBadLogin) {
		fail(http.StatusUnauthorized, "Wrong user name or password (or a key that cannot open the console).")
		return
	}
	if err != nil {
		_, _, msg := explain(g.log, err)
		fail(statusOrServerError(err), msg)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: token, Path: "/", Expires: sess.ExpiresAt,
		HttpOnly: true, Secure: secureCookie(r), SameSite: http.SameSiteStrictMode})
	g.svc.AddAudit(model.AuditEntry{Time: time.Now().UTC(), KeyID: who.ID, Role: who.Role,
		Action: "POST /ui/login", Status: http.StatusSeeOther, Server: g.cfg.APIAddr})
	g.log.Info("console sign-in", "as", who.ID)
	http.Redirect(w, r, view.Next, http.StatusSeeOther)
}

// statusOrServerError is err's status as the API would answer it.
func statusOrServerError(err error) int {
	s, _ := statusOf(err)
	return s
}

// uiLogout ends the session and goes to the sign-in page.
func (g *Gateway) uiLogout(w http.ResponseWriter, r *http.Request, p *console.Page) {
	if cs := callerSessionOf(r.Context()); cs != nil {
		if err := g.svc.Logout(r.Context(), cs.session.ID); err != nil {
			g.uiFail(w, p, "error", err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: secureCookie(r), SameSite: http.SameSiteStrictMode})
	w.Header().Set("HX-Redirect", "/ui/login")
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// safeNext keeps a post-sign-in destination within the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.Contains(next, `\`) || strings.HasPrefix(next, "/ui/login") {
		return "/ui/"
	}
	return next
}

// sameOrigin reports whether a form post came from this server's own
// origin: its Origin header (or, without one, its Referer) names the
// host the request was sent to.
func sameOrigin(r *http.Request) bool {
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" {
		return false
	}
	u, err := url.Parse(src)
	return err == nil && u.Host == r.Host
}
