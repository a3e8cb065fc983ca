package gateway

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// Every route answers a method it does not have with 405 and an Allow
// header listing those it has; a path with no route at all stays 404.
func TestWrongMethodAnswers405WithAllow(t *testing.T) {
	a := newTestAPI(t)
	wildcard := regexp.MustCompile(`\{[a-z]+\}`)
	methods := map[string][]string{} // path → its methods
	patterns := []string{"GET /healthz", "POST /v1/login", "GET /metrics"}
	for _, r := range a.g.routeTable() {
		patterns = append(patterns, r.pattern)
	}
	for _, p := range patterns {
		method, path, _ := strings.Cut(p, " ")
		path = wildcard.ReplaceAllString(path, "x")
		methods[path] = append(methods[path], method)
	}
	tried := 0
	for path, have := range methods {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if slices.Contains(have, m) {
				continue
			}
			tried++
			w := a.do(req{method: m, path: path, key: a.admin})
			if w.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405 (%s)", m, path, w.Code, strings.TrimSpace(w.Body.String()))
				continue
			}
			allow := strings.Split(w.Header().Get("Allow"), ", ")
			for _, h := range have {
				if !slices.Contains(allow, h) {
					t.Errorf("%s %s: Allow %q lacks %s", m, path, w.Header().Get("Allow"), h)
				}
			}
			if slices.Contains(allow, m) {
				t.Errorf("%s %s: Allow %q lists the refused method", m, path, w.Header().Get("Allow"))
			}
			if !strings.Contains(w.Body.String(), `"MethodNotAllowed"`) {
				t.Errorf("%s %s: body %s, want the error shape with code MethodNotAllowed", m, path, w.Body.String())
			}
		}
	}
	if tried < 50 {
		t.Fatalf("tried only %d wrong methods: the route table was not read", tried)
	}
	if w := a.do(req{method: http.MethodGet, path: "/", key: a.admin}); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/" {
		t.Errorf("GET /: %d to %q, want 303 to the console", w.Code, w.Header().Get("Location"))
	}
	for _, path := range []string{"/v1/nosuch", "/v1/functions/x/nosuch", "/nosuch"} {
		if w := a.do(req{method: http.MethodGet, path: path, key: a.admin}); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, w.Code)
		}
	}
	// A right method still works.
	if w := a.do(req{method: http.MethodGet, path: "/v1/functions", key: a.admin}); w.Code != http.StatusOK {
		t.Errorf("GET /v1/functions: %d %s", w.Code, w.Body.String())
	}
}
