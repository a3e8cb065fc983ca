package gateway

import (
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/state"
	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// endpoint is the function URL of function name of namespace ns on this
// server, as r reached it: its API address (the host r named when the
// server listens on every address), over https when r came over TLS.
func (g *Gateway) endpoint(r *http.Request, ns, name string) string {
	scheme, host := "http", g.cfg.APIAddr
	if r.TLS != nil {
		scheme = "https"
	}
	if h, _, err := net.SplitHostPort(host); err != nil || h == "" || net.ParseIP(h).IsUnspecified() {
		host = r.Host
	}
	return scheme + "://" + host + "/fn/" + url.PathEscape(ns) + "/" + url.PathEscape(name) + "/"
}

func (g *Gateway) wireURL(r *http.Request, u model.FunctionURL) client.FunctionURL {
	return wire.FunctionURL(u, g.endpoint(r, u.Namespace, u.Function))
}

func (g *Gateway) listFunctionURLs(w http.ResponseWriter, r *http.Request) {
	out := []client.FunctionURL{}
	for _, u := range g.svc.FunctionURLs(callerNS(r.Context())) {
		out = append(out, g.wireURL(r, u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"urls": out})
}

func (g *Gateway) getFunctionURL(w http.ResponseWriter, r *http.Request) {
	u, err := g.svc.FunctionURL(callerNS(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, g.wireURL(r, u))
}

// putFunctionURL creates or replaces a function's URL (see
// service.PutFunctionURL): 201 when new, 200 when replaced.
func (g *Gateway) putFunctionURL(w http.ResponseWriter, r *http.Request) {
	var in client.FunctionURL
	if err := decodeStrict(w, r, &in, 64<<10, "the function URL"); err != nil {
		writeError(w, g.log, err)
		return
	}
	if err := nameFromPath("function", &in.Function, r.PathValue("name"), dnsLabelRe, dnsLabelRule); err != nil {
		writeError(w, g.log, err)
		return
	}
	stored, created, err := g.svc.PutFunctionURL(r.Context(), callerNS(r.Context()), wire.ModelFunctionURL(in))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writePut(w, created, g.wireURL(r, stored))
}

func (g *Gateway) deleteFunctionURL(w http.ResponseWriter, r *http.Request) {
	u, err := g.svc.DeleteFunctionURL(r.Context(), callerNS(r.Context()), r.PathValue("name"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, g.wireURL(r, u))
}

// serveURL serves a function URL, /fn/{namespace}/{name} and every path
// below it, for any method: it answers CORS preflight requests itself,
// checks the caller (checkURLCaller), passes the request to the function
// as an event (newURLEvent) through the one synchronous invocation
// (invokeSync, trigger "url"), and maps the handler's result back
// (urlAnswerOf). A function error answers 502 with a fixed body: the
// error and its trace stay in the record and the log.
func (g *Gateway) serveURL(w http.ResponseWriter, r *http.Request) {
	id := newRequestID()
	w.Header().Set(client.HeaderRequestID, id)
	ns, name := r.PathValue("namespace"), r.PathValue("name")
	qn := model.QualifiedName(ns, name)
	store := g.cfg.Control.Store()
	u, err := caughtUp(r.Context(), g.cfg.Control, func() (model.FunctionURL, error) { return store.FunctionURL(qn) })
	if errors.Is(err, state.ErrNotFound) {
		err = state.Errorf(state.ErrNotFound, "function %q of namespace %q has no URL (its owner gives it one with: nimbus url create %s)", name, ns, name)
	}
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	if u.CORS != nil && isPreflight(r) {
		preflightHeaders(w.Header(), r, u.CORS)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	req := urlRequest{r: r, url: u, requestID: id}
	if err := g.checkURLCaller(w, r, u, &req); err != nil {
		writeError(w, g.log, err)
		return
	}
	fn, err := caughtUp(r.Context(), g.cfg.Control, func() (model.Function, error) { return store.Function(qn) })
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	if req.body, err = readBody(w, r, maxSyncPayload, "reading the request body"); err != nil {
		writeError(w, g.log, err)
		return
	}
	req.now = time.Now()
	payload, err := json.Marshal(newURLEvent(req))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	run, err := g.invokeSync(r, id, fn, "url", payload)
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	h := w.Header()
	if run.Cold {
		h.Set(client.HeaderColdStart, "true")
	}
	a, err := urlAnswerOf(run.Payload)
	if run.ErrorType == "" && err != nil {
		g.log.Warn("a function URL's handler gave a result that is not an answer", "function", fn.Name, "namespace", fn.Namespace, "request_id", id, "err", err)
	}
	if run.ErrorType != "" || err != nil {
		a = urlAnswer{status: http.StatusBadGateway, header: http.Header{"Content-Type": {"application/json"}}, body: functionErrorBody}
	}
	for k, v := range a.header {
		h[k] = v
	}
	h.Set(client.HeaderRequestID, id) // the platform's, whatever the function said
	corsHeaders(h, r.Header.Get("Origin"), u.CORS)
	h.Set("Content-Length", strconv.Itoa(len(a.body)))
	w.WriteHeader(a.status)
	w.Write(a.body)
}

// checkURLCaller checks a function URL's caller. With auth key it makes
// the invoke route's checks (authorise for write rights, then
// namespaceFor with the URL's namespace), and the event leaves out the
// credentials it checked. With auth none it takes a token of the URL's
// own rate (its RateLimit, else the server's per-key default; neither:
// no limit), 429 with Retry-After beyond it.
func (g *Gateway) checkURLCaller(w http.ResponseWriter, r *http.Request, u model.FunctionURL, req *urlRequest) error {
	if u.Auth == model.URLAuthNone {
		rate := u.RateLimit
		if rate <= 0 {
			rate = g.cfg.RateLimit
		}
		if rate <= 0 {
			return nil
		}
		if wait, ok := g.limits.takeID("url:"+model.QualifiedName(u.Namespace, u.Function), rate, math.Max(rate, 1)); !ok {
			g.svc.AddThrottle(u.Namespace, u.Function)
			return rateLimited(w, "the URL of function "+u.Function, wait)
		}
		return nil
	}
	key, _, err := g.authorise(w, r, permWrite)
	if err != nil {
		return err
	}
	if _, err := g.namespaceFor(key, u.Namespace); err != nil {
		return err
	}
	req.hide, req.hideCookie = []string{"authorization", "x-csrf-token"}, sessionCookie
	return nil
}
