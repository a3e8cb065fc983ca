package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/notify"
	"nimbus/pkg/client"
)

// asyncInvoke posts event to function fn as an asynchronous invocation and
// returns the status and, on 202, the request id.
func (n *devNode) asyncInvoke(fn string, event []byte) (int, string) {
	n.t.Helper()
	req, err := http.NewRequest("POST", n.url+"/v1/functions/"+fn+"/invoke", bytes.NewReader(event))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(client.HeaderInvocationType, "async")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var ack struct {
		RequestID string `json:"request_id"`
	}
	if resp.StatusCode == http.StatusAccepted {
		if err := json.Unmarshal(b, &ack); err != nil || ack.RequestID == "" {
			n.t.Fatalf("202 without a request id: %s", b)
		}
	}
	return resp.StatusCode, ack.RequestID
}

// record returns the invocation record of a request id, if there is one.
func (n *devNode) record(id string) (client.Invocation, bool) {
	n.t.Helper()
	var rec client.Invocation
	status, _, b := n.do("GET", "/v1/invocations/"+id, "", nil)
	return rec, status == 200 && json.Unmarshal(b, &rec) == nil
}

// waitRecord polls the record of id until cond holds and returns it.
func (n *devNode) waitRecord(id string, timeout time.Duration, what string, cond func(client.Invocation) bool) client.Invocation {
	n.t.Helper()
	var rec client.Invocation
	var ok bool
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		rec, ok = n.record(id)
		if ok && cond(rec) {
			return rec
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("timed out after %v waiting until %s %s; last record (found %v): %+v\nnimbus output:\n%s", timeout, id, what, ok, rec, n.out.String())
		}
		<-tick.C
	}
}

// invocations lists the records of function fn, newest first.
func (n *devNode) invocations(fn string) []client.Invocation {
	n.t.Helper()
	status, _, b := n.do("GET", "/v1/invocations?limit=10000&function="+fn, "", nil)
	var out struct {
		Invocations []client.Invocation `json:"invocations"`
	}
	if status != 200 || json.Unmarshal(b, &out) != nil {
		n.t.Fatalf("GET /v1/invocations?function=%s: %d %s", fn, status, b)
	}
	return out.Invocations
}

// deadLetters is `nimbus deadletters FN -o json`.
func (n *devNode) deadLetters(fn string) []client.DeadLetter {
	n.t.Helper()
	args := []string{"deadletters", "-o", "json"}
	if fn != "" {
		args = append(args, fn)
	}
	r := n.mustCLI(0, args...)
	var dls []client.DeadLetter
	if err := json.Unmarshal([]byte(r.stdout), &dls); err != nil {
		n.t.Fatalf("deadletters -o json: %v\n%s", err, r.stdout)
	}
	return dls
}

func findDeadLetter(dls []client.DeadLetter, id string) (client.DeadLetter, bool) {
	for _, d := range dls {
		if d.RequestID == id {
			return d, true
		}
	}
	return client.DeadLetter{}, false
}

// mustDeploy deploys main.py with cfg through the JSON deploy form.
func (n *devNode) mustDeploy(name, code string, cfg map[string]any) {
	n.t.Helper()
	if cfg == nil {
		cfg = map[string]any{}
	}
	if status, e := n.deployJSON(name, cfg, zipOf(n.t, map[string]string{"main.py": code})); status != 201 && status != 200 {
		n.t.Fatalf("deploying %s: %d %+v", name, status, e)
	}
}

const echoHandler = `def handler(event, context):
    print("hello from", event.get("x"))
    return {"got": event.get("x")}
`

const raisingHandler = `def handler(event, context):
    raise ValueError("always fails")
`

func TestAsyncInvocationSucceedsWithOneAttemptAndKeepsItsLog(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustDeploy("echo", echoHandler, map[string]any{"retry_delay": "1s"})

	r := n.mustCLI(0, "invoke", "echo", "--async", "--data", `{"x": 42}`)
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	id := strings.TrimSpace(lines[0])
	if len(lines) != 1 || id == "" || strings.ContainsAny(id, " \t{") {
		t.Fatalf("invoke --async should print the request id alone, printed %q", r.stdout)
	}
	rec := n.waitRecord(id, 30*time.Second, "succeeds", func(r client.Invocation) bool { return r.Status == client.StatusSuccess })
	if rec.Attempts != 1 {
		t.Errorf("attempts = %d, want 1", rec.Attempts)
	}
	if rec.Function != "echo" || rec.Trigger != "async" {
		t.Errorf("record names function %q trigger %q, want echo and async", rec.Function, rec.Trigger)
	}
	var res struct {
		Got int `json:"got"`
	}
	if err := json.Unmarshal(rec.Result, &res); err != nil || res.Got != 42 {
		t.Errorf("result = %s, want {\"got\": 42}", rec.Result)
	}
	waitFor(t, patience, "the log of the request is stored", func() bool {
		lr := n.cli("", "logs", "echo", "--request", id)
		return lr.code == 0 && strings.Contains(lr.stdout, "hello from 42")
	})
}

func TestAsyncDeadLetterAfterRetriesAndRedrive(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustDeploy("boom", raisingHandler, map[string]any{"retries": 1, "retry_delay": "1s"})

	var ids []string
	for i := 0; i < 2; i++ {
		status, id := n.asyncInvoke("boom", []byte(`{"i": 1}`))
		if status != 202 {
			t.Fatalf("async invoke: %d", status)
		}
		ids = append(ids, id)
	}
	isDead := func(r client.Invocation) bool { return r.Status == client.StatusDeadLetter }
	for _, id := range ids {
		rec := n.waitRecord(id, 30*time.Second, "is a dead letter", isDead)
		if rec.Attempts != 2 {
			t.Errorf("%s: attempts = %d, want 2 (1 + 1 retry)", id, rec.Attempts)
		}
	}
	first, ok := findDeadLetter(n.deadLetters("boom"), ids[0])
	if !ok {
		t.Fatalf("deadletters does not list %s: %+v", ids[0], n.deadLetters("boom"))
	}
	if first.Reason != client.ReasonRetriesExhausted || first.Attempts != 2 || first.Function != "boom" || first.LastError == "" {
		t.Errorf("dead letter = %+v, want reason RetriesExhausted, 2 attempts, a last error", first)
	}
	if table := n.mustCLI(0, "deadletters").stdout; !strings.Contains(table, ids[0]) || !strings.Contains(table, "RetriesExhausted") {
		t.Errorf("nimbus deadletters does not show %s with its reason:\n%s", ids[0], table)
	}

	// Redrive one: it runs again from zero attempts and dead-letters again.
	r := n.mustCLI(0, "deadletters", "redrive", ids[0])
	if !strings.HasPrefix(r.stdout, "1 ") {
		t.Errorf("redrive printed %q, want 1 dead letter queued", r.stdout)
	}
	if _, still := findDeadLetter(n.deadLetters("boom"), ids[0]); still {
		t.Errorf("%s is still listed as a dead letter after redrive", ids[0])
	}
	if rec, _ := n.record(ids[0]); rec.Status == client.StatusDeadLetter || rec.Attempts > 1 {
		t.Errorf("right after redrive the record is %s with %d attempts, want queued or running with its attempts reset", rec.Status, rec.Attempts)
	}
	rec := n.waitRecord(ids[0], 30*time.Second, "is a dead letter again", isDead)
	if rec.Attempts != 2 {
		t.Errorf("after redrive: attempts = %d, want 2", rec.Attempts)
	}
	again, ok := findDeadLetter(n.deadLetters("boom"), ids[0])
	if !ok || !again.At.After(first.At) || again.Attempts != 2 {
		t.Errorf("after redrive the dead letter is %+v (listed %v), want a newer one with 2 attempts (first at %v)", again, ok, first.At)
	}

	// Redrive --all moves both.
	r = n.mustCLI(0, "deadletters", "redrive", "--all")
	if !strings.HasPrefix(r.stdout, "2 ") {
		t.Errorf("redrive --all printed %q, want 2 dead letters queued", r.stdout)
	}
	if dls := n.deadLetters("boom"); len(dls) != 0 {
		t.Errorf("after redrive --all, %d dead letters remain", len(dls))
	}
	for _, id := range ids {
		rec := n.waitRecord(id, 30*time.Second, "is a dead letter after redrive --all", isDead)
		if rec.Attempts != 2 {
			t.Errorf("%s after redrive --all: attempts = %d, want 2", id, rec.Attempts)
		}
	}
	n.mustCLI(3, "deadletters", "redrive", "no-such-id")
}

func TestAsyncRetrySucceedsOnTheSecondAttempt(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	// The instance stays warm between attempts: both a module-level set and
	// a file in /tmp remember the first attempt.
	n.mustDeploy("flaky", `import os

seen = set()

def handler(event, context):
    key = str(event["k"])
    marker = "/tmp/attempted-" + key
    if key not in seen and not os.path.exists(marker):
        seen.add(key)
        open(marker, "w").close()
        raise RuntimeError("the first attempt fails")
    return {"ok": True, "k": key}
`, map[string]any{"retries": 2, "retry_delay": "1s"})
	status, id := n.asyncInvoke("flaky", []byte(`{"k": "one"}`))
	if status != 202 {
		t.Fatalf("async invoke: %d", status)
	}
	rec := n.waitRecord(id, 30*time.Second, "reaches a terminal state", func(r client.Invocation) bool {
		return r.Status == client.StatusSuccess || r.Status == client.StatusDeadLetter
	})
	if rec.Status != client.StatusSuccess || rec.Attempts != 2 {
		t.Fatalf("record is %s after %d attempts, want success after 2: %+v", rec.Status, rec.Attempts, rec)
	}
	if !strings.Contains(string(rec.Result), `"one"`) {
		t.Errorf("result = %s", rec.Result)
	}
	if dls := n.deadLetters("flaky"); len(dls) != 0 {
		t.Errorf("a retried success left dead letters: %+v", dls)
	}
}

func TestAsyncSettingsOutOfRangeAreRefusedAtDeploy(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	code := zipOf(t, map[string]string{"main.py": okHandler})
	cases := []struct {
		name      string
		cfg       map[string]any
		wantInMsg string
	}{
		{"a max_event_age under a minute", map[string]any{"max_event_age": "30s"}, "max_event_age"},
		{"a max_event_age over six hours", map[string]any{"max_event_age": "7h"}, "max_event_age"},
		{"three retries", map[string]any{"retries": 3}, "retries"},
		{"negative retries", map[string]any{"retries": -1}, "retries"},
		{"a retry_delay under a second", map[string]any{"retry_delay": "500ms"}, "retry_delay"},
		{"an on_success that is neither a URL nor a function", map[string]any{"destinations": map[string]string{"on_success": "ftp://example.com/x"}}, "destinations.on_success"},
		{"an on_failure naming an invalid function", map[string]any{"destinations": map[string]string{"on_failure": "function:Bad_Name"}}, "destinations.on_failure"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, e := n.deployJSON("settings", c.cfg, code)
			if status != 400 || !strings.Contains(e.Error.Message, c.wantInMsg) {
				t.Fatalf("got %d %q, want 400 naming %s", status, e.Error.Message, c.wantInMsg)
			}
		})
	}
	if status, _, b := n.do("GET", "/v1/functions/settings", "", nil); status != 404 {
		t.Fatalf("a refused deploy created the function: %d %s", status, b)
	}
	// The bounds themselves are accepted.
	status, e := n.deployJSON("settings", map[string]any{"max_event_age": "60s", "retries": 0, "retry_delay": "1s",
		"destinations": map[string]string{"on_success": "http://127.0.0.1:9/x", "on_failure": "function:settings"}}, code)
	if status != 201 {
		t.Fatalf("deploy with settings at their bounds: %d %+v", status, e)
	}
	_, _, b := n.do("GET", "/v1/functions/settings", "", nil)
	var fn client.Function
	if err := json.Unmarshal(b, &fn); err != nil {
		t.Fatal(err)
	}
	if time.Duration(fn.MaxEventAge) != time.Minute || fn.Retries == nil || *fn.Retries != 0 || fn.Destinations == nil || fn.Destinations.OnFailure != "function:settings" {
		t.Errorf("stored function does not keep its async settings: %s", b)
	}
}

// receiver is a webhook endpoint in the test: it answers the statuses in
// script in turn (then 200) and keeps every request.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []delivery
}

type delivery struct {
	path, signature string
	body            []byte
}

func newReceiver(t *testing.T, script ...int) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, delivery{req.URL.Path, req.Header.Get(notify.SignatureHeader), b})
		n := len(r.got)
		r.mu.Unlock()
		if n <= len(script) {
			w.WriteHeader(script[n-1])
			return
		}
		w.WriteHeader(200)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// destinationRecord is the part of the Lambda-style record the tests check.
type destinationRecord struct {
	RequestContext struct {
		RequestID string `json:"requestId"`
		Condition string `json:"condition"`
	} `json:"requestContext"`
	RequestPayload  json.RawMessage `json:"requestPayload"`
	ResponsePayload json.RawMessage `json:"responsePayload"`
}

func TestAsyncDestinations(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	var secret string
	waitFor(t, patience, "the webhook secret exists", func() bool {
		r := n.cli("", "webhooks", "secret")
		secret = strings.TrimSpace(r.stdout)
		return r.code == 0 && secret != ""
	})

	t.Run("on_success URL gets a signed record", func(t *testing.T) {
		recv := newReceiver(t)
		n.mustDeploy("dest-ok", echoHandler, map[string]any{"retry_delay": "1s",
			"destinations": map[string]string{"on_success": recv.srv.URL + "/ok"}})
		status, id := n.asyncInvoke("dest-ok", []byte(`{"x": 7}`))
		if status != 202 {
			t.Fatalf("async invoke: %d", status)
		}
		waitFor(t, 30*time.Second, "the receiver gets the record", func() bool { return len(recv.deliveries()) > 0 })
		d := recv.deliveries()[0]
		if !notify.Verify(secret, d.signature, d.body) {
			t.Errorf("signature %q does not verify with the secret from `nimbus webhooks secret`", d.signature)
		}
		if notify.Verify(secret+"x", d.signature, d.body) || notify.Verify(secret, d.signature, append(d.body, ' ')) {
			t.Errorf("signature verifies with a wrong secret or a changed body")
		}
		var rec destinationRecord
		if err := json.Unmarshal(d.body, &rec); err != nil {
			t.Fatalf("body is not JSON: %v\n%s", err, d.body)
		}
		if d.path != "/ok" || rec.RequestContext.Condition != "Success" || rec.RequestContext.RequestID != id {
			t.Errorf("delivery to %s with condition %q request %q, want /ok, Success, %s\n%s", d.path, rec.RequestContext.Condition, rec.RequestContext.RequestID, id, d.body)
		}
		var resp struct {
			Got int `json:"got"`
		}
		if json.Unmarshal(rec.ResponsePayload, &resp) != nil || resp.Got != 7 {
			t.Errorf("responsePayload = %s, want {\"got\": 7}", rec.ResponsePayload)
		}
		n.waitRecord(id, 15*time.Second, "notes the delivery", func(r client.Invocation) bool {
			return strings.Contains(r.Destination, "delivered")
		})
	})

	t.Run("on_failure function receives the record as its event", func(t *testing.T) {
		n.mustDeploy("catcher", `def handler(event, context):
    ctx = event["requestContext"]
    return {"condition": ctx["condition"], "requestId": ctx["requestId"]}
`, nil)
		n.mustDeploy("dest-fail", raisingHandler, map[string]any{"retries": 0, "retry_delay": "1s",
			"destinations": map[string]string{"on_failure": "function:catcher"}})
		status, id := n.asyncInvoke("dest-fail", []byte(`{}`))
		if status != 202 {
			t.Fatalf("async invoke: %d", status)
		}
		n.waitRecord(id, 30*time.Second, "is a dead letter", func(r client.Invocation) bool { return r.Status == client.StatusDeadLetter })
		var caught client.Invocation
		waitFor(t, 30*time.Second, "the catcher's invocation succeeds", func() bool {
			for _, r := range n.invocations("catcher") {
				if r.Status == client.StatusSuccess {
					caught = r
					return true
				}
			}
			return false
		})
		if !strings.HasPrefix(caught.Trigger, "destination:") {
			t.Errorf("catcher's trigger = %q, want destination:...", caught.Trigger)
		}
		var res struct{ Condition, RequestID string }
		json.Unmarshal(caught.Result, &res)
		if res.Condition != client.ReasonRetriesExhausted || res.RequestID != id {
			t.Errorf("catcher saw condition %q request %q, want RetriesExhausted and %s (result %s)", res.Condition, res.RequestID, id, caught.Result)
		}
		if got := len(n.invocations("catcher")); got != 1 {
			t.Errorf("catcher ran %d times, want 1", got)
		}
	})

	t.Run("a receiver that fails twice still gets the record", func(t *testing.T) {
		recv := newReceiver(t, 500, 500)
		n.mustDeploy("dest-flaky", echoHandler, map[string]any{"retry_delay": "1s",
			"destinations": map[string]string{"on_success": recv.srv.URL + "/flaky"}})
		status, id := n.asyncInvoke("dest-flaky", []byte(`{"x": 1}`))
		if status != 202 {
			t.Fatalf("async invoke: %d", status)
		}
		rec := n.waitRecord(id, 40*time.Second, "notes the delivery", func(r client.Invocation) bool {
			return strings.Contains(r.Destination, "delivered")
		})
		ds := recv.deliveries()
		if len(ds) != 3 {
			t.Errorf("receiver got %d POSTs, want 3 (500, 500, 200)", len(ds))
		}
		for i, d := range ds {
			if !notify.Verify(secret, d.signature, d.body) {
				t.Errorf("POST %d: signature does not verify", i+1)
			}
			if i > 0 && !bytes.Equal(d.body, ds[0].body) {
				t.Errorf("POST %d: body differs from the first", i+1)
			}
		}
		if rec.Status != client.StatusSuccess || !strings.Contains(rec.Destination, "attempt 3") {
			t.Errorf("record: status %s, destination %q; want success, delivered on attempt 3", rec.Status, rec.Destination)
		}
	})
}

func TestAsyncBadInputIsRefusedAndQueuesNothing(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	n.mustDeploy("ok", okHandler, nil)
	big := []byte(`"` + strings.Repeat("x", 1<<20) + `"`)
	cases := []struct {
		name   string
		fn     string
		body   []byte
		status int
	}{
		{"an event over 1 MB is too large", "ok", big, 413},
		{"an event that is not JSON", "ok", []byte("{not json"), 400},
		{"an unknown function", "no-such-fn", []byte(`{}`), 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if status, id := n.asyncInvoke(c.fn, c.body); status != c.status {
				t.Fatalf("got %d (request %q), want %d", status, id, c.status)
			}
		})
	}
	if recs := n.invocations("ok"); len(recs) != 0 {
		t.Errorf("refused events left records: %+v", recs)
	}
	if dls := n.deadLetters(""); len(dls) != 0 {
		t.Errorf("refused events left dead letters: %+v", dls)
	}
	// The node still takes a good event.
	status, id := n.asyncInvoke("ok", []byte(`{}`))
	if status != 202 {
		t.Fatalf("a good event after the bad ones: %d", status)
	}
	n.waitRecord(id, 30*time.Second, "succeeds", func(r client.Invocation) bool { return r.Status == client.StatusSuccess })
}
