package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// subscriptions is GET /v1/subscriptions.
func (n *devNode) subscriptions() []client.Subscription {
	n.t.Helper()
	status, _, b := n.do("GET", "/v1/subscriptions", "", nil)
	var out struct {
		Subscriptions []client.Subscription `json:"subscriptions"`
	}
	if status != 200 || json.Unmarshal(b, &out) != nil {
		n.t.Fatalf("GET /v1/subscriptions: %d %s", status, b)
	}
	return out.Subscriptions
}

// function is GET /v1/functions/{name}; ok is false on 404.
func (n *devNode) function(name string) (client.Function, bool) {
	n.t.Helper()
	status, _, b := n.do("GET", "/v1/functions/"+name, "", nil)
	var fn client.Function
	if status == 404 {
		return fn, false
	}
	if status != 200 || json.Unmarshal(b, &fn) != nil {
		n.t.Fatalf("GET /v1/functions/%s: %d %s", name, status, b)
	}
	return fn, true
}

func TestRmRefusesWhileSomethingNamesTheFunctionAndForceRemovesItAll(t *testing.T) {
	parallel(t)
	n := startDev(t, t.TempDir())
	recv := newReceiver(t)
	n.mustDeploy("target", okHandler, nil)
	n.mustDeploy("caller", raisingHandler, map[string]any{"retries": 0, "retry_delay": "1s",
		"destinations": map[string]string{"on_failure": "function:target", "on_success": recv.srv.URL + "/ok"}})
	n.mustDeploy("bystander", okHandler, nil)
	n.mustCLI(0, "schedules", "create", "pulse", "--function", "target", "--expression", "@every 1s")
	n.mustCLI(0, "schedules", "create", "other", "--function", "bystander", "--expression", "@every 1h")
	n.mustCLI(0, "subscriptions", "create", "--on", "success", "--webhook", recv.srv.URL+"/notes", "--function", "target")
	n.mustCLI(0, "subscriptions", "create", "--on", "failure", "--webhook", recv.srv.URL+"/all")
	var subID string
	for _, s := range n.subscriptions() {
		if s.Function == "target" {
			subID = s.ID
		}
	}
	if subID == "" {
		t.Fatalf("the subscription to target is not listed: %+v", n.subscriptions())
	}
	before, _ := n.function("target")

	// Refused, naming each, and nothing changes.
	r := n.mustCLI(3, "rm", "target")
	for _, want := range []string{"pulse", subID, "caller", "--force"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("rm's refusal does not mention %q:\n%s", want, r.stderr)
		}
	}
	status, _, b := n.do("DELETE", "/v1/functions/target", "", nil)
	var e client.ErrorBody
	json.Unmarshal(b, &e)
	if status != 409 || e.Error.Code != "Conflict" {
		t.Errorf("DELETE of a named function: %d %s, want 409 Conflict", status, b)
	}
	if status, _, b := n.do("DELETE", "/v1/functions/target?force=perhaps", "", nil); status != 400 {
		t.Errorf("DELETE ?force=perhaps: %d %s, want 400", status, b)
	}
	if fn, ok := n.function("target"); !ok || fn.Revision != before.Revision {
		t.Fatalf("a refused rm changed the function: %+v (exists %v)", fn, ok)
	}
	n.schedule("pulse")
	if len(n.subscriptions()) != 2 {
		t.Errorf("a refused rm changed the subscriptions: %+v", n.subscriptions())
	}
	if caller, _ := n.function("caller"); caller.Destinations == nil || caller.Destinations.OnFailure != "function:target" {
		t.Errorf("a refused rm changed caller's destinations: %+v", caller.Destinations)
	}

	// --force removes the function and what names it, and says so.
	r = n.mustCLI(0, "rm", "target", "--force")
	for _, want := range []string{"deleted target", "pulse", subID, "caller"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("rm --force does not say it removed %q:\n%s", want, r.stdout)
		}
	}
	if _, ok := n.function("target"); ok {
		t.Errorf("target still exists after rm --force")
	}
	if status, _, b := n.do("GET", "/v1/schedules/pulse", "", nil); status != 404 {
		t.Errorf("schedule pulse still answers after rm --force: %d %s", status, b)
	}
	n.schedule("other") // a schedule of another function stays
	subs := n.subscriptions()
	if len(subs) != 1 || subs[0].Function != "" {
		t.Errorf("after rm --force the subscriptions are %+v, want only the one to every function", subs)
	}
	caller, _ := n.function("caller")
	if caller.Destinations == nil || caller.Destinations.OnFailure != "" || caller.Destinations.OnSuccess != recv.srv.URL+"/ok" {
		t.Errorf("after rm --force caller's destinations are %+v, want on_failure cleared and on_success kept", caller.Destinations)
	}

	// No schedule fires for it any more: once the events queued before
	// the rm have ended (as dead letters: the function is gone), several
	// of the schedule's periods pass with no new event and no new dead
	// letter.
	waitFor(t, 60*time.Second, "the events of target queued before the rm have ended", func() bool {
		for _, rec := range n.invocations("target") {
			if rec.Status == client.StatusQueued || rec.Status == client.StatusRunning {
				return false
			}
		}
		return true
	})
	settledDL, settledRecs := len(n.deadLetters("target")), len(n.invocations("target"))
	waitFor(t, 10*time.Second, "3 s pass after rm --force", elapsed(3*time.Second))
	if dl, recs := len(n.deadLetters("target")), len(n.invocations("target")); dl != settledDL || recs != settledRecs {
		t.Errorf("after rm --force: dead letters %d → %d, records %d → %d: something still fires the removed function", settledDL, dl, settledRecs, recs)
	}

	// A function nothing names is deleted at once, without --force.
	n.mustDeploy("lonely", okHandler, nil)
	if r := n.mustCLI(0, "rm", "lonely"); r.stdout != "deleted lonely\n" {
		t.Errorf("rm of a function nothing names printed %q", r.stdout)
	}
	n.mustCLI(3, "rm", "lonely")
}
