package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"nimbus/pkg/client"
)

// The price table: anyone reads what applies to their namespace, only an
// admin sets the cluster's or a namespace's, and a bad table is refused
// with the field named and nothing stored.
func TestPricesAreReadBySomeoneAndSetByAnAdmin(t *testing.T) {
	a := newTestAPI(t)
	a.must(201, req{method: "PUT", path: "/v1/namespaces/team-a", key: a.admin, body: `{}`})
	prices := func(ns string) client.Prices {
		t.Helper()
		var p client.Prices
		w := a.must(200, req{method: "GET", path: "/v1/prices", key: a.admin, namespace: ns})
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := prices("team-a"); p.Source != "default" || p.Currency != "USD" || p.PerGBSecond != 0.0000166667 || p.PerMillionRequests != 0.2 {
		t.Fatalf("before any: %+v", p)
	}
	a.must(200, req{method: "PUT", path: "/v1/prices", key: a.admin, body: `{"currency":"EUR","per_gb_second":0.00002,"per_million_requests":0.25,"per_provisioned_gb_second":0.000005}`})
	a.must(200, req{method: "PUT", path: "/v1/namespaces/team-a/prices", key: a.admin, body: `{"currency":"EUR","per_gb_second":0.00001,"per_million_requests":0.1,"per_provisioned_gb_second":0,"free_gb_seconds":400000,"free_requests":1000000}`})
	if p := prices("team-a"); p.Source != "namespace" || p.PerGBSecond != 0.00001 || p.FreeRequests != 1000000 {
		t.Errorf("team-a: %+v", p)
	}
	if p := prices("default"); p.Source != "cluster" || p.Currency != "EUR" || p.PerMillionRequests != 0.25 {
		t.Errorf("default: %+v", p)
	}
	before := prices("team-a")
	for _, c := range []struct{ path, body, want string }{
		{"/v1/namespaces/team-a/prices", `{"currency":"EUR","per_gb_second":-1}`, "per_gb_second must be a number of 0 or more"},
		{"/v1/namespaces/team-a/prices", `{"currency":"EUR","per_gb_second":"cheap"}`, "per_gb_second"},
		{"/v1/namespaces/team-a/prices", `{"currency":"euro","per_gb_second":1}`, "three-letter ISO 4217"},
		{"/v1/namespaces/team-a/prices", `{"currency":"EUR","per_million_requests":5000}`, "a typing slip"},
		{"/v1/namespaces/team-a/prices", `{"currency":"EUR","free_requests":-5}`, "free_requests must be 0 or more"},
		{"/v1/namespaces/team-a/prices", `{"currency":"EUR","per_gb_seconds":1}`, "per_gb_seconds"},
	} {
		w := a.do(req{method: "PUT", path: c.path, key: a.admin, body: c.body})
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%s: %d %s, want 400 with %q", c.body, w.Code, w.Body.String(), c.want)
		}
	}
	if w := a.do(req{method: "PUT", path: "/v1/namespaces/nowhere/prices", key: a.admin, body: `{"currency":"EUR"}`}); w.Code != http.StatusNotFound {
		t.Errorf("an unknown namespace: %d", w.Code)
	}
	if got := prices("team-a"); got != before {
		t.Errorf("a refused table changed the prices: %+v", got)
	}
	a.createUser("dev", "developer", "developer-pass")
	cookie, csrf := a.login("dev", "developer-pass")
	if w := a.do(req{method: "PUT", path: "/v1/prices", cookie: cookie, csrf: csrf, body: `{"currency":"USD"}`}); w.Code != http.StatusForbidden {
		t.Errorf("a developer set the prices: %d", w.Code)
	}
	if w := a.do(req{method: "GET", path: "/v1/prices", cookie: cookie}); w.Code != 200 || !strings.Contains(w.Body.String(), `"source": "cluster"`) {
		t.Errorf("a developer reads the prices: %d %s", w.Code, w.Body.String())
	}
	a.must(200, req{method: "DELETE", path: "/v1/namespaces/team-a/prices", key: a.admin})
	if p := prices("team-a"); p.Source != "cluster" {
		t.Errorf("after the reset: %+v", p)
	}
}
