package gateway

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// perm is what a route needs of the caller's key.
type perm int

const (
	permRead  perm = iota // viewer, developer, admin
	permWrite             // developer, admin
	permAdmin             // admin
)

func (p perm) String() string {
	return [...]string{"read", "write", "admin"}[p]
}

// grants reports whether a key of role may do what p asks.
func grants(role string, p perm) bool {
	switch role {
	case auth.RoleAdmin:
		return true
	case auth.RoleDeveloper:
		return p <= permWrite
	case auth.RoleViewer:
		return p == permRead
	}
	return false // worker keys serve the internal RPC only
}

var errUnauthorized = &apiError{http.StatusUnauthorized, "Unauthorized", "missing, invalid, expired or revoked API key: send Authorization: Bearer <key> (nimbus dev writes the admin key to DATA/admin.token)"}

var errNoSession = &apiError{http.StatusUnauthorized, "Unauthorized", "missing, invalid or expired session: log in again (POST /v1/login)"}

var errCSRF = &apiError{http.StatusForbidden, "Forbidden", "missing or wrong CSRF token: send the session's csrf_token in the X-CSRF-Token header"}

// sessionCookie is the name of the cookie that carries a session token.
const sessionCookie = "nimbus_session"

type keyCtx struct{}

type nsCtx struct{}

type sessionCtx struct{}

// callerSession is the session a cookie-authenticated request came with.
type callerSession struct {
	token   string // the cookie's value
	session model.Session
	as      model.Key // who it acts as: its user's principal, or its key
}

// callerSessionOf returns the request's session, or nil for a request
// authenticated by an API key.
func callerSessionOf(ctx context.Context) *callerSession {
	s, _ := ctx.Value(sessionCtx{}).(*callerSession)
	return s
}

// safeMethod reports whether a method changes nothing, so that a
// cookie-authenticated request needs no CSRF token.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authenticate finds who makes a request: the API key of its
// Authorization header, else the session of its cookie (for which a
// state-changing method needs the session's CSRF token as well).
func (g *Gateway) authenticate(w http.ResponseWriter, r *http.Request) (model.Key, *callerSession, error) {
	store := g.cfg.Control.Store()
	if h := r.Header.Get("Authorization"); h != "" {
		key, err := auth.Check(store, auth.Bearer(h))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nimbus"`)
			return model.Key{}, nil, errUnauthorized
		}
		return key, nil, nil
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="nimbus"`)
		return model.Key{}, nil, errUnauthorized
	}
	sess, as, err := auth.CheckSession(store, c.Value)
	if err != nil {
		return model.Key{}, nil, errNoSession
	}
	if !safeMethod(r.Method) && !auth.CheckCSRF(c.Value, r.Header.Get("X-CSRF-Token")) {
		return model.Key{}, nil, errCSRF
	}
	return as, &callerSession{token: c.Value, session: sess, as: as}, nil
}

// callerKey returns the key that authenticated the request.
func callerKey(ctx context.Context) model.Key {
	k, _ := ctx.Value(keyCtx{}).(model.Key)
	return k
}

// callerNS returns the namespace a request acts in (allow resolved it).
func callerNS(ctx context.Context) string {
	if ns, _ := ctx.Value(nsCtx{}).(string); ns != "" {
		return ns
	}
	return client.DefaultNamespace
}

// scope says whether a route acts in one namespace.
type scope bool

const (
	scoped scope = true  // the route's objects belong to a namespace
	global scope = false // cluster, keys, namespaces, audit
)

// namespaceFor decides which namespace a request acts in, given the one
// it asks for (a route's X-Nimbus-Namespace header, a function URL's
// path): an admin key chooses (default "default"); any other key acts in
// its own namespace, and asking for another is refused with 403. The
// namespace must exist.
func (g *Gateway) namespaceFor(key model.Key, asked string) (string, error) {
	ns := asked
	if key.Role != auth.RoleAdmin {
		own := client.NamespaceOf(key.Namespace)
		if asked != "" && asked != own {
			return "", &apiError{http.StatusForbidden, "Forbidden",
				fmt.Sprintf("key %s belongs to namespace %q and may not act in %q", key.ID, own, asked)}
		}
		ns = own
	}
	ns = client.NamespaceOf(ns)
	if _, err := g.cfg.Control.Store().Namespace(ns); err != nil {
		return "", &apiError{http.StatusNotFound, "NotFound",
			fmt.Sprintf("namespace %q does not exist (an admin creates it with: nimbus namespaces create %s)", ns, ns)}
	}
	return ns, nil
}

// allow is the one place where API routes are authenticated, authorised
// (role, then namespace) and rate-limited.
func (g *Gateway) allow(p perm, sc scope, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, sess, err := g.authorise(w, r, p)
		if err != nil {
			writeError(w, g.log, err)
			return
		}
		ctx := context.WithValue(r.Context(), keyCtx{}, key)
		if sess != nil {
			ctx = context.WithValue(ctx, sessionCtx{}, sess)
		}
		var ns string
		if sc == scoped {
			var err error
			asked := r.Header.Get(client.HeaderNamespace)
			if asked == "" && strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
				// A browser's websocket cannot send headers of its own.
				asked = r.URL.Query().Get("namespace")
			}
			if ns, err = g.namespaceFor(key, asked); err != nil {
				writeError(w, g.log, err)
				return
			}
			ctx = context.WithValue(ctx, nsCtx{}, ns)
		}
		r = r.WithContext(ctx)
		if !audited(r) {
			h(w, r)
			return
		}
		g.serveAudited(w, r, h, ns, key)
	})
}

// serveAudited runs h and records in the audit log a change it made (a
// status below 300), by key in namespace ns.
func (g *Gateway) serveAudited(w http.ResponseWriter, r *http.Request, h http.HandlerFunc, ns string, key model.Key) {
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	h(sw, r)
	if sw.status < 300 {
		g.svc.AddAudit(model.AuditEntry{Time: time.Now().UTC(), Namespace: ns, KeyID: key.ID, Role: key.Role,
			Action: r.Method + " " + r.URL.Path, Status: sw.status, Server: g.cfg.APIAddr})
	}
}

// authorise authenticates r's caller (authenticate) and checks that its
// role grants p and that its key is within its rate (429 with
// Retry-After otherwise): what every route that needs a key checks
// (allow), and a function URL that needs one. The namespace is the
// caller's to check (namespaceFor).
func (g *Gateway) authorise(w http.ResponseWriter, r *http.Request, p perm) (model.Key, *callerSession, error) {
	key, sess, err := g.authenticate(w, r)
	if err != nil {
		return key, nil, err
	}
	if !grants(key.Role, p) {
		who := "key"
		if sess != nil {
			who = "user"
		}
		return key, nil, &apiError{http.StatusForbidden, "Forbidden",
			fmt.Sprintf("a %s %s may not %s %s (it needs %s rights)", key.Role, who, r.Method, r.URL.Path, p)}
	}
	if wait, ok := g.limits.take(key, g.cfg.RateLimit); !ok {
		return key, nil, rateLimited(w, "key "+key.ID, wait)
	}
	return key, sess, nil
}

// rateLimited is the 429 of a request over who's rate, which has a token
// again after wait; it sets Retry-After to wait in whole seconds.
func rateLimited(w http.ResponseWriter, who string, wait time.Duration) error {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
	return &apiError{http.StatusTooManyRequests, "TooManyRequests",
		fmt.Sprintf("rate limit of %s exceeded: retry after %v", who, wait.Round(time.Millisecond))}
}

// audited reports whether a request changes something worth auditing:
// every write but invocations and topic publishes, which have records of
// their own (a publish, one per subscriber it reached).
func audited(r *http.Request) bool {
	if r.Method == http.MethodGet {
		return false
	}
	post := r.Method == http.MethodPost
	return !(post && strings.HasSuffix(r.URL.Path, "/invoke")) &&
		!(post && strings.HasPrefix(r.URL.Path, "/v1/topics/") && strings.HasSuffix(r.URL.Path, "/publish"))
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// Unwrap lets a websocket upgrade reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// limiter keeps a token bucket per key: rate requests per second, bursts
// of up to one second's worth (at least one).
type limiter struct {
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// take spends a token of key's bucket; when there is none it reports how
// long until there is. rate 0 (key and server) means no limit.
func (l *limiter) take(key model.Key, serverRate float64) (time.Duration, bool) {
	rate := key.RateLimit
	if rate <= 0 {
		rate = serverRate
	}
	if rate <= 0 {
		return 0, true
	}
	return l.takeID(key.ID, rate, math.Max(rate, 1))
}

// maxBuckets bounds the buckets kept; past it, full (idle) ones go.
const maxBuckets = 10000

// takeID spends a token of the bucket called id, which refills at rate
// per second up to burst.
func (l *limiter) takeID(id string, rate, burst float64) (time.Duration, bool) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	b := l.buckets[id]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			for k, v := range l.buckets {
				if now.Sub(v.last).Seconds()*rate >= burst {
					delete(l.buckets, k)
				}
			}
		}
		b = &bucket{tokens: burst, last: now}
		l.buckets[id] = b
	}
	b.tokens = math.Min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / rate * float64(time.Second)), false
}
