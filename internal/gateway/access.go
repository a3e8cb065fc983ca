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
	"nimbus/internal/state"
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

type keyCtx struct{}

type nsCtx struct{}

// callerKey returns the key that authenticated the request.
func callerKey(ctx context.Context) state.Key {
	k, _ := ctx.Value(keyCtx{}).(state.Key)
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

// namespaceFor decides which namespace a request acts in: an admin key
// chooses with the X-Nimbus-Namespace header (default "default"); any
// other key acts in its own namespace, and naming another is refused
// with 403. The namespace must exist.
func (g *Gateway) namespaceFor(key state.Key, r *http.Request) (string, error) {
	asked := r.Header.Get(client.HeaderNamespace)
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

// allow is the one place where requests are authenticated, authorised
// (role, then namespace) and rate-limited.
func (g *Gateway) allow(p perm, sc scope, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, err := auth.Check(g.cfg.Control.Store(), auth.Bearer(r.Header.Get("Authorization")))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="nimbus"`)
			writeError(w, g.log, errUnauthorized)
			return
		}
		if !grants(key.Role, p) {
			writeError(w, g.log, &apiError{http.StatusForbidden, "Forbidden",
				fmt.Sprintf("a %s key may not %s %s (it needs %s rights)", key.Role, r.Method, r.URL.Path, p)})
			return
		}
		if wait, ok := g.limits.take(key, g.cfg.RateLimit); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeError(w, g.log, &apiError{http.StatusTooManyRequests, "TooManyRequests",
				fmt.Sprintf("rate limit of key %s exceeded: retry after %v", key.ID, wait.Round(time.Millisecond))})
			return
		}
		ctx := context.WithValue(r.Context(), keyCtx{}, key)
		var ns string
		if sc == scoped {
			var err error
			if ns, err = g.namespaceFor(key, r); err != nil {
				writeError(w, g.log, err)
				return
			}
			ctx = context.WithValue(ctx, nsCtx{}, ns)
		}
		r = r.WithContext(ctx)
		if p == permRead || !audited(r) {
			h(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h(sw, r)
		if sw.status < 300 {
			g.recorder.addAudit(client.AuditEntry{Time: time.Now().UTC(), Namespace: ns, KeyID: key.ID, Role: key.Role,
				Action: r.Method + " " + r.URL.Path, Status: sw.status, Server: g.cfg.APIAddr})
		}
	})
}

// audited reports whether a request changes something worth auditing:
// every write but invocations, which have records of their own.
func audited(r *http.Request) bool {
	return !(r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/invoke")) && r.Method != http.MethodGet
}

// statusWriter remembers the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

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
func (l *limiter) take(key state.Key, serverRate float64) (time.Duration, bool) {
	rate := key.RateLimit
	if rate <= 0 {
		rate = serverRate
	}
	if rate <= 0 {
		return 0, true
	}
	burst := math.Max(rate, 1)
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buckets == nil {
		l.buckets = map[string]*bucket{}
	}
	b := l.buckets[key.ID]
	if b == nil {
		b = &bucket{tokens: burst, last: now}
		l.buckets[key.ID] = b
	}
	b.tokens = math.Min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0, true
	}
	return time.Duration((1 - b.tokens) / rate * float64(time.Second)), false
}
