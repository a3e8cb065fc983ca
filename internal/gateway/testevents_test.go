package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// deployed stores function name of namespace ns (no code: the routes
// here never run it).
func (a *testAPI) deployed(ns, name string) {
	a.t.Helper()
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: name, Runtime: "python3.11", Handler: "main.handler", MemoryMB: 128}, Namespace: ns, CodeSHA256: "aa"}
	if _, err := fsm.Apply(context.Background(), a.cp, fsm.UpsertFunction{Function: fn, Now: time.Now()}); err != nil {
		a.t.Fatal(err)
	}
}

func TestTestEventsAreSavedListedReadAndRemovedPerFunction(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	developer, err := auth.CreateKey(ctx, a.cp, auth.RoleDeveloper, "a developer")
	if err != nil {
		t.Fatal(err)
	}
	a.deployed("default", "hello")
	a.deployed("default", "other")
	w := a.must(200, req{method: "PUT", path: "/v1/functions/hello/test-events/order_1", body: `{"id": 1, "items": [2, 3]}`, key: developer})
	var saved client.TestEvent
	if err := json.Unmarshal(w.Body.Bytes(), &saved); err != nil || saved.Name != "order_1" || saved.Function != "hello" ||
		compact(saved.Event) != `{"id":1,"items":[2,3]}` || saved.UpdatedAt.IsZero() || saved.UpdatedBy == "" || saved.UpdatedBy == "user:" {
		t.Fatalf("saved: %s %v", w.Body, err)
	}
	a.must(200, req{method: "PUT", path: "/v1/functions/hello/test-events/empty-list", body: `[]`, key: developer})
	a.must(200, req{method: "PUT", path: "/v1/functions/hello/test-events/order_1", body: `{"id": 2}`, key: developer})

	var list struct {
		TestEvents []client.TestEvent `json:"test_events"`
	}
	json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/functions/hello/test-events", key: a.admin}).Body.Bytes(), &list)
	if len(list.TestEvents) != 2 || list.TestEvents[0].Name != "empty-list" || compact(list.TestEvents[1].Event) != `{"id":2}` {
		t.Fatalf("listed: %+v", list.TestEvents)
	}
	// Another function's list is its own, and empty is [], not null.
	w = a.must(200, req{method: "GET", path: "/v1/functions/other/test-events", key: a.admin})
	if got := compact(w.Body.Bytes()); got != `{"test_events":[]}` {
		t.Fatalf("another function's list: %s", got)
	}
	var one client.TestEvent
	json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/functions/hello/test-events/order_1", key: a.admin}).Body.Bytes(), &one)
	if compact(one.Event) != `{"id":2}` || one.Namespace != "default" {
		t.Fatalf("got: %+v", one)
	}
	a.must(204, req{method: "DELETE", path: "/v1/functions/hello/test-events/order_1", key: developer})
	a.must(404, req{method: "GET", path: "/v1/functions/hello/test-events/order_1", key: a.admin})

	// Removing the function removes what it had saved.
	if _, err := fsm.Apply(ctx, a.cp, fsm.RemoveFunction{Name: "hello"}); err != nil {
		t.Fatal(err)
	}
	a.deployed("default", "hello")
	if got := a.cp.Store().TestEvents("default/hello"); got != nil {
		t.Fatalf("a function deployed again found its predecessor's test events: %+v", got)
	}
}

func compact(b []byte) string {
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return "not JSON: " + string(b)
	}
	return out.String()
}
