package gateway

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"nimbus/internal/console"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
)

// uiForm posts a form to a console path, with the session's cookie and
// its CSRF token in the csrf field (unless csrf is "").
func (a *testAPI) uiForm(path, cookie, csrf string, fields url.Values) *httptest.ResponseRecorder {
	a.t.Helper()
	if csrf != "" {
		fields.Set("csrf", csrf)
	}
	hr := httptest.NewRequest("POST", path, strings.NewReader(fields.Encode()))
	hr.RemoteAddr = "192.0.2.1:1234"
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	hr.Header.Set("Origin", "http://example.com")
	if cookie != "" {
		hr.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
	}
	w := httptest.NewRecorder()
	a.g.ServeHTTP(w, hr)
	return w
}

// uiSignIn signs in on the console's form with fields and returns the
// session cookie's value ("" if none was set) and the answer.
func (a *testAPI) uiSignIn(fields url.Values, origin string) (string, *httptest.ResponseRecorder) {
	a.t.Helper()
	hr := httptest.NewRequest("POST", "/ui/login", strings.NewReader(fields.Encode()))
	hr.RemoteAddr = "192.0.2.1:1234"
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		hr.Header.Set("Origin", origin)
	}
	w := httptest.NewRecorder()
	a.g.ServeHTTP(w, hr)
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			return c.Value, w
		}
	}
	return "", w
}

func TestConsoleSignInAndSessions(t *testing.T) {
	a := newTestAPI(t)
	a.g.cfg.ConsoleOnce = func(tok string) string {
		if tok == "right" {
			return strings.Split(a.admin, "_")[1]
		}
		return ""
	}

	t.Run("a page without a session goes to the sign-in page and back", func(t *testing.T) {
		w := a.do(req{method: "GET", path: "/ui/functions?q=x"})
		if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/login?next=%2Fui%2Ffunctions%3Fq%3Dx" {
			t.Fatalf("%d to %q", w.Code, w.Header().Get("Location"))
		}
		hr := httptest.NewRequest("GET", "/ui/", nil)
		hr.Header.Set("HX-Request", "true")
		w = httptest.NewRecorder()
		a.g.ServeHTTP(w, hr)
		if w.Code != http.StatusUnauthorized || !strings.HasPrefix(w.Header().Get("HX-Redirect"), "/ui/login") {
			t.Fatalf("htmx request: %d, HX-Redirect %q", w.Code, w.Header().Get("HX-Redirect"))
		}
	})
	t.Run("every console answer carries the security policy", func(t *testing.T) {
		w := a.do(req{method: "GET", path: "/ui/login"})
		if w.Code != 200 || w.Header().Get("Content-Security-Policy") != console.SecurityPolicy ||
			!strings.Contains(console.SecurityPolicy, "frame-ancestors 'none'") || !strings.Contains(console.SecurityPolicy, "default-src 'self'") {
			t.Fatalf("%d, CSP %q", w.Code, w.Header().Get("Content-Security-Policy"))
		}
		if strings.Contains(w.Body.String(), "<script>") || strings.Contains(w.Body.String(), "style=") {
			t.Error("the sign-in page has inline script or style")
		}
	})
	t.Run("a sign-in from another origin is refused", func(t *testing.T) {
		for _, origin := range []string{"", "http://evil.example"} {
			if c, w := a.uiSignIn(url.Values{"key": {a.admin}}, origin); c != "" || w.Code != http.StatusForbidden {
				t.Errorf("origin %q: %d, cookie %q", origin, w.Code, c)
			}
		}
	})
	t.Run("a wrong key or password is refused with a message", func(t *testing.T) {
		if c, w := a.uiSignIn(url.Values{"key": {"nimbus_000000000000_" + strings.Repeat("0", 64)}}, "http://example.com"); c != "" || w.Code != 401 ||
			!strings.Contains(w.Body.String(), "That API key is not valid") {
			t.Errorf("bad key: %d %q", w.Code, c)
		}
		a.createUser("ada", "developer", "correct-horse")
		if c, w := a.uiSignIn(url.Values{"name": {"ada"}, "password": {"wrong-horse"}}, "http://example.com"); c != "" || w.Code != 401 ||
			!strings.Contains(w.Body.String(), "Wrong user name or password") || !strings.Contains(w.Body.String(), `value="ada"`) {
			t.Errorf("bad password: %d %q", w.Code, c)
		}
	})
	t.Run("the one-time link signs in once", func(t *testing.T) {
		c, w := a.uiSignIn(url.Values{"once": {"right"}, "next": {"/ui/keys"}}, "http://example.com")
		if c == "" || w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/ui/keys" {
			t.Fatalf("%d to %q, cookie %q", w.Code, w.Header().Get("Location"), c)
		}
		if c, w := a.uiSignIn(url.Values{"once": {"wrong"}}, "http://example.com"); c != "" || w.Code != 401 {
			t.Errorf("a wrong token: %d", w.Code)
		}
	})
	t.Run("a next outside the console goes to the overview", func(t *testing.T) {
		for _, next := range []string{"https://evil.example/", "//evil.example/ui/", "/v1/keys", "/ui/login"} {
			_, w := a.uiSignIn(url.Values{"key": {a.admin}, "next": {next}}, "http://example.com")
			if w.Header().Get("Location") != "/ui/" {
				t.Errorf("next %q: to %q", next, w.Header().Get("Location"))
			}
		}
	})
}

func TestConsoleChangesNeedTheCSRFTokenAndTheRole(t *testing.T) {
	a := newTestAPI(t)
	cookie, _ := a.uiSignIn(url.Values{"key": {a.admin}}, "http://example.com")
	if cookie == "" {
		t.Fatal("no session")
	}
	csrf := pageCSRF(t, a, cookie)
	before := a.stored()

	w := a.uiForm("/ui/namespaces", cookie, "", url.Values{"name": {"team-a"}, "concurrency": {"0"}})
	if w.Code != http.StatusForbidden || a.stored() != before {
		t.Fatalf("without the token: %d, state changed: %v", w.Code, a.stored() != before)
	}
	w = a.uiForm("/ui/namespaces", cookie, "not-the-token", url.Values{"name": {"team-a"}, "concurrency": {"0"}})
	if w.Code != http.StatusForbidden || a.stored() != before {
		t.Fatalf("with a wrong token: %d", w.Code)
	}
	for _, bad := range []url.Values{
		{"name": {"Team A!"}, "concurrency": {"0"}},
		{"name": {"team-b"}, "concurrency": {"many"}},
		{"name": {"default"}, "concurrency": {"0"}},
	} {
		w = a.uiForm("/ui/namespaces", cookie, csrf, bad)
		if w.Code/100 != 4 || !strings.Contains(w.Body.String(), `id="page-error"`) || a.stored() != before {
			t.Errorf("%v: %d, error shown: %v", bad, w.Code, strings.Contains(w.Body.String(), `id="page-error"`))
		}
	}
	w = a.uiForm("/ui/namespaces", cookie, csrf, url.Values{"name": {"team-a"}, "concurrency": {"3"}})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "Created namespace team-a.") {
		t.Fatalf("with the token: %d %s", w.Code, w.Body.String())
	}
	if _, err := a.g.svc.Namespace("team-a"); err != nil {
		t.Fatal(err)
	}

	// A viewer's forms are refused even with its own token.
	a.createUser("vic", "viewer", "viewer-pass-1")
	vcookie, _ := a.uiSignIn(url.Values{"name": {"vic"}, "password": {"viewer-pass-1"}}, "http://example.com")
	vcsrf := pageCSRF(t, a, vcookie)
	before = a.stored()
	if w := a.uiForm("/ui/schedules", vcookie, vcsrf, url.Values{"action": {"create"}, "name": {"s"}, "function": {"f"}, "expression": {"rate(1 minute)"}}); w.Code != http.StatusForbidden {
		t.Errorf("a viewer's schedule: %d", w.Code)
	}
	if w := a.do(req{method: "GET", path: "/ui/keys", cookie: vcookie}); w.Code != http.StatusForbidden {
		t.Errorf("a viewer's keys page: %d", w.Code)
	}
	if a.stored() != before {
		t.Error("a refused change changed the state")
	}
	page := a.do(req{method: "GET", path: "/ui/schedules", cookie: vcookie}).Body.String()
	if strings.Contains(page, `id="schedule-form"`) {
		t.Error("a viewer is offered the schedule form")
	}

	// After sign-out the session is gone.
	if w := a.uiForm("/ui/logout", cookie, csrf, url.Values{}); w.Code != http.StatusSeeOther {
		t.Fatalf("sign out: %d", w.Code)
	}
	if w := a.do(req{method: "GET", path: "/ui/", cookie: cookie}); w.Code != http.StatusSeeOther {
		t.Errorf("a page after sign-out: %d", w.Code)
	}
}

// pageCSRF reads the CSRF token a console page gives htmx.
func pageCSRF(t *testing.T, a *testAPI, cookie string) string {
	t.Helper()
	body := a.must(200, req{method: "GET", path: "/ui/schedules", cookie: cookie}).Body.String()
	_, rest, ok := strings.Cut(body, `"X-CSRF-Token":"`)
	if !ok {
		t.Fatalf("the page has no CSRF token:\n%s", body)
	}
	tok, _, _ := strings.Cut(rest, `"`)
	return tok
}

func TestConsoleEscapesWhatUsersTyped(t *testing.T) {
	a := newTestAPI(t)
	const hostile = `<img src=x onerror=alert(1)>`
	a.must(201, req{method: "POST", path: "/v1/keys", key: a.admin, body: `{"role":"viewer","note":"` + hostile + `"}`})
	cookie, _ := a.uiSignIn(url.Values{"key": {a.admin}}, "http://example.com")
	body := a.must(200, req{method: "GET", path: "/ui/keys", cookie: cookie}).Body.String()
	if strings.Contains(body, hostile) || !strings.Contains(body, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Fatal("the key's note was not escaped")
	}
	// An expression the user typed comes back in the error, escaped.
	w := a.do(req{method: "GET", path: "/ui/schedules/preview?expression=" + url.QueryEscape("cron("+hostile+")"), cookie: cookie})
	if strings.Contains(w.Body.String(), hostile) || !strings.Contains(w.Body.String(), "&lt;img") {
		t.Fatalf("the preview's error: %s", w.Body.String())
	}
}

func TestConsoleDeployRefusesBadUploads(t *testing.T) {
	a := newTestAPI(t)
	cookie, _ := a.uiSignIn(url.Values{"key": {a.admin}}, "http://example.com")
	csrf := pageCSRF(t, a, cookie)
	upload := func(name string, content []byte) *httptest.ResponseRecorder {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		mw.WriteField("csrf", csrf)
		mw.WriteField("name", "fn")
		fw, _ := mw.CreateFormFile("zip", name)
		fw.Write(content)
		mw.Close()
		hr := httptest.NewRequest("POST", "/ui/functions", &body)
		hr.Header.Set("Content-Type", mw.FormDataContentType())
		hr.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
		w := httptest.NewRecorder()
		a.g.ServeHTTP(w, hr)
		return w
	}
	before := a.stored()
	if w := upload("notes.txt", []byte("not a zip at all")); w.Code != 400 || !strings.Contains(w.Body.String(), "is not a zip file") {
		t.Errorf("a non-zip: %d", w.Code)
	}
	big := append([]byte("PK\x03\x04"), make([]byte, 51<<20)...)
	if w := upload("big.zip", big); w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "the limit is 50 MB") {
		t.Errorf("a zip over the limit: %d", w.Code)
	}
	if w := upload("", nil); w.Code != 400 || !strings.Contains(w.Body.String(), "choose a .zip or a folder") {
		t.Errorf("no file: %d", w.Code)
	}
	if a.stored() != before {
		t.Error("a refused upload changed the state")
	}
}

// Every page an admin and a viewer can open renders, with something in
// it: a function, a schedule, a test event, a key and a user.
func TestConsolePagesRender(t *testing.T) {
	a := newTestAPI(t)
	a.deployed("default", "fn")
	a.must(200, req{method: "PUT", path: "/v1/functions/fn/test-events/first", key: a.admin, body: `{"a": 1}`})
	a.createUser("vic", "viewer", "viewer-pass-1")
	admin, _ := a.uiSignIn(url.Values{"key": {a.admin}}, "http://example.com")
	viewer, _ := a.uiSignIn(url.Values{"name": {"vic"}, "password": {"viewer-pass-1"}}, "http://example.com")
	for _, c := range []struct {
		path   string
		viewer int // the viewer's status
	}{
		{"/ui/functions", 200}, {"/ui/functions?q=f", 200}, {"/ui/functions/fn", 200}, {"/ui/functions/fn/test", 200},
		{"/ui/functions/fn/test?event=first", 200}, {"/ui/functions/fn/invocations?status=failed&since=1h", 200},
		{"/ui/functions/fn/logs", 200}, {"/ui/functions/fn/monitor", 200}, {"/ui/invocations", 200},
		{"/ui/schedules", 200}, {"/ui/schedules/preview?expression=rate(1+minute)&tz=Europe/Paris", 200},
		{"/ui/deadletters", 200}, {"/ui/subscriptions", 200}, {"/ui/playground", 403},
		{"/ui/namespaces", 403}, {"/ui/keys", 403}, {"/ui/users", 403}, {"/ui/audit", 403},
	} {
		if w := a.do(req{method: "GET", path: c.path, cookie: admin}); w.Code != 200 {
			t.Errorf("admin %s: %d %s", c.path, w.Code, w.Body.String())
		}
		if w := a.do(req{method: "GET", path: c.path, cookie: viewer}); w.Code != c.viewer {
			t.Errorf("viewer %s: %d, want %d", c.path, w.Code, c.viewer)
		}
	}
	if w := a.do(req{method: "GET", path: "/ui/functions/nosuch", cookie: admin}); w.Code != 404 {
		t.Errorf("a missing function's page: %d", w.Code)
	}
}

// A function's monitor tab charts the history over 90 days: an
// invocation a month ago, long past the minutes, is on the chart.
func TestTheMonitorTabChartsNinetyDaysOfHistory(t *testing.T) {
	a := newTestAPI(t)
	a.deployed("default", "fn")
	admin, _ := a.uiSignIn(url.Values{"key": {a.admin}}, "http://example.com")
	now := time.Now().UTC()
	old := model.Invocation{ID: "old", Namespace: "default", Function: "fn", Status: model.StatusSuccess, Start: now.Add(-30 * 24 * time.Hour),
		DurationMS: 5, BilledMS: 5, MemoryMB: 1024}
	if _, err := fsm.Apply(context.Background(), a.cp, fsm.RecordInvocations{Records: []model.Invocation{old}, Retention: model.DefaultRetention(), Now: now}); err != nil {
		t.Fatal(err)
	}
	for window, wantEmpty := range map[string]bool{"24h": true, "7d": true, "90d": false} {
		body := a.must(200, req{method: "GET", path: "/ui/functions/fn/monitor?window=" + window, cookie: admin}).Body.String()
		empty := strings.Count(body, "nothing in this window")
		if !strings.Contains(body, "Usage (GB-seconds and CPU seconds)") || (wantEmpty && empty == 0) || (!wantEmpty && empty != 0) {
			t.Errorf("window %s: %d empty charts, want them empty: %v", window, empty, wantEmpty)
		}
	}
}

// The functions page shows uiPageSize functions by name and links to the
// next page, with and without a search.
func TestTheFunctionsPageIsPaged(t *testing.T) {
	a := newTestAPI(t)
	for i := range uiPageSize + 1 {
		a.deployed("default", fmt.Sprintf("fn%03d", i))
	}
	admin, _ := a.uiSignIn(url.Values{"key": {a.admin}}, "http://example.com")
	for _, q := range []string{"", "fn"} {
		first := a.do(req{method: "GET", path: "/ui/functions?q=" + q, cookie: admin}).Body.String()
		last := fmt.Sprintf("fn%03d", uiPageSize-1)
		next := fmt.Sprintf("after=%s", last)
		if !strings.Contains(first, ">"+last+"<") || strings.Contains(first, fmt.Sprintf(">fn%03d<", uiPageSize)) || !strings.Contains(first, next) {
			t.Fatalf("q=%q: the first page should end at %s and link to the next: %s", q, last, first)
		}
		second := a.do(req{method: "GET", path: "/ui/functions?q=" + q + "&" + next, cookie: admin}).Body.String()
		if !strings.Contains(second, fmt.Sprintf(">fn%03d<", uiPageSize)) || strings.Contains(second, ">"+last+"<") {
			t.Fatalf("q=%q: the second page should hold only fn%03d: %s", q, uiPageSize, second)
		}
	}
}
