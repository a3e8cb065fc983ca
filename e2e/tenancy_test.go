package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// counterHandler answers with its namespace's marker and how many times
// this instance has run (a module global).
const counterHandler = `import os
count = 0
def handler(event, context):
    global count
    count += 1
    return {"marker": os.environ.get("MARKER"), "count": count, "tmp": os.listdir("/tmp")}
`

// deployIn deploys through the API in namespace ns with key.
func (n *devNode) deployIn(t *testing.T, key, ns, name string, cfg map[string]any, src string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"config": cfg, "code_zip_base64": zipB64(t, src)})
	if status, _, b := n.callIn(t, key, ns, "PUT", "/v1/functions/"+name, string(body)); status != 201 && status != 200 {
		t.Fatalf("deploy %s in %q: %d %s", name, ns, status, b)
	}
}

// TestNamespacesKeepTenantsApart checks that a key of one namespace
// cannot see, run, change or even detect another namespace's functions,
// records, logs, schedules, dead letters and subscriptions (404 when
// reached by name or ID, 403 when the namespace is named), and that two
// functions of the same name in two namespaces never share an instance.
func TestNamespacesKeepTenantsApart(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--prestart", "0")
	if r := n.mustCLI(0, "namespaces", "create", "team-b", "--concurrency", "10"); !strings.Contains(r.stdout, "team-b created") {
		t.Fatalf("namespaces create: %q", r.stdout)
	}
	if r := n.mustCLI(0, "namespaces", "ls"); !strings.Contains(r.stdout, "default") || !strings.Contains(r.stdout, "team-b") {
		t.Fatalf("namespaces ls: %q", r.stdout)
	}
	devB := n.newKey(t, "--role", "developer", "--namespace", "team-b")
	viewerB := n.newKey(t, "--role", "viewer", "--namespace", "team-b")
	if devB.Namespace != "team-b" || viewerB.Namespace != "team-b" {
		t.Fatalf("keys not bound to team-b: %+v %+v", devB, viewerB)
	}
	if r := n.cli("", "keys", "create", "--role", "developer", "--namespace", "nowhere"); r.code == 0 || !strings.Contains(r.stderr, "nowhere") {
		t.Errorf("a key for a namespace that does not exist: exit %d, %q", r.code, r.stderr)
	}
	if r := n.cli("", "keys", "create", "--role", "admin", "--namespace", "team-b"); r.code == 0 {
		t.Errorf("an admin key bound to a namespace was made")
	}

	// The same name in two namespaces: two functions, two pools.
	n.deployIn(t, n.token, "", "same", map[string]any{"env": map[string]string{"MARKER": "default"}}, counterHandler)
	n.deployIn(t, devB.Secret, "", "same", map[string]any{"env": map[string]string{"MARKER": "team-b"}}, counterHandler)
	invoke := func(key string) (string, map[string]any) {
		status, h, b := n.callIn(t, key, "", "POST", "/v1/functions/same/invoke", "{}")
		var out map[string]any
		if status != 200 || json.Unmarshal(b, &out) != nil {
			t.Fatalf("invoke: %d %s", status, b)
		}
		return h.Get(client.HeaderRequestID), out
	}
	idA, _ := invoke(n.token)
	_, second := invoke(n.token)
	_, inB := invoke(devB.Secret)
	if second["marker"] != "default" || second["count"] != float64(2) {
		t.Errorf("default's function: %v", second)
	}
	if inB["marker"] != "team-b" || inB["count"] != float64(1) {
		t.Errorf("team-b's function ran on default's instance or code: %v", inB)
	}

	// Another namespace's objects, reached by name or ID: 404, as if
	// absent. Naming the other namespace: 403.
	n.mustCLI(0, "schedules", "create", "nightly", "--function", "same", "--expression", "rate(1 day)")
	n.deployIn(t, n.token, "", "fails", map[string]any{"retries": 0}, "def handler(e, c):\n    raise ValueError('no')\n")
	status, _, b := n.callIn(t, n.token, "", "POST", "/v1/functions/fails/invoke", "{}")
	if status != 200 && status != 202 {
		t.Fatalf("invoke fails: %d %s", status, b)
	}
	req, _ := http.NewRequest("POST", n.url+"/v1/functions/fails/invoke", strings.NewReader("{}"))
	req.Header.Set("Authorization", "Bearer "+n.token)
	req.Header.Set(client.HeaderInvocationType, "async")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("async invoke: %v %v", resp, err)
	}
	dlID := resp.Header.Get(client.HeaderRequestID)
	resp.Body.Close()
	waitFor(t, 30*time.Second, "the failing event becomes a dead letter", func() bool {
		_, _, b := n.callIn(t, n.token, "", "GET", "/v1/deadletters", "")
		return strings.Contains(string(b), dlID)
	})
	_, _, b = n.callIn(t, n.token, "", "POST", "/v1/subscriptions", `{"on":["failure"],"webhook":"http://127.0.0.1:1/hook"}`)
	var sub client.Subscription
	if json.Unmarshal(b, &sub) != nil || sub.ID == "" || sub.Namespace != "default" {
		t.Fatalf("subscription: %s", b)
	}

	for _, key := range []client.Key{devB, viewerB} {
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/v1/invocations/" + idA, ""},
			{"GET", "/v1/functions/fails", ""},
			{"GET", "/v1/functions/fails/logs", ""},
			{"GET", "/v1/functions/fails/logs?request_id=" + idA, ""},
			{"GET", "/v1/schedules/nightly", ""},
			{"DELETE", "/v1/schedules/nightly", ""},
			{"POST", "/v1/schedules/nightly/disable", ""},
			{"POST", "/v1/functions/fails/invoke", "{}"},
			{"DELETE", "/v1/functions/fails", ""},
			{"POST", "/v1/deadletters/redrive", `{"ids":["` + dlID + `"]}`},
			{"DELETE", "/v1/subscriptions/" + sub.ID, ""},
		} {
			want := 404
			if key.Role == "viewer" && c.method != "GET" {
				want = 403 // a viewer is refused any write first
			}
			status, _, b := n.callIn(t, key.Secret, "", c.method, c.path, c.body)
			if status != want {
				t.Errorf("%s %s with team-b's %s key: %d %s, want %d", c.method, c.path, key.Role, status, b, want)
			}
			if status, _, _ := n.callIn(t, key.Secret, "default", c.method, c.path, c.body); status != 403 {
				t.Errorf("%s %s naming default with team-b's %s key: %d, want 403", c.method, c.path, key.Role, status)
			}
		}
		// Lists show only the key's namespace.
		for path, leak := range map[string]string{
			"/v1/functions": `"fails"`, "/v1/invocations?limit=1000": idA, "/v1/deadletters": dlID,
			"/v1/schedules": "nightly", "/v1/subscriptions": sub.ID, "/v1/functions/same/logs": idA,
			"/v1/functions/same/logs?request_id=" + idA: idA,
		} {
			status, _, b := n.callIn(t, key.Secret, "", "GET", path, "")
			if status != 200 || strings.Contains(string(b), leak) {
				t.Errorf("GET %s with team-b's %s key: %d, shows %s of default: %s", path, key.Role, status, leak, b)
			}
		}
		if status, _, b := n.callIn(t, key.Secret, "", "GET", "/v1/namespaces", ""); status != 200 || strings.Contains(string(b), `"default"`) {
			t.Errorf("team-b's key lists namespaces: %d %s", status, b)
		}
	}
	// Nothing of default's changed.
	for _, path := range []string{"/v1/functions/fails", "/v1/schedules/nightly", "/v1/invocations/" + idA} {
		if status, _, _ := n.callIn(t, n.token, "", "GET", path, ""); status != 200 {
			t.Errorf("GET %s after team-b's attempts: %d", path, status)
		}
	}
	if _, _, b := n.callIn(t, n.token, "", "GET", "/v1/deadletters", ""); !strings.Contains(string(b), dlID) {
		t.Error("team-b's redrive moved default's dead letter")
	}
	if _, _, b := n.callIn(t, n.token, "", "GET", "/v1/subscriptions", ""); !strings.Contains(string(b), sub.ID) {
		t.Error("team-b's key deleted default's subscription")
	}
	if _, _, b := n.callIn(t, n.token, "", "GET", "/v1/schedules/nightly", ""); strings.Contains(string(b), `"disabled": true`) {
		t.Error("team-b's key disabled default's schedule")
	}

	// Each namespace signs its webhooks with a secret of its own.
	secretOf := func(key string) string {
		var out struct{ Secret string }
		waitFor(t, patience, "the webhook secret exists", func() bool {
			_, _, b := n.callIn(t, key, "", "GET", "/v1/webhooks/secret", "")
			return json.Unmarshal(b, &out) == nil && out.Secret != ""
		})
		return out.Secret
	}
	if a, b := secretOf(n.token), secretOf(devB.Secret); a == b {
		t.Error("default and team-b share a webhook signing secret")
	}

	// An admin names a namespace that does not exist: 404 saying so.
	if status, _, b := n.callIn(t, n.token, "nowhere", "GET", "/v1/functions", ""); status != 404 || !strings.Contains(string(b), "nowhere") {
		t.Errorf("admin in a missing namespace: %d %s", status, b)
	}
	// A namespace that holds functions, and default, cannot be removed.
	if r := n.cli("", "namespaces", "rm", "team-b"); r.code == 0 || !strings.Contains(r.stderr, "functions") {
		t.Errorf("removing a namespace with functions: exit %d %q", r.code, r.stderr)
	}
	if r := n.cli("", "namespaces", "rm", "default"); r.code == 0 {
		t.Error("the default namespace was removed")
	}
	n.mustCLI(0, "--namespace", "team-b", "rm", "same")
	n.mustCLI(0, "namespaces", "rm", "team-b")
	// Its keys went with it, and do not come back with a namespace of the
	// same name.
	if status, _, b := n.callIn(t, devB.Secret, "", "GET", "/v1/functions", ""); status != 401 {
		t.Errorf("a key of a removed namespace: %d %s", status, b)
	}
	n.mustCLI(0, "namespaces", "create", "team-b")
	if status, _, b := n.callIn(t, viewerB.Secret, "", "GET", "/v1/functions", ""); status != 401 {
		t.Errorf("a key of a removed namespace, after one of the same name was made: %d %s", status, b)
	}
}

// TestConcurrencyLimits checks reserved concurrency and a namespace's
// limit: a synchronous invocation beyond them answers 429 naming the
// limit; asynchronous ones wait in the queue and all run, never more at
// once than the limit allows.
func TestConcurrencyLimits(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir(), "--prestart", "0")
	sleepy := "import time\ndef handler(event, context):\n    time.sleep(event.get('s', 0))\n    return {'ok': True}\n"
	n.deployIn(t, n.token, "", "one-at-a-time", map[string]any{"reserved_concurrency": 1, "timeout": 60}, sleepy)
	n.deployIn(t, n.token, "", "stopped", map[string]any{"reserved_concurrency": 0}, sleepy)

	if status, _, b := n.callIn(t, n.token, "", "POST", "/v1/functions/stopped/invoke", "{}"); status != 429 || !strings.Contains(string(b), "reserved concurrency of 0") {
		t.Errorf("a function with reserved concurrency 0: %d %s", status, b)
	}

	// Hold the one slot, then try again: 429 while it runs, 200 after.
	first := make(chan int, 1)
	go func() {
		status, _, _ := n.callIn(t, n.token, "", "POST", "/v1/functions/one-at-a-time/invoke", `{"s": 30}`)
		first <- status
	}()
	waitFor(t, 30*time.Second, "the first invocation is running", func() bool {
		_, _, b := n.callIn(t, n.token, "", "GET", "/metrics", "")
		return regexp.MustCompile(`(?m)^nimbus_invocations_in_flight 1$`).Match(b)
	})
	status, h, b := n.callIn(t, n.token, "", "POST", "/v1/functions/one-at-a-time/invoke", "{}")
	if status != 429 || !strings.Contains(string(b), "TooManyRequests") || !strings.Contains(string(b), "reserved concurrency of 1") || h.Get("Retry-After") == "" {
		t.Errorf("a second invocation beyond reserved concurrency 1: %d %s (Retry-After %q)", status, b, h.Get("Retry-After"))
	}

	// A namespace limit of 2 with 1 reserved leaves 1 for the rest.
	n.mustCLI(0, "namespaces", "create", "small", "--concurrency", "2")
	n.deployIn(t, n.token, "small", "reserved", map[string]any{"reserved_concurrency": 1}, sleepy)
	n.deployIn(t, n.token, "small", "shared", map[string]any{"timeout": 60}, sleepy)
	body, _ := json.Marshal(map[string]any{"config": map[string]any{"reserved_concurrency": 2}, "code_zip_base64": zipB64(t, sleepy)})
	if status, _, b := n.callIn(t, n.token, "small", "PUT", "/v1/functions/greedy", string(body)); status != 400 || !strings.Contains(string(b), "reserve") {
		t.Errorf("reserving more than the namespace has left: %d %s", status, b)
	}

	// Asynchronous events beyond the limit queue and all run, one at a
	// time: their runs never overlap.
	var ids []string
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("POST", n.url+"/v1/functions/shared/invoke", strings.NewReader(`{"s": 0.5}`))
		req.Header.Set("Authorization", "Bearer "+n.token)
		req.Header.Set(client.HeaderNamespace, "small")
		req.Header.Set(client.HeaderInvocationType, "async")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 202 {
			t.Fatalf("async invoke %d: %v %v", i, resp, err)
		}
		ids = append(ids, resp.Header.Get(client.HeaderRequestID))
		resp.Body.Close()
	}
	var recs []client.Invocation
	waitFor(t, 60*time.Second, "the three queued events ran", func() bool {
		recs = recs[:0]
		for _, id := range ids {
			_, _, b := n.callIn(t, n.token, "small", "GET", "/v1/invocations/"+id, "")
			var r client.Invocation
			if json.Unmarshal(b, &r) != nil || r.Status != client.StatusSuccess {
				return false
			}
			recs = append(recs, r)
		}
		return true
	})
	for i := range recs {
		for j := i + 1; j < len(recs); j++ {
			a, b := recs[i], recs[j]
			aEnd := a.Start.Add(time.Duration(a.DurationMS * float64(time.Millisecond)))
			bEnd := b.Start.Add(time.Duration(b.DurationMS * float64(time.Millisecond)))
			if a.Start.Before(bEnd) && b.Start.Before(aEnd) {
				t.Errorf("runs overlap beyond the namespace's shared concurrency of 1: %s %v+%vms and %s %v+%vms",
					a.ID, a.Start, a.DurationMS, b.ID, b.Start, b.DurationMS)
			}
		}
	}
	if got := <-first; got != 200 {
		t.Errorf("the first invocation: %d", got)
	}
	if status, _, b := n.callIn(t, n.token, "", "POST", "/v1/functions/one-at-a-time/invoke", "{}"); status != 200 {
		t.Errorf("after the slot freed: %d %s", status, b)
	}
}
