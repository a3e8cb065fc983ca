package gateway

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/auth"
	"nimbus/internal/fsm"
	"nimbus/internal/state"
)

// Go's profiles are served only with --enable-pprof, and then only to
// admin keys.
func TestProfilesAreServedToAdminsOnlyWhenEnabled(t *testing.T) {
	a := newTestAPI(t)
	a.must(404, req{method: "GET", path: "/debug/pprof/heap?debug=1", key: a.admin})

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := state.New()
	cp := &fakeControl{store: s, Writer: fsm.Direct(fsm.New(s, log))}
	g := New(Config{Control: cp, Registry: prometheus.NewRegistry(), Log: log, APIAddr: "test", Pprof: true})
	t.Cleanup(g.Close)
	ctx := context.Background()
	admin, err := auth.CreateKey(ctx, cp, auth.RoleAdmin, "admin")
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := auth.CreateKey(ctx, cp, auth.RoleViewer, "viewer")
	if err != nil {
		t.Fatal(err)
	}
	p := &testAPI{t: t, g: g, cp: cp, admin: admin, close: g.Close}
	if w := p.must(200, req{method: "GET", path: "/debug/pprof/heap?debug=1", key: admin}); !strings.Contains(w.Body.String(), "heap profile") {
		t.Fatalf("heap profile: %.200s", w.Body.String())
	}
	p.must(200, req{method: "GET", path: "/debug/pprof/goroutine?debug=1", key: admin})
	p.must(403, req{method: "GET", path: "/debug/pprof/heap?debug=1", key: viewer})
	p.must(401, req{method: "GET", path: "/debug/pprof/heap?debug=1"})
}
