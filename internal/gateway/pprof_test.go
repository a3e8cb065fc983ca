package gateway

import (
	"context"
	"strings"
	"testing"

	"nimbus/internal/auth"
)

// Go's profiles are served only with --enable-pprof, and then only to
// admin keys.
func TestProfilesAreServedToAdminsOnlyWhenEnabled(t *testing.T) {
	off := newTestAPI(t)
	off.must(404, req{method: "GET", path: "/debug/pprof/heap?debug=1", key: off.admin})

	a := newTestAPIWith(t, func(c *Config) { c.Pprof = true })
	viewer, err := auth.CreateKey(context.Background(), a.cp, auth.RoleViewer, "viewer")
	if err != nil {
		t.Fatal(err)
	}
	if w := a.must(200, req{method: "GET", path: "/debug/pprof/heap?debug=1", key: a.admin}); !strings.Contains(w.Body.String(), "heap profile") {
		t.Fatalf("heap profile: %.200s", w.Body.String())
	}
	a.must(200, req{method: "GET", path: "/debug/pprof/goroutine?debug=1", key: a.admin})
	a.must(403, req{method: "GET", path: "/debug/pprof/heap?debug=1", key: viewer})
	a.must(401, req{method: "GET", path: "/debug/pprof/heap?debug=1"})
}
