package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"

	"nimbus/internal/wire"
	"nimbus/pkg/client"
)

// listBuilds lists the namespace's dependency builds, newest first
// (?function= for one function's), without their logs.
func (g *Gateway) listBuilds(w http.ResponseWriter, r *http.Request) {
	builds := wire.List(g.svc.Builds(callerNS(r.Context()), r.URL.Query().Get("function")), wire.Build)
	for i := range builds {
		builds[i].Log = ""
	}
	if builds == nil {
		builds = []client.Build{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"builds": builds})
}

// getBuild answers one build with its log.
func (g *Gateway) getBuild(w http.ResponseWriter, r *http.Request) {
	b, err := g.svc.Build(callerNS(r.Context()), r.PathValue("id"))
	if err != nil {
		writeError(w, g.log, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.Build(b))
}

// wantsBuildLog reports whether a deploy's client asked for the build's
// log as it is written (Accept: application/x-ndjson).
func wantsBuildLog(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), client.DeployStreamType)
}

// buildStream is a deploy's answer while its dependency build writes a
// log: nothing is sent until the first write, so a deploy without a
// build answers as usual; from then on the answer is 200 and
// newline-delimited JSON, one client.DeployEvent per line, the last of
// which carries the function or the error. Safe for concurrent use.
type buildStream struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	started bool
}

func (s *buildStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.w.Header().Set("Content-Type", client.DeployStreamType)
		s.w.Header().Set("X-Content-Type-Options", "nosniff")
		s.w.WriteHeader(http.StatusOK)
		s.started = true
	}
	s.sendLocked(client.DeployEvent{Log: string(p)})
	return len(p), nil
}

func (s *buildStream) sendLocked(ev client.DeployEvent) {
	b, _ := json.Marshal(ev)
	s.w.Write(append(b, '\n'))
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// finish ends the answer with the deploy's outcome, and reports whether
// the stream had started (else the caller answers as usual).
func (s *buildStream) finish(ev client.DeployEvent) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		s.sendLocked(ev)
	}
	return s.started
}
