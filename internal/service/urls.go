package service

import (
	"context"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/state"
)

// FunctionURL is the URL of function name of namespace ns.
func (s *Service) FunctionURL(ns, name string) (model.FunctionURL, error) {
	return s.store.FunctionURL(model.QualifiedName(ns, name))
}

// FunctionURLs lists namespace ns's function URLs.
func (s *Service) FunctionURLs(ns string) []model.FunctionURL { return s.store.FunctionURLs(ns) }

// PutFunctionURL creates or replaces the URL of function u.Function in
// namespace ns after checking its auth mode, rate and CORS policy; it
// reports whether the URL is new. An empty auth mode is URLAuthKey.
func (s *Service) PutFunctionURL(ctx context.Context, ns string, u model.FunctionURL) (model.FunctionURL, bool, error) {
	u.Namespace = ns
	if u.Auth == "" {
		u.Auth = model.URLAuthKey
	}
	if err := checkFunctionURL(u); err != nil {
		return u, false, err
	}
	if _, err := s.store.Function(model.QualifiedName(ns, u.Function)); err != nil {
		return u, false, err
	}
	res, err := fsm.Apply(ctx, s.d.Control, fsm.PutFunctionURL{URL: u, Now: time.Now().UTC()})
	if err != nil {
		return u, false, err
	}
	return res.URL, res.Created, nil
}

// DeleteFunctionURL removes the URL of function name of namespace ns and
// returns it; the function stays.
func (s *Service) DeleteFunctionURL(ctx context.Context, ns, name string) (model.FunctionURL, error) {
	u, err := s.FunctionURL(ns, name)
	if err != nil {
		return u, err
	}
	_, err = fsm.Apply(ctx, s.d.Control, fsm.DeleteFunctionURL{Namespace: ns, Name: name})
	return u, err
}

// Bounds of a function URL's settings.
const (
	maxCORSMaxAge  = 86400 // seconds, as Lambda's
	maxCORSEntries = 100   // of each list
)

// corsMethods are the methods a CORS policy may allow ("*" too).
var corsMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions}

// headerNameRe is an HTTP header name (RFC 9110's token).
var headerNameRe = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// checkFunctionURL refuses (ErrInvalid, saying what and why) a URL whose
// auth mode, rate limit or CORS policy is malformed.
func checkFunctionURL(u model.FunctionURL) error {
	if u.Auth != model.URLAuthNone && u.Auth != model.URLAuthKey {
		return state.Errorf(state.ErrInvalid, "auth %q is not %s or %s", u.Auth, model.URLAuthNone, model.URLAuthKey)
	}
	if u.RateLimit < 0 || math.IsNaN(u.RateLimit) || math.IsInf(u.RateLimit, 0) {
		return state.Errorf(state.ErrInvalid, "rate_limit %v is not a number of requests per second of 0 or more", u.RateLimit)
	}
	if u.CORS != nil {
		return checkCORS(*u.CORS)
	}
	return nil
}

func checkCORS(c model.CORS) error {
	if len(c.AllowOrigins) == 0 {
		return state.Errorf(state.ErrInvalid, "a CORS policy needs at least one allowed origin (--cors-origin): an origin such as https://app.example, or *")
	}
	for what, list := range map[string][]string{"origins": c.AllowOrigins, "methods": c.AllowMethods, "headers": c.AllowHeaders, "expose headers": c.ExposeHeaders} {
		if len(list) > maxCORSEntries {
			return state.Errorf(state.ErrInvalid, "CORS allows %d %s: at most %d", len(list), what, maxCORSEntries)
		}
	}
	for _, o := range c.AllowOrigins {
		if err := checkOrigin(o); err != nil {
			return err
		}
	}
	for _, m := range c.AllowMethods {
		if m != "*" && !slices.Contains(corsMethods, m) {
			return state.Errorf(state.ErrInvalid, "CORS method %q is not * or one of %s", m, strings.Join(corsMethods, ", "))
		}
	}
	for _, h := range append(append([]string(nil), c.AllowHeaders...), c.ExposeHeaders...) {
		if h != "*" && !headerNameRe.MatchString(h) {
			return state.Errorf(state.ErrInvalid, "CORS header %q is not * or a header name", h)
		}
	}
	if c.MaxAge < 0 || c.MaxAge > maxCORSMaxAge {
		return state.Errorf(state.ErrInvalid, "CORS max age %d is not between 0 and %d seconds", c.MaxAge, maxCORSMaxAge)
	}
	if c.AllowCredentials && slices.Contains(c.AllowOrigins, "*") {
		return state.Errorf(state.ErrInvalid, "CORS credentials cannot be allowed for every origin (*): browsers refuse that; name the origins")
	}
	return nil
}

// checkOrigin refuses what is not * or an origin: a scheme (http or
// https) and a host, with a port perhaps, and nothing else.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	p, err := url.Parse(o)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil ||
		(p.Path != "" && p.Path != "/") || p.RawQuery != "" || p.Fragment != "" || strings.HasSuffix(o, "/") {
		return state.Errorf(state.ErrInvalid, "CORS origin %q is not * or an origin such as https://app.example or http://localhost:3000 (a scheme and a host, no path)", o)
	}
	return nil
}
