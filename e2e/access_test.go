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
	"time"

	"nimbus/pkg/client"
)

// newKey creates a key through the CLI with the node's admin key.
func (n *devNode) newKey(t *testing.T, args ...string) client.Key {
	t.Helper()
	r := n.mustCLI(0, append([]string{"keys", "create", "-o", "json"}, args...)...)
	var k client.Key
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil || k.Secret == "" {
		t.Fatalf("keys create: %q (%v)", r.stdout, err)
	}
	return k
}

// call sends one request with a given key and returns the status.
func (n *devNode) call(t *testing.T, key, method, path, body string) (int, http.Header) {
	t.Helper()
	status, h, _ := n.callIn(t, key, "", method, path, body)
	return status, h
}

// callIn sends one request with a given key, naming namespace ns in
// X-Nimbus-Namespace unless it is "", and returns status, headers and
// body. An event stream is closed as soon as it answers.
func (n *devNode) callIn(t *testing.T, key, ns, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, n.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if ns != "" {
		req.Header.Set(client.HeaderNamespace, ns)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.StatusCode, resp.Header, nil
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestAuthorisationMatrix checks every route against every role, acting
// in the key's own namespace and naming another one: a route a role may
// not use answers 403 and changes nothing; a non-admin key that names
// another namespace is refused with 403 on every namespaced route; an
// admin may act in any namespace.
func TestAuthorisationMatrix(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--prestart", "0")
	n.mustCLI(0, "namespaces", "create", "team-b")
	for _, ns := range []string{"default", "team-b"} {
		body, _ := json.Marshal(map[string]any{"config": map[string]any{}, "code_zip_base64": zipB64(t, okHandler)})
		if status, _, b := n.callIn(t, n.token, ns, "PUT", "/v1/functions/fn", string(body)); status != 201 {
			t.Fatalf("deploy fn in %s: %d %s", ns, status, b)
		}
	}
	deploy, _ := json.Marshal(map[string]any{"config": map[string]any{}, "code_zip_base64": zipB64(t, okHandler)})
	keys := map[string]string{"admin": n.token}
	for _, role := range []string{"developer", "viewer", "worker"} {
		keys[role] = n.newKey(t, "--role", role).Secret
	}
	// need: the least role that may use the route (r: viewer, w:
	// developer, a: admin); scoped: the route acts in one namespace.
	routes := []struct {
		method, path, body string
		need               byte
		scoped             bool
	}{
		{"GET", "/v1/functions", "", 'r', true},
		{"GET", "/v1/functions/fn", "", 'r', true},
		{"GET", "/v1/functions/fn/logs", "", 'r', true},
		{"GET", "/v1/invocations", "", 'r', true},
		{"GET", "/v1/invocations/none", "", 'r', true},
		{"GET", "/v1/events", "", 'r', true},
		{"GET", "/v1/deadletters", "", 'r', true},
		{"GET", "/v1/schedules", "", 'r', true},
		{"GET", "/v1/schedules/none", "", 'r', true},
		{"GET", "/v1/subscriptions", "", 'r', true},
		{"GET", "/v1/namespaces", "", 'r', false},
		{"GET", "/v1/namespaces/default", "", 'r', false},
		{"PUT", "/v1/functions/made-by-ROLE", string(deploy), 'w', true},
		{"POST", "/v1/functions/fn/invoke", "{}", 'w', true},
		{"DELETE", "/v1/functions/none-ROLE", "", 'w', true},
		{"PUT", "/v1/schedules/s-ROLE", `{"function":"fn","expression":"rate(1 day)"}`, 'w', true},
		{"DELETE", "/v1/schedules/none", "", 'w', true},
		{"POST", "/v1/schedules/none/enable", "", 'w', true},
		{"POST", "/v1/schedules/none/disable", "", 'w', true},
		{"POST", "/v1/deadletters/redrive", `{"all":true}`, 'w', true},
		{"GET", "/v1/webhooks/secret", "", 'w', true},
		{"POST", "/v1/subscriptions", `{"on":["failure"],"webhook":"http://127.0.0.1:1/hook"}`, 'w', true},
		{"DELETE", "/v1/subscriptions/none", "", 'w', true},
		{"GET", "/v1/keys", "", 'a', false},
		{"POST", "/v1/keys", `{"role":"viewer"}`, 'a', false},
		{"DELETE", "/v1/keys/none", "", 'a', false},
		{"GET", "/v1/audit", "", 'a', false},
		{"GET", "/v1/cluster", "", 'a', false},
		{"GET", "/metrics", "", 'a', false},
		{"POST", "/v1/cluster/workers/none/drain", "", 'a', false},
		{"DELETE", "/v1/cluster/servers/none", "", 'a', false},
		{"PUT", "/v1/namespaces/made-by-ROLE", "", 'a', false},
		{"DELETE", "/v1/namespaces/none", "", 'a', false},
		{"POST", "/v1/cluster/servers", `{"address":""}`, 'a', false},
		{"POST", "/v1/cluster/tokens", `{"role":"worker"}`, 'a', false},
		{"GET", "/v1/users", "", 'a', false},
		{"POST", "/v1/users", `{"name":"made-by-ROLE","role":"viewer","password":"long-enough-1"}`, 'a', false},
		{"DELETE", "/v1/users/none", "", 'a', false},
		{"PUT", "/v1/users/none/password", `{"password":"long-enough-2"}`, 'a', false},
		{"GET", "/v1/session", "", 'r', false},
		{"POST", "/v1/logout", "", 'r', false},
	}
	rank := map[string]int{"worker": 0, "viewer": 1, "developer": 2, "admin": 3}
	needRank := map[byte]int{'r': 1, 'w': 2, 'a': 3}
	for _, rt := range routes {
		for role, key := range keys {
			for _, other := range []bool{false, true} {
				ns, path := "", strings.ReplaceAll(rt.path, "ROLE", role)
				if other {
					ns, path = "team-b", strings.ReplaceAll(rt.path, "ROLE", role+"-in-b")
				}
				status, _, b := n.callIn(t, key, ns, rt.method, path, rt.body)
				allowed := rank[role] >= needRank[rt.need] && (!other || !rt.scoped || role == "admin")
				if allowed && (status == 401 || status == 403) {
					t.Errorf("%s %s as %s (namespace %q): %d %s, want it allowed", rt.method, path, role, ns, status, b)
				}
				if !allowed && status != 403 {
					t.Errorf("%s %s as %s (namespace %q): %d, want 403", rt.method, path, role, ns, status)
				}
			}
		}
	}
	// The admin's deploy naming team-b went there, not to default.
	if status, _, _ := n.callIn(t, n.token, "team-b", "GET", "/v1/functions/made-by-admin-in-b", ""); status != 200 {
		t.Errorf("the admin's deploy in team-b: %d", status)
	}
	if status, _, _ := n.callIn(t, n.token, "", "GET", "/v1/functions/made-by-admin-in-b", ""); status != 404 {
		t.Errorf("the admin's deploy in team-b is visible in default: %d", status)
	}
	// The audit log names who made each change, and only admins read it.
	var audit []client.AuditEntry
	waitFor(t, patience, "the audit log records the developer's deploy", func() bool {
		r := n.cli("", "audit", "-o", "json", "--limit", "1000")
		audit = nil
		if json.Unmarshal([]byte(r.stdout), &audit) != nil {
			return false
		}
		for _, e := range audit {
			if e.Role == "developer" && e.Action == "PUT /v1/functions/made-by-developer" && e.Status == 201 && e.Namespace == "default" {
				return true
			}
		}
		return false
	})
	for _, e := range audit {
		if strings.Contains(e.Action, "made-by-viewer") || strings.Contains(e.Action, "-in-b") && e.Role != "admin" || strings.HasSuffix(e.Action, "/invoke") {
			t.Errorf("the audit log holds a refused change or an invocation: %+v", e)
		}
	}
	// Refused writes changed nothing.
	for _, name := range []string{"made-by-viewer", "made-by-worker", "made-by-developer-in-b", "made-by-viewer-in-b"} {
		for _, ns := range []string{"default", "team-b"} {
			if status, _, _ := n.callIn(t, n.token, ns, "GET", "/v1/functions/"+name, ""); status != 404 {
				t.Errorf("a refused deploy created %s in %s (%d)", name, ns, status)
			}
		}
	}
	if status, _, _ := n.callIn(t, n.token, "", "GET", "/v1/namespaces/made-by-developer", ""); status != 404 {
		t.Errorf("a developer created a namespace (%d)", status)
	}
}

func zipB64(t *testing.T, src string) string {
	t.Helper()
	b, _ := json.Marshal(zipOf(t, map[string]string{"main.py": src}))
	return strings.Trim(string(b), `"`) // []byte marshals as base64
}

func TestRevokedExpiredAndRateLimitedKeys(t *testing.T) {
	parallel(t)
	data := t.TempDir()
	n := startDev(t, data, "--prestart", "0")
	viewer := n.newKey(t, "--role", "viewer")
	if status, _ := n.call(t, viewer.Secret, "GET", "/v1/functions", ""); status != 200 {
		t.Fatalf("a fresh viewer key: %d", status)
	}
	n.mustCLI(0, "keys", "revoke", viewer.ID)
	if status, _ := n.call(t, viewer.Secret, "GET", "/v1/functions", ""); status != 401 {
		t.Fatalf("a revoked key: %d, want 401", status)
	}
	short := n.newKey(t, "--role", "viewer", "--expires", "1s")
	waitFor(t, 10*time.Second, "the 1s key expires", func() bool {
		status, _ := n.call(t, short.Secret, "GET", "/v1/functions", "")
		return status == 401
	})
	limited := n.newKey(t, "--role", "viewer", "--rate-limit", "1")
	var got429 bool
	var retryAfter string
	for i := 0; i < 5 && !got429; i++ {
		status, h := n.call(t, limited.Secret, "GET", "/v1/functions", "")
		if status == 429 {
			got429, retryAfter = true, h.Get("Retry-After")
		}
	}
	if !got429 || retryAfter == "" {
		t.Fatalf("five quick requests at 1/s: 429 %v, Retry-After %q", got429, retryAfter)
	}
	if status, _ := n.call(t, n.token, "GET", "/v1/functions", ""); status != 200 {
		t.Fatal("another key was limited too")
	}
	t.Run("no secret is stored anywhere", func(t *testing.T) {
		n.stop() // flush everything to disk
		secrets := [][]byte{[]byte(secretOf(viewer.Secret)), []byte(secretOf(limited.Secret)), []byte(secretOf(n.token))}
		filepath.Walk(data, func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() || filepath.Base(p) == "admin.token" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, s := range secrets {
				if bytes.Contains(b, s) {
					t.Errorf("%s holds a key's secret", p)
				}
			}
			return nil
		})
	})
}

// secretOf returns the secret part of a key.
func secretOf(key string) string {
	return key[strings.LastIndex(key, "_")+1:]
}
