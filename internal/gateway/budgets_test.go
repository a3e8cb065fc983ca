package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/pkg/client"
)

// Budgets through the API: an admin sets one, a bad one is refused with
// nothing stored, the check finds the thresholds crossed once each, and
// the hard limit answers 429 BudgetExceeded (with a Retry-After to the
// month's end) until the budget is raised.
func TestBudgetsAlertOnceAndTheirHardLimitRefusesInvocations(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	dev := a.keyIn("team", auth.RoleDeveloper)
	fn := model.Function{Namespace: "team", FunctionConfig: model.FunctionConfig{Name: "f", Runtime: "python3.11", Handler: "main.handler", MemoryMB: 128}, CodeSHA256: "aa"}
	if _, err := fsm.Apply(ctx, a.cp, fsm.UpsertFunction{Function: fn, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, body, want string }{
		{"/v1/namespaces/team/budget", `{"monthly":-1}`, "above 0"},
		{"/v1/namespaces/team/budget", `{"monthly":"lots"}`, "monthly"},
		{"/v1/namespaces/team/budget", `{"monthly":5,"notify":[0]}`, "threshold 0%"},
		{"/v1/namespaces/team/budget", `{"monthly":5,"notify":[1,2,3,4,5,6,7,8,9,10,11]}`, "at most 10"},
		{"/v1/namespaces/team/budget", `{"monthly":5,"limit":1}`, "limit"},
	} {
		if w := a.do(req{method: "PUT", path: c.path, key: a.admin, body: c.body}); w.Code != 400 || !strings.Contains(errorMessage(w), c.want) {
			t.Errorf("%s: %d %s, want 400 about %q", c.body, w.Code, errorMessage(w), c.want)
		}
	}
	if w := a.do(req{method: "PUT", path: "/v1/namespaces/nowhere/budget", key: a.admin, body: `{"monthly":5}`}); w.Code != 404 {
		t.Errorf("a budget for a namespace that does not exist: %d", w.Code)
	}
	if w := a.do(req{method: "PUT", path: "/v1/namespaces/team/budget", key: dev, body: `{"monthly":5}`}); w.Code != 403 {
		t.Errorf("a developer set a budget: %d", w.Code)
	}
	var list struct{ Budgets []client.Budget }
	json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/budgets", key: dev}).Body.Bytes(), &list)
	if len(list.Budgets) != 0 {
		t.Fatalf("refused budgets were stored: %+v", list)
	}

	// 0.001 USD a request: ten requests spend 0.01, the budget.
	a.must(200, req{method: "PUT", path: "/v1/namespaces/team/prices", key: a.admin, body: `{"currency":"USD","per_million_requests":1000}`})
	a.must(200, req{method: "PUT", path: "/v1/namespaces/team/budget", key: a.admin, body: `{"monthly":0.01,"notify":[100,50,50],"hard_limit":true}`})
	now := time.Now().UTC()
	var recs []model.Invocation
	for i := range 10 {
		recs = append(recs, model.Invocation{ID: fmt.Sprint("r", i), Namespace: "team", Function: "f", Status: model.StatusSuccess, Start: now, BilledMS: 1, MemoryMB: 128})
	}
	if _, err := fsm.Apply(ctx, a.cp, fsm.RecordInvocations{Records: recs[:5], Retention: model.DefaultRetention(), Now: now}); err != nil {
		t.Fatal(err)
	}
	svc := a.g.Service()
	keys := func(as []model.BudgetAlert) []string {
		var out []string
		for _, al := range as {
			out = append(out, al.Key())
		}
		return out
	}
	alerts, err := svc.CheckBudgets(ctx, now)
	if err != nil || !strings.Contains(strings.Join(keys(alerts), ","), "spend:50") || strings.Contains(strings.Join(keys(alerts), ","), "spend:100") {
		t.Fatalf("at half the budget: %v %v", keys(alerts), err)
	}
	if err := svc.CheckBudget("team", now); err != nil {
		t.Fatalf("below the budget: %v", err)
	}
	if _, err := fsm.Apply(ctx, a.cp, fsm.RecordInvocations{Records: recs, Retention: model.DefaultRetention(), Now: now}); err != nil {
		t.Fatal(err)
	}
	alerts, _ = svc.CheckBudgets(ctx, now)
	if got := keys(alerts); len(got) != 1 || got[0] != "spend:100" {
		t.Fatalf("at the budget, only spend:100 is new: %v", got)
	}
	if again, _ := svc.CheckBudgets(ctx, now); len(again) != 0 {
		t.Fatalf("a second check alerts again: %v", keys(again))
	}
	w := a.do(req{method: "POST", path: "/v1/functions/f/invoke", key: dev, body: `{}`})
	if w.Code != 429 || !strings.Contains(w.Body.String(), "BudgetExceeded") {
		t.Fatalf("past the hard limit: %d %s", w.Code, w.Body.String())
	}
	if s, _ := strconv.Atoi(w.Header().Get("Retry-After")); s < 1 || s > 31*24*3600 {
		t.Fatalf("Retry-After %q", w.Header().Get("Retry-After"))
	}
	json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/budgets", key: dev}).Body.Bytes(), &list)
	if b := list.Budgets; len(b) != 1 || !b[0].Exceeded || b[0].Spent != 0.01 || len(b[0].Notify) != 2 || b[0].Notify[0] != 50 {
		t.Fatalf("the budget: %+v", b)
	}
	// Raised, the limit lifts at once.
	a.must(200, req{method: "PUT", path: "/v1/namespaces/team/budget", key: a.admin, body: `{"monthly":1,"notify":[50,100],"hard_limit":true}`})
	if err := svc.CheckBudget("team", now); err != nil {
		t.Fatalf("after the raise: %v", err)
	}
	if w := a.do(req{method: "GET", path: "/v1/budgets?all=1", key: dev}); w.Code != 403 {
		t.Fatalf("a developer listed every budget: %d", w.Code)
	}
	a.must(204, req{method: "DELETE", path: "/v1/namespaces/team/budget", key: a.admin})
	a.must(404, req{method: "DELETE", path: "/v1/namespaces/team/budget", key: a.admin})
}
