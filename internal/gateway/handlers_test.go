package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"nimbus/internal/auth"
	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// Each handler answers a request it cannot serve with the status and
// error code a client can act on and a message that says what is wrong,
// and the stored state is what it was before the request.
func TestHandlersRefuseBadRequestsAndKeepTheState(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	viewer, err := auth.CreateKey(ctx, a.cp, auth.RoleViewer, "a viewer")
	if err != nil {
		t.Fatal(err)
	}
	developer, err := auth.CreateKey(ctx, a.cp, auth.RoleDeveloper, "a developer")
	if err != nil {
		t.Fatal(err)
	}
	a.must(201, req{method: "PUT", path: "/v1/namespaces/team", body: `{}`, key: a.admin})
	a.deployed("default", "f")
	for i := range model.MaxTestEvents {
		a.must(200, req{method: "PUT", path: fmt.Sprintf("/v1/functions/f/test-events/e%d", i), body: `{"n":1}`, key: developer})
	}

	cases := []struct {
		name        string
		r           req
		status      int
		code, about string // the error's code, and a word its message holds
	}{
		{"no key", req{method: "GET", path: "/v1/namespaces"}, 401, "Unauthorized", ""},
		{"a key that is not one", req{method: "GET", path: "/v1/namespaces", key: "nimbus_000000000000_" + strings.Repeat("0", 64)}, 401, "Unauthorized", ""},
		{"a viewer writes", req{method: "PUT", path: "/v1/namespaces/other", body: `{}`, key: viewer}, 403, "Forbidden", ""},
		{"a developer makes a namespace", req{method: "PUT", path: "/v1/namespaces/other", body: `{}`, key: developer}, 403, "Forbidden", ""},
		{"a developer lists keys", req{method: "GET", path: "/v1/keys", key: developer}, 403, "Forbidden", ""},
		{"a namespace body that is not JSON", req{method: "PUT", path: "/v1/namespaces/other", body: `{"concurrency": `, key: a.admin}, 400, "BadRequest", "JSON"},
		{"a namespace field nobody knows", req{method: "PUT", path: "/v1/namespaces/other", body: `{"colour": "red"}`, key: a.admin}, 400, "BadRequest", "colour"},
		{"a namespace name that is not one", req{method: "PUT", path: "/v1/namespaces/Not_A_Name", body: `{}`, key: a.admin}, 400, "BadRequest", "namespace"},
		{"a negative namespace concurrency", req{method: "PUT", path: "/v1/namespaces/team", body: `{"concurrency": -1}`, key: a.admin}, 400, "BadRequest", "concurrency"},
		{"a namespace that does not exist", req{method: "DELETE", path: "/v1/namespaces/nowhere", key: a.admin}, 404, "NotFound", "nowhere"},
		{"a function that does not exist", req{method: "GET", path: "/v1/functions/nope", key: viewer}, 404, "NotFound", "nope"},
		{"removing a function that does not exist", req{method: "DELETE", path: "/v1/functions/nope", key: developer}, 404, "NotFound", "nope"},
		{"a schedule of a function that does not exist", req{method: "PUT", path: "/v1/schedules/tick", body: `{"function": "nope", "expression": "@every 1m"}`, key: developer}, 404, "NotFound", "nope"},
		{"a schedule that does not exist", req{method: "GET", path: "/v1/schedules/tick", key: viewer}, 404, "NotFound", "tick"},
		{"a subscription to no event", req{method: "POST", path: "/v1/subscriptions", body: `{"on": ["sometimes"], "webhook": "http://127.0.0.1:1/"}`, key: developer}, 400, "BadRequest", "sometimes"},
		{"a key with a role nobody has", req{method: "POST", path: "/v1/keys", body: `{"role": "superuser"}`, key: a.admin}, 400, "BadRequest", "superuser"},
		{"revoking a key that does not exist", req{method: "DELETE", path: "/v1/keys/000000000000", key: a.admin}, 404, "NotFound", ""},
		{"a user with a short password", req{method: "POST", path: "/v1/users", body: `{"name": "ada", "role": "viewer", "password": "short"}`, key: a.admin}, 400, "BadRequest", "password"},
		{"removing a user who does not exist", req{method: "DELETE", path: "/v1/users/nobody", key: a.admin}, 404, "NotFound", "nobody"},
		{"a key list limit below one", req{method: "GET", path: "/v1/keys?limit=-1", key: a.admin}, 400, "BadRequest", "limit"},
		{"a dead-letter list limit of zero", req{method: "GET", path: "/v1/deadletters?limit=0", key: viewer}, 400, "BadRequest", "limit"},
		{"an invocation list limit that is not a number", req{method: "GET", path: "/v1/invocations?limit=NaN", key: viewer}, 400, "BadRequest", "limit"},
		{"an audit limit beyond the most a list gives", req{method: "GET", path: "/v1/audit?limit=10001", key: a.admin}, 400, "BadRequest", "limit"},
		{"a key request over its size limit", req{method: "POST", path: "/v1/keys", body: `{"role": "viewer", "description": "` + strings.Repeat("x", 5000) + `"}`, key: a.admin}, 413, "PayloadTooLarge", "4 KB"},
		{"a key rate limit that limits nothing", req{method: "POST", path: "/v1/keys", body: `{"role": "viewer", "rate_limit": 1e308}`, key: a.admin}, 400, "BadRequest", "rate_limit"},
		{"an invocation record that does not exist", req{method: "GET", path: "/v1/invocations/nope", key: viewer}, 404, "NotFound", ""},
		{"a viewer publishes", req{method: "POST", path: "/v1/topics/orders/publish", body: `{}`, key: viewer}, 403, "Forbidden", ""},
		{"a topic name that is not one", req{method: "PUT", path: "/v1/topics/Not_A_Name", body: `{}`, key: developer}, 400, "BadRequest", "topic"},
		{"a topic field nobody knows", req{method: "PUT", path: "/v1/topics/orders", body: `{"colour": "red"}`, key: developer}, 400, "BadRequest", "colour"},
		{"a publish to a topic that does not exist", req{method: "POST", path: "/v1/topics/orders/publish", body: `{}`, key: developer}, 404, "NotFound", "orders"},
		{"a publish to a topic named with a namespace", req{method: "POST", path: "/v1/topics/team:orders/publish", body: `{}`, key: developer}, 400, "BadRequest", "namespace"},
		{"a publish over 256 KB", req{method: "POST", path: "/v1/topics/orders/publish", body: `"` + strings.Repeat("x", 256<<10) + `"`, key: developer}, 413, "PayloadTooLarge", "256 KB"},
		{"a viewer saves a test event", req{method: "PUT", path: "/v1/functions/f/test-events/e1", body: `{}`, key: viewer}, 403, "Forbidden", ""},
		{"a test event name with a dot", req{method: "PUT", path: "/v1/functions/f/test-events/e.1", body: `{}`, key: developer}, 400, "BadRequest", "letters, digits"},
		{"a test event name over 25 characters", req{method: "PUT", path: "/v1/functions/f/test-events/" + strings.Repeat("e", 26), body: `{}`, key: developer}, 400, "BadRequest", "1 to 25"},
		{"a test event that is not JSON", req{method: "PUT", path: "/v1/functions/f/test-events/e1", body: `{"n":`, key: developer}, 400, "BadRequest", "JSON"},
		{"an empty test event", req{method: "PUT", path: "/v1/functions/f/test-events/e1", key: developer}, 400, "BadRequest", "JSON"},
		{"a test event over 256 KB", req{method: "PUT", path: "/v1/functions/f/test-events/e1", body: `"` + strings.Repeat("x", 256<<10) + `"`, key: developer}, 413, "PayloadTooLarge", "256 KB"},
		{"an eleventh test event", req{method: "PUT", path: "/v1/functions/f/test-events/e10", body: `{}`, key: developer}, 409, "Conflict", "10 saved test events"},
		{"a test event of a function that does not exist", req{method: "PUT", path: "/v1/functions/nope/test-events/e1", body: `{}`, key: developer}, 404, "NotFound", "nope"},
		{"the test events of a function that does not exist", req{method: "GET", path: "/v1/functions/nope/test-events", key: viewer}, 404, "NotFound", "nope"},
		{"a test event that does not exist", req{method: "GET", path: "/v1/functions/f/test-events/e99", key: viewer}, 404, "NotFound", "e99"},
		{"removing a test event that does not exist", req{method: "DELETE", path: "/v1/functions/f/test-events/e99", key: developer}, 404, "NotFound", "e99"},
		{"a subscription to a topic that does not exist", req{method: "POST", path: "/v1/topics/orders/subscriptions", body: `{"function": "f"}`, key: developer}, 404, "NotFound", "orders"},
	}
	before := a.stored()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := a.do(c.r)
			var body client.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
				t.Fatalf("%s %s: %d, body %q is not the error shape", c.r.method, c.r.path, w.Code, w.Body.String())
			}
			if w.Code != c.status || body.Error.Code != c.code {
				t.Errorf("%s %s: %d %s, want %d %s (%s)", c.r.method, c.r.path, w.Code, body.Error.Code, c.status, c.code, body.Error.Message)
			}
			if !strings.Contains(strings.ToLower(body.Error.Message), strings.ToLower(c.about)) {
				t.Errorf("%s %s: message %q does not mention %q", c.r.method, c.r.path, body.Error.Message, c.about)
			}
		})
	}
	if after := a.stored(); !reflect.DeepEqual(before, after) {
		t.Errorf("refused requests changed the stored state:\nbefore %s\nafter  %s", before, after)
	}

	// A limit in range is obeyed.
	var keys struct{ Keys []client.Key }
	if err := json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/keys?limit=2", key: a.admin}).Body.Bytes(), &keys); err != nil || len(keys.Keys) != 2 {
		t.Errorf("GET /v1/keys?limit=2 of 3 keys: %d keys (%v)", len(keys.Keys), err)
	}
}

// stored sums up what the store holds that the refused requests above
// could have changed: namespaces, functions and their test events,
// schedules, topics, function URLs, subscriptions, keys and users.
func (a *testAPI) stored() string {
	s := a.cp.Store()
	var b strings.Builder
	for _, ns := range s.Namespaces() {
		j, _ := json.Marshal(ns)
		b.Write(j)
		b.WriteString(" functions ")
		for _, f := range s.Functions(ns.Name) {
			b.WriteString(f.Name + " ")
		}
		b.WriteString(" test events ")
		for _, f := range s.Functions(ns.Name) {
			j, _ := json.Marshal(s.TestEvents(f.QualifiedName()))
			b.Write(j)
		}
		b.WriteString(" schedules ")
		for _, sc := range s.Schedules(ns.Name) {
			b.WriteString(sc.Name + " ")
		}
		b.WriteString(" topics ")
		for _, tp := range s.Topics(ns.Name) {
			j, _ := json.Marshal(tp)
			b.Write(j)
		}
		j, _ = json.Marshal(s.FunctionURLs(ns.Name))
		b.WriteString(" urls ")
		b.Write(j)
		b.WriteString("\n")
	}
	j, _ := json.Marshal(s.Subscriptions())
	b.Write(j)
	b.WriteString("\n")
	for _, k := range s.Keys() {
		b.WriteString("key " + k.ID + " " + k.Role + "\n")
	}
	for _, u := range s.Users() {
		b.WriteString("user " + u.Name + " " + u.Role + "\n")
	}
	return b.String()
}
