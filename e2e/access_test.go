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
	req, _ := http.NewRequest(method, n.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestEachRoleReachesExactlyItsRoutes checks every route against every
// role: a route a role may not use answers 403 and changes nothing.
func TestEachRoleReachesExactlyItsRoutes(t *testing.T) {
	n := startDev(t, t.TempDir(), "--prestart", "0")
	if status, e := n.deployJSON("fn", map[string]any{}, zipOf(t, map[string]string{"main.py": okHandler})); status != 201 {
		t.Fatalf("deploy: %d %+v", status, e)
	}
	deploy, _ := json.Marshal(map[string]any{"config": map[string]any{}, "code_zip_base64": zipB64(t, okHandler)})
	keys := map[string]string{"admin": n.token}
	for _, role := range []string{"developer", "viewer", "worker"} {
		keys[role] = n.newKey(t, "--role", role).Secret
	}
	// need: the least role that may use the route (r: viewer, w: developer, a: admin).
	routes := []struct {
		method, path, body string
		need               byte
	}{
		{"GET", "/v1/functions", "", 'r'},
		{"GET", "/v1/functions/fn", "", 'r'},
		{"GET", "/v1/functions/fn/logs", "", 'r'},
		{"GET", "/v1/invocations", "", 'r'},
		{"GET", "/v1/cluster", "", 'r'},
		{"GET", "/v1/deadletters", "", 'r'},
		{"GET", "/v1/schedules", "", 'r'},
		{"GET", "/v1/subscriptions", "", 'r'},
		{"GET", "/metrics", "", 'r'},
		{"PUT", "/v1/functions/made-by-ROLE", string(deploy), 'w'},
		{"POST", "/v1/functions/fn/invoke", "{}", 'w'},
		{"PUT", "/v1/schedules/s-ROLE", `{"function":"fn","expression":"rate(1 day)"}`, 'w'},
		{"POST", "/v1/deadletters/redrive", `{"all":true}`, 'w'},
		{"GET", "/v1/webhooks/secret", "", 'w'},
		{"GET", "/v1/keys", "", 'a'},
		{"POST", "/v1/keys", `{"role":"viewer"}`, 'a'},
		{"POST", "/v1/cluster/workers/none/drain", "", 'a'},
	}
	rank := map[string]int{"worker": 0, "viewer": 1, "developer": 2, "admin": 3}
	needRank := map[byte]int{'r': 1, 'w': 2, 'a': 3}
	for _, rt := range routes {
		for role, key := range keys {
			path := strings.ReplaceAll(rt.path, "ROLE", role)
			status, _ := n.call(t, key, rt.method, path, rt.body)
			allowed := rank[role] >= needRank[rt.need]
			if allowed && (status == 401 || status == 403) {
				t.Errorf("%s %s as %s: %d, want it allowed", rt.method, path, role, status)
			}
			if !allowed && status != 403 {
				t.Errorf("%s %s as %s: %d, want 403", rt.method, path, role, status)
			}
		}
	}
	// The audit log names who made each change, and only admins read it.
	var audit []client.AuditEntry
	waitFor(t, 10*time.Second, "the audit log records the developer's deploy", func() bool {
		r := n.cli("", "audit", "-o", "json", "--limit", "1000")
		audit = nil
		if json.Unmarshal([]byte(r.stdout), &audit) != nil {
			return false
		}
		for _, e := range audit {
			if e.Role == "developer" && e.Action == "PUT /v1/functions/made-by-developer" && e.Status == 201 {
				return true
			}
		}
		return false
	})
	for _, e := range audit {
		if strings.Contains(e.Action, "made-by-viewer") || strings.HasSuffix(e.Action, "/invoke") {
			t.Errorf("the audit log holds a refused change or an invocation: %+v", e)
		}
	}
	if status, _ := n.call(t, keys["viewer"], "GET", "/v1/audit", ""); status != 403 {
		t.Errorf("a viewer read the audit log: %d", status)
	}
	// Refused writes changed nothing.
	for _, role := range []string{"viewer", "worker"} {
		if status, _ := n.call(t, n.token, "GET", "/v1/functions/made-by-"+role, ""); status != 404 {
			t.Errorf("a %s key's refused deploy created a function (%d)", role, status)
		}
	}
}

func zipB64(t *testing.T, src string) string {
	t.Helper()
	b, _ := json.Marshal(zipOf(t, map[string]string{"main.py": src}))
	return strings.Trim(string(b), `"`) // []byte marshals as base64
}

func TestRevokedExpiredAndRateLimitedKeys(t *testing.T) {
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
