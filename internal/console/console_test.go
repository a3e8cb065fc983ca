package console

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The login page renders within the layout, under the security policy,
// with what it is given escaped; a page that fails to render answers 500
// without a half-written page.
func TestRenderEscapesUnderThePolicy(t *testing.T) {
	rd := New(slog.New(slog.NewTextHandler(io.Discard, nil)))
	w := httptest.NewRecorder()
	rd.Render(w, http.StatusUnauthorized, "login", &Page{Title: "Sign in", Error: `<img src=x onerror=alert(1)>`, Data: map[string]string{"Next": "/ui/"}}, "")
	body := w.Body.String()
	if w.Code != http.StatusUnauthorized || w.Header().Get("Content-Security-Policy") != SecurityPolicy {
		t.Fatalf("%d, CSP %q", w.Code, w.Header().Get("Content-Security-Policy"))
	}
	if strings.Contains(body, "<img src=x") || !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Error("the error was not escaped")
	}
	if !strings.Contains(body, `<form method="post" action="/ui/login"`) || strings.Contains(body, "<script>") {
		t.Error("the sign-in page lacks its form or has inline script")
	}
	w = httptest.NewRecorder()
	rd.Render(w, http.StatusOK, "function", &Page{Title: "x", Data: 42}, "") // a view of the wrong type
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "<html") {
		t.Errorf("a page that cannot render: %d %q", w.Code, w.Body.String())
	}
}

func TestHelpers(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{Link("/ui/functions", "q", "a b", "after", ""), "/ui/functions?q=a+b"},
		{Link("/ui/x?a=1", "b", "2"), "/ui/x?a=1&b=2"},
		{Link("/ui/x"), "/ui/x"},
		{ms(0), "0 ms"}, {ms(1.234), "1.23 ms"}, {ms(123.45), "123.5 ms"}, {ms(2500), "2.50 s"},
		{pct(1, 4), "25.0%"}, {pct(1, 0), "–"},
		{sparkPoints([]float64{0, 2, 1}), "0.0,19.0 50.0,1.0 100.0,10.0"},
		{sparkPoints([]float64{0, 0}), "0.0,19.0 100.0,19.0"},
		{Pretty([]byte(`{"a":1}`)), "{\n  \"a\": 1\n}"}, {Pretty([]byte("not json")), "not json"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
