package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// A known workload in two namespaces: each reads only its own usage
// (viewer and developer keys alike), an admin reads every one, and the
// month's cost is right to the cent at each namespace's prices.
func TestUsageAndCostPerNamespace(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	viewer := a.keyIn("team", auth.RoleViewer)
	dev, _ := auth.CreateKey(ctx, a.cp, auth.RoleDeveloper, "default developer")
	now := time.Now().UTC()
	var recs []model.Invocation
	// team: 1,000 invocations of 60 s at 1 GB (60,000 GB-s); default: 400
	// of 1.5 s at 512 MB (300 GB-s), 100 of them failed.
	for i := range 1000 {
		recs = append(recs, model.Invocation{ID: fmt.Sprintf("t%d", i), Namespace: "team", Function: "etl", Status: model.StatusSuccess,
			Start: now.Add(-time.Duration(i) * time.Millisecond), DurationMS: 59999.5, BilledMS: 60000, MemoryMB: 1024, CPUMS: 10})
	}
	for i := range 400 {
		st := model.StatusSuccess
		if i%4 == 0 {
			st = model.StatusFailed
		}
		recs = append(recs, model.Invocation{ID: fmt.Sprintf("d%d", i), Namespace: "default", Function: fmt.Sprintf("f%d", i%2), Status: st,
			Start: now.Add(-time.Duration(i) * time.Millisecond), DurationMS: 1499.2, BilledMS: 1500, MemoryMB: 512})
	}
	if _, err := fsm.Apply(ctx, a.cp, fsm.RecordInvocations{Records: recs, Retention: model.DefaultRetention(), Now: now}); err != nil {
		t.Fatal(err)
	}
	usage := func(path, key string) client.Usage {
		t.Helper()
		var u client.Usage
		if err := json.Unmarshal(a.must(200, req{method: "GET", path: path, key: key}).Body.Bytes(), &u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	if u := usage("/v1/usage", viewer); len(u.Rows) != 1 || u.Rows[0].Requests != 1000 || u.Rows[0].GBSeconds != 60000 || u.Rows[0].CPUSeconds != 10 {
		t.Fatalf("team's viewer: %+v", u)
	}
	if u := usage("/v1/usage?by=function", dev); len(u.Rows) != 2 || u.Rows[0].Function != "f0" || u.Rows[0].Requests != 200 || u.Rows[0].Errors != 100 || u.Rows[1].GBSeconds != 150 {
		t.Fatalf("default's developer by function: %+v", u)
	}
	if w := a.do(req{method: "GET", path: "/v1/usage?all=1", key: viewer}); w.Code != 403 {
		t.Fatalf("a viewer asked for every namespace: %d", w.Code)
	}
	if w := a.do(req{method: "GET", path: "/v1/usage", key: viewer, namespace: "default"}); w.Code != 403 {
		t.Fatalf("team's viewer read default's usage: %d", w.Code)
	}
	if u := usage("/v1/usage?all=1&by=namespace", a.admin); len(u.Rows) != 2 || u.Rows[0].Namespace != "default" || u.Rows[0].Requests != 400 || u.Rows[1].Requests != 1000 {
		t.Fatalf("the admin by namespace: %+v", u)
	}

	// team pays the cluster's default prices; default has its own, with
	// a free tier that covers its requests.
	a.must(200, req{method: "PUT", path: "/v1/namespaces/default/prices", key: a.admin,
		body: `{"currency":"EUR","per_gb_second":0.00002,"per_million_requests":0.25,"free_gb_seconds":100,"free_requests":1000}`})
	var rep client.CostReport
	json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/usage/cost?all=1", key: a.admin}).Body.Bytes(), &rep)
	if len(rep.Namespaces) != 2 || rep.Complete || rep.Month != now.Format("2006-01") {
		t.Fatalf("cost: %+v", rep)
	}
	cents := func(v float64) int64 { return int64(math.Round(v * 100)) }
	d, team := rep.Namespaces[0], rep.Namespaces[1]
	// team: 60,000 GB-s × 0.0000166667 = 1.000002, plus 1,000 requests at
	// 0.20 a million: 1.00 USD.
	if team.Prices.Currency != "USD" || cents(team.Total) != 100 || team.BilledRequests != 1000 || math.Abs(team.ComputeCost-1.000002) > 1e-9 {
		t.Fatalf("team's cost: %+v", team)
	}
	// default: (300 - 100) GB-s × 0.00002 = 0.004 EUR, requests free.
	if d.Prices.Currency != "EUR" || d.BilledRequests != 0 || d.BilledGBSeconds != 200 || math.Abs(d.Total-0.004) > 1e-12 {
		t.Fatalf("default's cost: %+v", d)
	}
	if team.Forecast.Total < team.Total {
		t.Fatalf("a forecast below the month so far: %+v", team.Forecast)
	}
	var own client.CostReport
	json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/usage/cost", key: viewer}).Body.Bytes(), &own)
	if len(own.Namespaces) != 1 || own.Namespaces[0].Namespace != "team" {
		t.Fatalf("team's own cost: %+v", own)
	}
	// A past month with nothing in it costs nothing, complete.
	json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/usage/cost?month=2026-01", key: viewer}).Body.Bytes(), &own)
	if !own.Complete || own.Namespaces[0].Total != 0 || own.Namespaces[0].Forecast.Total != 0 {
		t.Fatalf("January: %+v", own)
	}

	for _, c := range []struct{ path, about string }{
		{"/v1/usage?by=week", "cannot group usage by"},
		{"/v1/usage?since=yesterday", "since"},
		{"/v1/usage?since=2020-01-01", "older than"},
		{"/v1/usage?by=hour&since=" + now.Add(-100*24*time.Hour).Format(time.DateOnly), "by hour"},
		{"/v1/usage?since=2026-12-02&until=2026-12-01", "empty"},
		{"/v1/usage/cost?month=2026-13", "YYYY-MM"},
		{"/v1/usage/cost?month=" + now.AddDate(0, 2, 0).Format("2006-01"), "has not begun"},
	} {
		w := a.do(req{method: "GET", path: c.path, key: viewer})
		if w.Code != 400 || !strings.Contains(errorMessage(w), c.about) {
			t.Errorf("%s: %d %s, want 400 about %q", c.path, w.Code, errorMessage(w), c.about)
		}
	}
	if w := a.do(req{method: "GET", path: "/v1/usage", key: a.admin, namespace: "nowhere"}); w.Code != 404 {
		t.Errorf("usage of a namespace that does not exist: %d", w.Code)
	}
}

// keyIn creates namespace ns and a key of role in it.
func (a *testAPI) keyIn(ns, role string) string {
	a.t.Helper()
	a.must(201, req{method: "PUT", path: "/v1/namespaces/" + ns, key: a.admin, body: `{}`})
	key, _, err := auth.CreateKeyWith(context.Background(), a.cp, auth.KeyOptions{Role: role, Namespace: ns})
	if err != nil {
		a.t.Fatal(err)
	}
	return key
}

// Provisioned instances cost their own price, on top of invocations.
func TestProvisionedInstancesCostTheirOwnPrice(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	viewer := a.keyIn("prov", auth.RoleViewer)
	now := time.Now().UTC()
	if now.Day() == 1 && now.Hour() == 0 && now.Minute() < 11 {
		t.Skip("the ten minutes would start last month")
	}
	fn := model.Function{Namespace: "prov", FunctionConfig: model.FunctionConfig{Name: "warm", Runtime: "python3.11", Handler: "main.handler", MemoryMB: 1024, Provisioned: 1}, CodeSHA256: "aa"}
	if _, err := fsm.Apply(ctx, a.cp, fsm.UpsertFunction{Function: fn, Now: now}); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{now.Add(-10 * time.Minute), now} {
		if _, err := fsm.Apply(ctx, a.cp, fsm.RecordInvocations{Retention: model.DefaultRetention(), Now: at}); err != nil {
			t.Fatal(err)
		}
	}
	var rep client.CostReport
	json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/usage/cost", key: viewer}).Body.Bytes(), &rep)
	c := rep.Namespaces[0]
	// 600 GB-s at 0.0000041667.
	if c.ProvisionedGBSeconds != 600 || math.Abs(c.ProvisionedCost-0.00250002) > 1e-12 || math.Abs(c.Total-c.ProvisionedCost) > 1e-12 || c.Forecast.ProvisionedGBSeconds < 600 {
		t.Fatalf("provisioned cost: %+v", c)
	}
}
