package gateway

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/console"
	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// The web console (docs/spec.md §12): pages under /ui/, rendered by
// internal/console. Its handlers, like the API's, only decode, authorise
// and encode: every change goes through the service. A page authenticates
// by the session cookie alone (never a key header), and every
// state-changing request carries the session's CSRF token, in the
// X-CSRF-Token header (htmx sends it) or a csrf form field.

// nsCookie remembers the namespace an admin picked in the console.
const nsCookie = "nimbus_ns"

// uiMaxBody bounds a console request body: a deploy's upload (the code
// package limit) and its form fields.
const uiMaxBody = 64 << 20

// uiHandler serves one console page for an authenticated caller; p is the
// page's frame, already filled in (who, where, what they may do).
type uiHandler func(w http.ResponseWriter, r *http.Request, p *console.Page)

// uiRoutes adds the console's routes to m.
func (g *Gateway) uiRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	})
	m.HandleFunc("GET /ui/static/", g.ui.Static)
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/static/favicon.svg", http.StatusMovedPermanently)
	})
	m.HandleFunc("GET /ui/login", g.uiLoginPage)
	m.HandleFunc("POST /ui/login", g.uiLogin)
	pages := []struct {
		pattern string
		perm    perm
		nav     string
		h       uiHandler
	}{
		{"POST /ui/logout", permRead, "", g.uiLogout},
		{"GET /ui/namespace", permRead, "", g.uiPickNamespace},
		{"GET /ui/{$}", permRead, "overview", g.uiOverview},
		{"GET /ui/functions", permRead, "functions", g.uiFunctions},
		{"POST /ui/functions", permWrite, "functions", g.uiDeploy},
		{"GET /ui/functions/{name}", permRead, "functions", g.uiFunctionTab("config")},
		{"POST /ui/functions/{name}", permWrite, "functions", g.uiFunctionChange},
		{"GET /ui/functions/{name}/code", permRead, "functions", g.uiFunctionTab("code")},
		{"POST /ui/functions/{name}/code", permWrite, "functions", g.uiSaveCode},
		{"GET /ui/functions/{name}/test", permRead, "functions", g.uiFunctionTab("test")},
		{"POST /ui/functions/{name}/test", permWrite, "functions", g.uiTestEvent},
		{"GET /ui/functions/{name}/invocations", permRead, "functions", g.uiFunctionTab("invocations")},
		{"GET /ui/functions/{name}/logs", permRead, "functions", g.uiFunctionTab("logs")},
		{"GET /ui/functions/{name}/monitor", permRead, "functions", g.uiFunctionTab("monitor")},
		{"GET /ui/functions/{name}/tail", permRead, "", g.uiTail},
		{"GET /ui/playground", permWrite, "playground", g.uiPlayground},
		{"GET /ui/invocations", permRead, "invocations", g.uiInvocations},
		{"GET /ui/invocations/{id}", permRead, "invocations", g.uiInvocation},
		{"GET /ui/schedules", permRead, "schedules", g.uiSchedules},
		{"POST /ui/schedules", permWrite, "schedules", g.uiScheduleChange},
		{"GET /ui/schedules/preview", permRead, "schedules", g.uiSchedulePreview},
		{"GET /ui/deadletters", permRead, "deadletters", g.uiDeadLetters},
		{"POST /ui/deadletters", permWrite, "deadletters", g.uiRedrive},
		{"GET /ui/subscriptions", permRead, "subscriptions", g.uiSubscriptions},
		{"GET /ui/cluster", permAdmin, "cluster", g.uiCluster},
		{"POST /ui/cluster", permAdmin, "cluster", g.uiClusterChange},
		{"GET /ui/namespaces", permAdmin, "namespaces", g.uiNamespaces},
		{"POST /ui/namespaces", permAdmin, "namespaces", g.uiNamespaceChange},
		{"GET /ui/keys", permAdmin, "keys", g.uiKeys},
		{"POST /ui/keys", permAdmin, "keys", g.uiKeyChange},
		{"GET /ui/users", permAdmin, "users", g.uiUsers},
		{"POST /ui/users", permAdmin, "users", g.uiUserChange},
		{"GET /ui/audit", permAdmin, "audit", g.uiAudit},
	}
	for _, pg := range pages {
		m.Handle(pg.pattern, g.page(pg.perm, pg.nav, pg.h))
	}
	m.Handle("/ui/", g.page(permRead, "", func(w http.ResponseWriter, r *http.Request, p *console.Page) {
		p.Title, p.Error = "Not found", "There is no console page at "+r.URL.Path+"."
		g.ui.Render(w, http.StatusNotFound, "error", p, "")
	}))
}

// page wraps a console handler: the caller must have a live session
// (otherwise: to the sign-in page, and back here after it), a role that
// grants need, and for a change the session's CSRF token. It resolves the
// namespace the page acts in (an admin's pick, else the caller's own) and
// audits a change as the API does.
func (g *Gateway) page(need perm, nav string, h uiHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !safeMethod(r.Method) {
			r.Body = http.MaxBytesReader(w, r.Body, uiMaxBody)
		}
		key, cs, err := g.uiCaller(r)
		if err != nil {
			if errors.Is(err, errCSRFMissing) {
				g.ui.Render(w, http.StatusForbidden, "error", &console.Page{Title: "Refused", Error: errCSRF.Error()}, "")
				return
			}
			g.uiToLogin(w, r)
			return
		}
		who := strings.TrimPrefix(key.ID, auth.UserPrefix) // a user's name
		if cs.session.Key != "" {
			who = "key " + key.ID
		}
		p := &console.Page{Nav: nav, User: who, Role: key.Role, CSRF: auth.CSRFToken(cs.token),
			CanWrite: grants(key.Role, permWrite), IsAdmin: key.Role == auth.RoleAdmin, Path: r.URL.RequestURI()}
		if !grants(key.Role, need) {
			p.Title, p.Error = "Not allowed", "A "+key.Role+" may not do this: it needs "+need.String()+" rights."
			g.ui.Render(w, http.StatusForbidden, "error", p, "")
			return
		}
		if wait, ok := g.limits.take(key, g.cfg.RateLimit); !ok {
			rateLimited(w, "key "+key.ID, wait) // sets Retry-After
			p.Title, p.Error = "Slow down", "Too many requests from "+key.ID+": try again in a moment."
			g.ui.Render(w, http.StatusTooManyRequests, "error", p, "")
			return
		}
		p.Namespace = g.uiNamespace(r, key)
		if p.IsAdmin {
			for _, ns := range g.svc.Namespaces() {
				p.Namespaces = append(p.Namespaces, ns.Name)
			}
		}
		ctx := context.WithValue(r.Context(), keyCtx{}, key)
		ctx = context.WithValue(ctx, sessionCtx{}, cs)
		ctx = context.WithValue(ctx, nsCtx{}, p.Namespace)
		r = r.WithContext(ctx)
		if safeMethod(r.Method) {
			h(w, r, p)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h(sw, r, p)
		if sw.status < 300 || sw.status == http.StatusSeeOther {
			g.svc.AddAudit(model.AuditEntry{Time: time.Now().UTC(), Namespace: p.Namespace, KeyID: key.ID, Role: key.Role,
				Action: r.Method + " " + r.URL.Path + " " + r.PostFormValue("action"), Status: sw.status, Server: g.cfg.APIAddr})
		}
	})
}

// errCSRFMissing is a change whose CSRF token is missing or wrong.
var errCSRFMissing = errors.New("missing or wrong CSRF token")

// uiCaller authenticates a console request by its session cookie and,
// for a change, checks the session's CSRF token (header or form field).
func (g *Gateway) uiCaller(r *http.Request) (model.Key, *callerSession, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return model.Key{}, nil, errNoSession
	}
	sess, as, err := auth.CheckSession(g.cfg.Control.Store(), c.Value)
	if err != nil {
		return model.Key{}, nil, errNoSession
	}
	if !safeMethod(r.Method) {
		tok := r.Header.Get("X-CSRF-Token")
		if tok == "" {
			tok = r.PostFormValue("csrf")
		}
		if !auth.CheckCSRF(c.Value, tok) {
			return model.Key{}, nil, errCSRFMissing
		}
	}
	return as, &callerSession{token: c.Value, session: sess, as: as}, nil
}

// uiToLogin sends a caller without a live session to the sign-in page,
// which brings them back to the page they asked for (a GET's own URL; a
// change's page). htmx follows HX-Redirect with a full page load.
func (g *Gateway) uiToLogin(w http.ResponseWriter, r *http.Request) {
	next := r.URL.Path
	if r.Method == http.MethodGet {
		next = r.URL.RequestURI()
	}
	to := "/ui/login?next=" + url.QueryEscape(next)
	if r.Header.Get("HX-Request") == "true" {
		w.Header().Set("HX-Redirect", to)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// uiNamespace is the namespace a page acts in: a non-admin's own; an
// admin's pick (the nsCookie) while it exists, else the default.
func (g *Gateway) uiNamespace(r *http.Request, key model.Key) string {
	if key.Role != auth.RoleAdmin {
		return client.NamespaceOf(key.Namespace)
	}
	if c, err := r.Cookie(nsCookie); err == nil {
		if _, err := g.cfg.Control.Store().Namespace(c.Value); err == nil {
			return c.Value
		}
	}
	return client.DefaultNamespace
}

// uiPickNamespace switches an admin's console to ?ns= and goes back to
// ?back= (a console path).
func (g *Gateway) uiPickNamespace(w http.ResponseWriter, r *http.Request, p *console.Page) {
	ns := r.URL.Query().Get("ns")
	if _, err := g.cfg.Control.Store().Namespace(ns); err != nil || !p.IsAdmin {
		p.Title, p.Error = "No such namespace", "You cannot switch to namespace "+ns+"."
		g.ui.Render(w, http.StatusNotFound, "error", p, "")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: nsCookie, Value: ns, Path: "/ui/", HttpOnly: true, Secure: secureCookie(r), SameSite: http.SameSiteStrictMode})
	back := r.URL.Query().Get("back")
	if !strings.HasPrefix(back, "/ui/") || strings.HasPrefix(back, "/ui/functions/") {
		back = "/ui/functions" // another namespace has other functions
	}
	http.Redirect(w, r, back, http.StatusSeeOther)
}

// uiFail renders page name with err explained (its status and the
// message the API would give) above the form the caller filled in.
func (g *Gateway) uiFail(w http.ResponseWriter, p *console.Page, name string, err error) {
	status, _, msg := explain(g.log, err)
	p.Error = msg
	g.ui.Render(w, status, name, p, "")
}

// uiDone renders page name after a change that succeeded, with notice,
// and tells htmx to show the page's own URL (path) rather than the
// form's.
func (g *Gateway) uiDone(w http.ResponseWriter, p *console.Page, name, path, notice string) {
	w.Header().Set("HX-Push-Url", path)
	p.Notice = notice
	g.ui.Render(w, http.StatusOK, name, p, "")
}

// secureCookie reports whether a cookie set in answer to r should be
// Secure: over TLS, and on a loopback address, which browsers treat as a
// secure context.
func secureCookie(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
