package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// ErrStarting is the answer of a server that is still loading its state
// from its data directory (its Raft snapshot and log): it has nothing to
// answer from yet.
var ErrStarting = errors.New("this server is starting: it is loading its state from its data directory; retry shortly")

// startingWait is how long a request that arrives while the server
// starts waits for the gateway before the 503: a restart loads its state
// within seconds, and a client that found the port open should not have
// its first request refused for a moment's difference.
const startingWait = 2 * time.Second

// Starting is the API's handler from the moment a server listens, before
// its state is loaded, so that a server restoring a large state answers
// at once rather than leaving connections unanswered. Until Serve hands
// it the gateway, GET /readyz answers 503 (the reason ErrStarting) and GET
// /healthz 503 {"status":"starting"}, both at once and with Retry-After;
// every other request waits up to startingWait for the gateway and is
// then served by it, or answered 503 ErrStarting with Retry-After: 1.
// Once served, every request goes to the gateway. Safe for concurrent
// use; make one with NewStarting.
type Starting struct {
	log    *slog.Logger
	once   sync.Once
	placed chan struct{} // closed by Serve
	next   http.Handler  // set before placed is closed, never after
}

// NewStarting returns a Starting with no gateway yet, logging to log.
func NewStarting(log *slog.Logger) *Starting {
	return &Starting{log: log, placed: make(chan struct{})}
}

// Serve makes h (the gateway) answer every request from now on. Only the
// first call counts.
func (s *Starting) Serve(h http.Handler) {
	s.once.Do(func() {
		s.next = h
		close(s.placed)
	})
}

// served reports whether Serve has been called.
func (s *Starting) served() bool {
	select {
	case <-s.placed:
		return true
	default:
		return false
	}
}

// ServeHTTP implements http.Handler.
func (s *Starting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.served() {
		s.next.ServeHTTP(w, r)
		return
	}
	switch r.URL.Path {
	case "/readyz":
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, readiness{Status: "not ready", Reasons: []string{ErrStarting.Error()}})
		return
	case "/healthz":
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		return
	}
	if s.await(r.Context()) {
		s.next.ServeHTTP(w, r)
		return
	}
	writeError(w, s.log, ErrStarting)
}

// await waits until Serve has been called, startingWait at most, or ctx
// ends; it reports whether Serve has been called.
func (s *Starting) await(ctx context.Context) bool {
	t := time.NewTimer(startingWait)
	defer t.Stop()
	select {
	case <-s.placed:
		return true
	case <-ctx.Done():
	case <-t.C:
	}
	return s.served()
}
