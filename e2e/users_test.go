package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nimbus/pkg/client"
)

// browser is what a dashboard page holds after logging in: the session
// cookie (sent by the browser) and the CSRF token (kept by the page).
type browser struct {
	n            *devNode
	cookie, csrf string
	setCookie    string // the raw Set-Cookie header of the login
}

// login posts a name and password and returns the status and, on 200,
// the session.
func (n *devNode) login(t *testing.T, name, password string) (int, *browser) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"name": name, "password": password})
	resp, err := http.Post(n.url+"/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return resp.StatusCode, &browser{n: n, setCookie: string(b)}
	}
	var s client.Session
	if err := json.Unmarshal(b, &s); err != nil || s.CSRFToken == "" || s.User != name {
		t.Fatalf("login answer %s (%v)", b, err)
	}
	br := &browser{n: n, csrf: s.CSRFToken, setCookie: resp.Header.Get("Set-Cookie")}
	for _, c := range resp.Cookies() {
		if c.Name == "nimbus_session" {
			br.cookie = c.Value
		}
	}
	if br.cookie == "" {
		t.Fatalf("login set no session cookie: %q", br.setCookie)
	}
	return 200, br
}

// call sends a request as the browser would: the cookie always, the CSRF
// header when withCSRF.
func (b *browser) call(t *testing.T, withCSRF bool, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, b.n.url+path, strings.NewReader(body))
	req.AddCookie(&http.Cookie{Name: "nimbus_session", Value: b.cookie})
	if withCSRF {
		req.Header.Set("X-CSRF-Token", b.csrf)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func TestUsersSessionsAndCSRF(t *testing.T) {
	parallel(t)
	data := t.TempDir()
	n := startDev(t, data, "--prestart", "0")
	const adaPw, vicPw, vicPw2 = "Ada-Lovelace-1815", "Vic-Viewer-2024", "Vic-Changed-2025"
	n.mustCLI(2, "users", "create", "ada", "--role", "developer") // no --password-stdin
	if r := n.cli(adaPw+"\n", "users", "create", "ada", "--role", "developer", "--password-stdin"); r.code != 0 || !strings.Contains(r.stdout, "user ada (developer) created") {
		t.Fatalf("users create: %+v", r)
	}
	if r := n.cli(vicPw+"\n", "users", "create", "vic", "--role", "viewer", "--namespace", "team-v", "--password-stdin"); r.code != 3 || !strings.Contains(r.stderr, "team-v") {
		t.Fatalf("a user for a namespace that does not exist: %+v", r)
	}
	n.mustCLI(0, "namespaces", "create", "team-v")
	if r := n.cli(vicPw+"\n", "users", "create", "vic", "--role", "viewer", "--namespace", "team-v", "--password-stdin"); r.code != 0 {
		t.Fatalf("users create vic: %+v", r)
	}
	if r := n.cli(adaPw+"\n", "users", "create", "ada", "--role", "viewer", "--password-stdin"); r.code != 3 || !strings.Contains(r.stderr, "exists") {
		t.Fatalf("a second ada: %+v", r)
	}
	if r := n.cli("short\n", "users", "create", "bob", "--role", "viewer", "--password-stdin"); r.code != 3 || !strings.Contains(r.stderr, "at least 8") {
		t.Fatalf("a short password: %+v", r)
	}
	r := n.mustCLI(0, "users", "ls", "-o", "json")
	var users []client.User
	if err := json.Unmarshal([]byte(r.stdout), &users); err != nil || len(users) != 2 || users[1].Name != "vic" || users[1].Namespace != "team-v" {
		t.Fatalf("users ls: %s (%v)", r.stdout, err)
	}
	if strings.Contains(r.stdout, "argon2") || strings.Contains(r.stdout, "hash") {
		t.Fatalf("users ls shows a hash: %s", r.stdout)
	}

	// Wrong password and unknown user: the same 401.
	status, wrongPw := n.login(t, "ada", "not-her-password")
	status2, noUser := n.login(t, "nobody", adaPw)
	if status != 401 || status2 != 401 || wrongPw.setCookie != noUser.setCookie {
		t.Fatalf("wrong password %d %q; unknown user %d %q", status, wrongPw.setCookie, status2, noUser.setCookie)
	}

	_, ada := n.login(t, "ada", adaPw)
	for _, attr := range []string{"HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age="} {
		if !strings.Contains(ada.setCookie, attr) {
			t.Errorf("the session cookie lacks %s: %q", attr, ada.setCookie)
		}
	}
	if status, _ := ada.call(t, false, "GET", "/v1/functions", ""); status != 200 {
		t.Fatalf("GET with the cookie: %d", status)
	}
	deploy, _ := json.Marshal(map[string]any{"config": map[string]any{}, "code_zip_base64": zipB64(t, okHandler)})
	if status, body := ada.call(t, false, "PUT", "/v1/functions/by-ada", string(deploy)); status != 403 || !strings.Contains(string(body), "missing or wrong CSRF token") {
		t.Fatalf("a deploy without the CSRF token: %d %s", status, body)
	}
	if status, _ := n.call(t, n.token, "GET", "/v1/functions/by-ada", ""); status != 404 {
		t.Fatalf("the refused deploy created the function (%d)", status)
	}
	if status, body := ada.call(t, true, "PUT", "/v1/functions/by-ada", string(deploy)); status != 201 {
		t.Fatalf("a deploy with the CSRF token: %d %s", status, body)
	}

	_, vic := n.login(t, "vic", vicPw)
	if status, _ := vic.call(t, true, "PUT", "/v1/functions/by-vic", string(deploy)); status != 403 {
		t.Fatalf("a viewer deployed: %d", status)
	}
	if status, body := vic.call(t, false, "GET", "/v1/session", ""); status != 200 || !strings.Contains(string(body), `"team-v"`) {
		t.Fatalf("GET /v1/session as vic: %d %s", status, body)
	}
	// vic's session acts in team-v: ada's function in default is not there.
	if status, _ := vic.call(t, false, "GET", "/v1/functions/by-ada", ""); status != 404 {
		t.Fatalf("vic (team-v) reads default's function: %d", status)
	}

	// The audit log names the user.
	waitFor(t, patience, "the audit log records ada's deploy", func() bool {
		var audit []client.AuditEntry
		json.Unmarshal([]byte(n.cli("", "audit", "-o", "json").stdout), &audit)
		for _, e := range audit {
			if e.KeyID == "user:ada" && e.Role == "developer" && e.Action == "PUT /v1/functions/by-ada" && e.Status == 201 {
				return true
			}
		}
		return false
	})

	// Logout needs the CSRF token too, and ends the session.
	if status, _ := ada.call(t, false, "POST", "/v1/logout", ""); status != 403 {
		t.Fatalf("logout without the CSRF token: %d", status)
	}
	if status, _ := ada.call(t, true, "POST", "/v1/logout", ""); status != 200 {
		t.Fatalf("logout: %d", status)
	}
	if status, _ := ada.call(t, false, "GET", "/v1/functions", ""); status != 401 {
		t.Fatalf("GET after logout: %d", status)
	}

	// A removed user's session ends with them.
	_, again := n.login(t, "ada", adaPw)
	n.mustCLI(0, "users", "rm", "ada")
	if status, _ := again.call(t, false, "GET", "/v1/functions", ""); status != 401 {
		t.Fatalf("a removed user's session: %d", status)
	}
	if status, _ := n.login(t, "ada", adaPw); status != 401 {
		t.Fatalf("a removed user logged in: %d", status)
	}

	// A new password ends the old sessions and replaces the old password.
	n.mustCLI(2, "users", "passwd", "vic")
	if r := n.cli(vicPw2+"\n", "users", "passwd", "vic", "--password-stdin"); r.code != 0 {
		t.Fatalf("users passwd: %+v", r)
	}
	if status, _ := vic.call(t, false, "GET", "/v1/functions", ""); status != 401 {
		t.Fatalf("a session from before the password change: %d", status)
	}
	if status, _ := n.login(t, "vic", vicPw); status != 401 {
		t.Fatal("the old password still logs in")
	}
	_, vic2 := n.login(t, "vic", vicPw2)

	t.Run("no password or session token is stored anywhere", func(t *testing.T) {
		n.stop() // flush everything to disk
		secrets := []string{adaPw, vicPw, vicPw2}
		for _, b := range []*browser{ada, vic, again, vic2} {
			secrets = append(secrets, b.cookie, b.cookie[strings.Index(b.cookie, "_")+1:], b.csrf)
		}
		var files, hashes int
		filepath.Walk(data, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return nil
			}
			files++
			content, _ := os.ReadFile(p)
			hashes += bytes.Count(content, []byte("$argon2id$"))
			for _, s := range secrets {
				if bytes.Contains(content, []byte(s)) {
					t.Errorf("%s holds the secret %q", p, s)
				}
			}
			return nil
		})
		if files == 0 || hashes == 0 {
			t.Fatalf("the data directory (%d files) holds no password hash: the search looked in the wrong place", files)
		}
		out := n.out.String()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("the server's output holds the secret %q", s)
			}
		}
	})
}
