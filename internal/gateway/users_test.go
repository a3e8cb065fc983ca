package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/auth"
	"nimbus/internal/fsm"
	"nimbus/internal/state"
	"nimbus/pkg/client"
)

// fakeControl applies commands straight to an FSM, as a one-node
// cluster would once they commit.
type fakeControl struct {
	fsm.Writer
	store   *state.Store
	servers []client.Server // the Raft configuration (nil: none)
}

func (c *fakeControl) Store() *state.Store { return c.store }

func (c *fakeControl) Servers(func(string) string) []client.Server { return c.servers }

type testAPI struct {
	t     *testing.T
	g     *Gateway
	cp    *fakeControl
	admin string // an admin API key
	close func() // flushes the audit batcher; safe to call twice
}

func newTestAPI(t *testing.T) *testAPI {
	t.Helper()
	return newTestAPIWith(t, func(*Config) {})
}

// newTestAPIWith is newTestAPI with its gateway's Config changed by set.
func newTestAPIWith(t *testing.T, set func(*Config)) *testAPI {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := state.New()
	cp := &fakeControl{store: s, Writer: fsm.Direct(fsm.New(s, log))}
	cfg := Config{Control: cp, Registry: prometheus.NewRegistry(), Log: log, APIAddr: "test"}
	set(&cfg)
	g := New(cfg)
	closeOnce := sync.OnceFunc(g.Close)
	t.Cleanup(closeOnce)
	admin, err := auth.CreateKey(context.Background(), cp, auth.RoleAdmin, "test")
	if err != nil {
		t.Fatal(err)
	}
	return &testAPI{t: t, g: g, cp: cp, admin: admin, close: closeOnce}
}

// req describes one request: a bearer key, or a session cookie and a
// CSRF header.
type req struct {
	method, path, body string
	key                string
	cookie             string
	csrf               string
	contentType        string
	namespace          string // X-Nimbus-Namespace
}

func (a *testAPI) do(r req) *httptest.ResponseRecorder {
	a.t.Helper()
	hr := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
	hr.RemoteAddr = "192.0.2.1:1234"
	if r.key != "" {
		hr.Header.Set("Authorization", "Bearer "+r.key)
	}
	if r.cookie != "" {
		hr.AddCookie(&http.Cookie{Name: sessionCookie, Value: r.cookie})
	}
	if r.csrf != "" {
		hr.Header.Set("X-CSRF-Token", r.csrf)
	}
	if r.namespace != "" {
		hr.Header.Set(client.HeaderNamespace, r.namespace)
	}
	if r.body != "" {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	}
	w := httptest.NewRecorder()
	a.g.ServeHTTP(w, hr)
	return w
}

func (a *testAPI) must(status int, r req) *httptest.ResponseRecorder {
	a.t.Helper()
	w := a.do(r)
	if w.Code != status {
		a.t.Fatalf("%s %s: %d, want %d: %s", r.method, r.path, w.Code, status, w.Body.String())
	}
	return w
}

func (a *testAPI) createUser(name, role, password string) {
	a.t.Helper()
	b, _ := json.Marshal(client.UserRequest{Name: name, Role: role, Password: password})
	a.must(201, req{method: "POST", path: "/v1/users", body: string(b), key: a.admin})
}

// login returns the session cookie's value and the CSRF token.
func (a *testAPI) login(name, password string) (string, string) {
	a.t.Helper()
	b, _ := json.Marshal(map[string]string{"name": name, "password": password})
	w := a.must(200, req{method: "POST", path: "/v1/login", body: string(b)})
	var s client.Session
	json.Unmarshal(w.Body.Bytes(), &s)
	for _, c := range w.Result().Cookies() {
		if c.Name == sessionCookie {
			return c.Value, s.CSRFToken
		}
	}
	a.t.Fatal("login set no session cookie")
	return "", ""
}

func errorMessage(w *httptest.ResponseRecorder) string {
	var e client.ErrorBody
	json.Unmarshal(w.Body.Bytes(), &e)
	return e.Error.Message
}

func TestLoginSetsAStrictCookieAndAnswersWhoAndTheCSRFToken(t *testing.T) {
	a := newTestAPI(t)
	a.createUser("ada", "developer", "lovelace-1815")
	w := a.must(200, req{method: "POST", path: "/v1/login", body: `{"name":"ada","password":"lovelace-1815"}`})
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if c.Name != "nimbus_session" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.MaxAge != 12*3600 {
		t.Fatalf("cookie %+v", c)
	}
	var s client.Session
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if s.User != "ada" || s.Role != "developer" || s.CSRFToken != auth.CSRFToken(c.Value) || s.ExpiresAt.IsZero() {
		t.Fatalf("login answer %+v", s)
	}
	if w.Header().Get("Cache-Control") != "no-store" {
		t.Error("the login answer may be cached")
	}
	got := a.must(200, req{method: "GET", path: "/v1/session", cookie: c.Value})
	var again client.Session
	json.Unmarshal(got.Body.Bytes(), &again)
	if again.User != "ada" || again.CSRFToken != s.CSRFToken {
		t.Fatalf("GET /v1/session: %+v", again)
	}
	// A login that is not JSON is refused, so no HTML form elsewhere can
	// log a browser in.
	a.must(415, req{method: "POST", path: "/v1/login", body: "name=ada&password=lovelace-1815", contentType: "application/x-www-form-urlencoded"})
}

func TestWrongNameAndWrongPasswordAnswerAlike(t *testing.T) {
	a := newTestAPI(t)
	a.createUser("ada", "viewer", "lovelace-1815")
	wrongPw := a.must(401, req{method: "POST", path: "/v1/login", body: `{"name":"ada","password":"babbage-1791"}`})
	noUser := a.must(401, req{method: "POST", path: "/v1/login", body: `{"name":"charles","password":"lovelace-1815"}`})
	if wrongPw.Body.String() != noUser.Body.String() || len(wrongPw.Result().Cookies()) != 0 {
		t.Fatalf("wrong password %q, unknown user %q", wrongPw.Body.String(), noUser.Body.String())
	}
	if len(a.cp.store.Sessions()) != 0 {
		t.Fatal("a failed login made a session")
	}
}

func TestCookieRequestsNeedTheCSRFTokenToChangeThings(t *testing.T) {
	a := newTestAPI(t)
	a.createUser("root", "admin", "rootpass-1")
	cookie, csrf := a.login("root", "rootpass-1")
	a.must(200, req{method: "GET", path: "/v1/functions", cookie: cookie})
	body := `{"name":"eve","role":"admin","password":"eve-password"}`
	flipped := "0" + csrf[1:] // one character off
	if csrf[0] == '0' {
		flipped = "1" + csrf[1:]
	}
	for _, bad := range []string{"", flipped, auth.CSRFToken(cookie[:17] + strings.Repeat("0", 64))} {
		w := a.must(403, req{method: "POST", path: "/v1/users", body: body, cookie: cookie, csrf: bad})
		if errorMessage(w) == "" || !strings.Contains(errorMessage(w), "missing or wrong CSRF token") {
			t.Fatalf("message %q", errorMessage(w))
		}
	}
	if _, err := a.cp.store.User("eve"); err == nil {
		t.Fatal("a request without the CSRF token created a user")
	}
	a.must(201, req{method: "POST", path: "/v1/users", body: body, cookie: cookie, csrf: csrf})
	// Another session's token does not do.
	other, _ := a.login("root", "rootpass-1")
	a.must(403, req{method: "DELETE", path: "/v1/users/eve", cookie: other, csrf: csrf})
	// A bearer key needs no CSRF token (no browser sends it by itself).
	a.must(200, req{method: "DELETE", path: "/v1/users/eve", key: a.admin, cookie: cookie})
	// The audit log names the user.
	a.close()
	var sawLogin, sawCreate bool
	for _, e := range a.cp.store.Audit(0) {
		sawLogin = sawLogin || (e.KeyID == "user:root" && e.Action == "POST /v1/login")
		sawCreate = sawCreate || (e.KeyID == "user:root" && e.Role == "admin" && e.Action == "POST /v1/users" && e.Status == 201)
	}
	if !sawLogin || !sawCreate {
		t.Fatalf("audit %+v", a.cp.store.Audit(0))
	}
}

func TestASessionHasItsUsersRole(t *testing.T) {
	a := newTestAPI(t)
	a.createUser("vic", "viewer", "viewer-pass")
	a.createUser("dev", "developer", "developer-pass")
	viewer, vcsrf := a.login("vic", "viewer-pass")
	dev, dcsrf := a.login("dev", "developer-pass")
	a.must(200, req{method: "GET", path: "/v1/functions", cookie: viewer})
	w := a.must(403, req{method: "DELETE", path: "/v1/schedules/none", cookie: viewer, csrf: vcsrf})
	if !strings.Contains(errorMessage(w), "viewer user") {
		t.Fatalf("message %q", errorMessage(w))
	}
	a.must(404, req{method: "DELETE", path: "/v1/schedules/none", cookie: dev, csrf: dcsrf}) // allowed; nothing there
	a.must(403, req{method: "GET", path: "/v1/users", cookie: dev})
}

func TestLogoutAndDeletionEndSessions(t *testing.T) {
	a := newTestAPI(t)
	a.createUser("ada", "viewer", "lovelace-1815")
	cookie, csrf := a.login("ada", "lovelace-1815")
	a.must(403, req{method: "POST", path: "/v1/logout", cookie: cookie})
	w := a.must(200, req{method: "POST", path: "/v1/logout", cookie: cookie, csrf: csrf})
	if c := w.Result().Cookies(); len(c) != 1 || c[0].MaxAge >= 0 {
		t.Fatalf("logout did not clear the cookie: %+v", c)
	}
	a.must(401, req{method: "GET", path: "/v1/functions", cookie: cookie})
	a.must(400, req{method: "POST", path: "/v1/logout", key: a.admin})

	cookie, _ = a.login("ada", "lovelace-1815")
	a.must(200, req{method: "DELETE", path: "/v1/users/ada", key: a.admin})
	a.must(401, req{method: "GET", path: "/v1/functions", cookie: cookie})
	a.must(404, req{method: "DELETE", path: "/v1/users/ada", key: a.admin})
	a.must(401, req{method: "GET", path: "/v1/functions", cookie: "garbage"})
}

func TestUserAdministration(t *testing.T) {
	a := newTestAPI(t)
	for _, c := range []struct {
		body, want string
	}{
		{`{"name":"ada","role":"viewer","password":"short"}`, "at least 8"},
		{`{"name":"Ada","role":"viewer","password":"long-enough"}`, "user name"},
		{`{"name":"ada","role":"worker","password":"long-enough"}`, "role"},
		{`{"name":"ada","role":"admin","namespace":"team-a","password":"long-enough"}`, "no namespace"},
		{`{"name":"ada","role":"viewer","password":"long-enough","extra":1}`, "unknown field"},
	} {
		w := a.must(400, req{method: "POST", path: "/v1/users", body: c.body, key: a.admin})
		if !strings.Contains(errorMessage(w), c.want) || strings.Contains(w.Body.String(), "long-enough") {
			t.Errorf("%s: %q", c.body, errorMessage(w))
		}
	}
	if w := a.must(404, req{method: "POST", path: "/v1/users", key: a.admin,
		body: `{"name":"ada","role":"viewer","namespace":"nowhere","password":"long-enough"}`}); !strings.Contains(errorMessage(w), "nowhere") {
		t.Errorf("a user in a namespace that does not exist: %q", errorMessage(w))
	}
	a.must(201, req{method: "PUT", path: "/v1/namespaces/team-a", key: a.admin})
	a.must(201, req{method: "POST", path: "/v1/users", key: a.admin,
		body: `{"name":"ada","role":"developer","namespace":"team-a","password":"lovelace-1815"}`})
	a.must(409, req{method: "POST", path: "/v1/users", key: a.admin, body: `{"name":"ada","role":"viewer","password":"another-one"}`})
	w := a.must(200, req{method: "GET", path: "/v1/users", key: a.admin})
	if strings.Contains(w.Body.String(), "argon2") || strings.Contains(w.Body.String(), "hash") {
		t.Fatalf("the user list shows a hash: %s", w.Body.String())
	}
	var list struct{ Users []client.User }
	json.Unmarshal(w.Body.Bytes(), &list)
	if len(list.Users) != 1 || list.Users[0].Name != "ada" || list.Users[0].Namespace != "team-a" || list.Users[0].Role != "developer" {
		t.Fatalf("users %+v", list.Users)
	}
	// The namespace reaches the session's principal.
	cookie, _ := a.login("ada", "lovelace-1815")
	var s client.Session
	json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/session", cookie: cookie}).Body.Bytes(), &s)
	if s.Namespace != "team-a" {
		t.Fatalf("session %+v", s)
	}
}

func TestPasswordChanges(t *testing.T) {
	a := newTestAPI(t)
	a.createUser("ada", "viewer", "lovelace-1815")
	a.createUser("bob", "viewer", "bob-password")
	first, csrf := a.login("ada", "lovelace-1815")
	second, _ := a.login("ada", "lovelace-1815")
	bob, bcsrf := a.login("bob", "bob-password")
	// Not someone else's, even with the right current password.
	a.must(403, req{method: "PUT", path: "/v1/users/ada/password", cookie: bob, csrf: bcsrf,
		body: `{"password":"bob-owns-ada","current_password":"lovelace-1815"}`})
	// Their own, only with the current password.
	a.must(403, req{method: "PUT", path: "/v1/users/ada/password", cookie: first, csrf: csrf, body: `{"password":"new-password-1"}`})
	a.must(403, req{method: "PUT", path: "/v1/users/ada/password", cookie: first, csrf: csrf,
		body: `{"password":"new-password-1","current_password":"wrong-one!"}`})
	a.must(400, req{method: "PUT", path: "/v1/users/ada/password", cookie: first, csrf: csrf,
		body: `{"password":"short","current_password":"lovelace-1815"}`})
	a.must(200, req{method: "PUT", path: "/v1/users/ada/password", cookie: first, csrf: csrf,
		body: `{"password":"new-password-1","current_password":"lovelace-1815"}`})
	a.must(200, req{method: "GET", path: "/v1/functions", cookie: first})  // the session that changed it
	a.must(401, req{method: "GET", path: "/v1/functions", cookie: second}) // any other ended
	a.must(401, req{method: "POST", path: "/v1/login", body: `{"name":"ada","password":"lovelace-1815"}`})
	a.login("ada", "new-password-1")
	// An admin sets anyone's, without the current one; that ends all their sessions.
	a.must(200, req{method: "PUT", path: "/v1/users/ada/password", key: a.admin, body: `{"password":"admin-chose-it"}`})
	a.must(401, req{method: "GET", path: "/v1/functions", cookie: first})
	a.login("ada", "admin-chose-it")
	a.must(404, req{method: "PUT", path: "/v1/users/nobody/password", key: a.admin, body: `{"password":"admin-chose-it"}`})
}

func TestLoginsAreLimitedPerAddress(t *testing.T) {
	a := newTestAPI(t)
	var got429 bool
	for i := 0; i < 20 && !got429; i++ {
		w := a.do(req{method: "POST", path: "/v1/login", body: `{"name":"x","password":"y"}`})
		got429 = w.Code == 429 && w.Header().Get("Retry-After") != ""
	}
	if !got429 {
		t.Fatal("twenty quick logins from one address were not limited")
	}
}
