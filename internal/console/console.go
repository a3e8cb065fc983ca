package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed all:static
var staticFS embed.FS

// SecurityPolicy is the Content-Security-Policy of every console
// response: nothing but this origin, no inline script or style, no
// framing.
const SecurityPolicy = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Page is what every page template receives: who is signed in, what
// they may do, where they are, and the page's own view (Data).
type Page struct {
	Title     string
	Nav       string // the navigation entry to highlight
	User      string // who is signed in, as shown: a user name, or "key ID"
	Role      string
	CanWrite  bool // developer or admin: write controls are shown
	IsAdmin   bool
	CSRF      string
	Namespace string
	// Namespaces lists those the namespace picker offers (admins only).
	Namespaces []string
	Path       string // the request's path and query, for links back
	Notice     string // a success message
	Error      string // a failure message, shown prominently
	Data       any
	// Assets reports whether the front-end assets are built; when not,
	// the layout says how to build them (pages still work without).
	Assets bool
}

// Renderer renders the console's pages and serves its static files.
// It is safe for concurrent use.
type Renderer struct {
	pages  map[string]*template.Template
	static http.Handler
	assets bool
	log    *slog.Logger
}

// New parses every template; a template error is a programming error
// and panics at start-up, not at a user's request.
func New(log *slog.Logger) *Renderer {
	base := template.Must(template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/_*.html"))
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		file := path.Base(n)
		if strings.HasPrefix(file, "_") {
			continue
		}
		t := template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
		pages[strings.TrimSuffix(file, ".html")] = t
	}
	sub, _ := fs.Sub(staticFS, "static")
	_, err = fs.Stat(sub, "dist/app.js")
	return &Renderer{pages: pages, static: http.StripPrefix("/ui/static/", http.FileServerFS(sub)), assets: err == nil, log: log}
}

// Assets reports whether scripts/ui-vendor built the front-end assets
// before this binary was built.
func (rd *Renderer) Assets() bool { return rd.assets }

// Headers sets the security headers every console response carries.
func Headers(h http.Header) {
	h.Set("Content-Security-Policy", SecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

// Render writes page name with status. With fragment set (an htmx
// request that targets part of a page), it writes only the template
// "fragment" the page defines, else the whole layout.
func (rd *Renderer) Render(w http.ResponseWriter, status int, name string, p *Page, fragment string) {
	t := rd.pages[name]
	if t == nil {
		panic(fmt.Sprintf("console: no page template %q", name))
	}
	p.Assets = rd.assets
	entry := "layout"
	if fragment != "" {
		entry = fragment
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, entry, p); err != nil {
		rd.log.Error("console page failed to render", "page", name, "err", err)
		http.Error(w, "the page failed to render: see the server log", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	Headers(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// Static serves /ui/static/...: the stylesheet and the built assets,
// cacheable for an hour (their names do not change between builds, so
// not immutable).
func (rd *Renderer) Static(w http.ResponseWriter, r *http.Request) {
	Headers(w.Header())
	w.Header().Set("Cache-Control", "public, max-age=3600")
	rd.static.ServeHTTP(w, r)
}
