package gateway

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"nimbus/internal/auth"
	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/waitfor"
	"nimbus/pkg/client"
)

func (a *testAPI) points(path, key string) []client.MetricPoint {
	a.t.Helper()
	var out struct {
		Points []client.MetricPoint `json:"points"`
	}
	if err := json.Unmarshal(a.must(200, req{method: "GET", path: path, key: key}).Body.Bytes(), &out); err != nil {
		a.t.Fatal(err)
	}
	return out.Points
}

func TestTheMetricsQueryAnswersAPointPerStepFromTheReplicatedHistory(t *testing.T) {
	a := newTestAPI(t)
	ctx := context.Background()
	viewer, err := auth.CreateKey(ctx, a.cp, auth.RoleViewer, "a viewer")
	if err != nil {
		t.Fatal(err)
	}
	a.deployed("default", "f")
	a.deployed("default", "g")
	now := time.Now().UTC()
	ok := model.Invocation{ID: "r1", Namespace: "default", Function: "f", Status: model.StatusSuccess, Start: now, DurationMS: 20, ColdStart: true}
	bad := model.Invocation{ID: "r2", Namespace: "default", Function: "g", Status: model.StatusFailed, ErrorType: "ValueError", Start: now, DurationMS: 3}
	if _, err := fsm.Apply(ctx, a.cp, fsm.RecordInvocations{Records: []model.Invocation{ok, bad}, Retention: model.DefaultRetention(), Now: now}); err != nil {
		t.Fatal(err)
	}

	// The defaults: the last hour by the minute, the namespace's total.
	all := a.points("/v1/metrics/query", viewer)
	if len(all) != 60 && len(all) != 61 {
		t.Fatalf("%d points for an hour by the minute", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Time.Sub(all[i-1].Time) != time.Minute || all[i].Time.Second() != 0 {
			t.Fatalf("points %d and %d: %v, %v", i-1, i, all[i-1].Time, all[i].Time)
		}
	}
	last := all[len(all)-1]
	if last.Invocations != 2 || last.Errors != 1 || last.ErrorsByType["ValueError"] != 1 || last.ColdStarts != 1 || last.AvgMS != 11.5 {
		t.Fatalf("the namespace's last minute: %+v", last)
	}
	if all[0].Invocations != 0 || all[0].P50MS != 0 {
		t.Fatalf("an empty minute: %+v", all[0])
	}

	f := a.points("/v1/metrics/query?function=f&window=10m&step=5m", viewer)
	if len(f) < 2 || len(f) > 3 || f[len(f)-1].Invocations != 1 || f[len(f)-1].Errors != 0 || f[len(f)-1].P99MS <= 16 || f[len(f)-1].P99MS > 25 {
		t.Fatalf("function f by 5 minutes: %+v", f)
	}
	if f[0].Time.Minute()%5 != 0 {
		t.Fatalf("steps not aligned to 5 minutes: %v", f[0].Time)
	}
	// Another namespace sees none of it.
	a.must(201, req{method: "PUT", path: "/v1/namespaces/team", body: `{}`, key: a.admin})
	var team struct{ Points []client.MetricPoint }
	json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/metrics/query?window=5m", key: a.admin, namespace: "team"}).Body.Bytes(), &team)
	for _, p := range team.Points {
		if p.Invocations != 0 {
			t.Fatalf("namespace team sees default's invocations: %+v", p)
		}
	}

	for _, c := range []struct{ query, about string }{
		{"window=forever", "window"},
		{"window=20000h", "window"},
		{"window=49h&step=1m", "whole hours"},
		{"window=2500h&step=1h", "whole days"},
		{"metric=bogus", "unknown metric"},
		{"window=-1h", "window"},
		{"step=30s", "step"},
		{"step=soon", "step"},
		{"window=48h&step=1m", "1500"},
	} {
		w := a.do(req{method: "GET", path: "/v1/metrics/query?" + c.query, key: viewer})
		if w.Code != 400 || !strings.Contains(errorMessage(w), c.about) {
			t.Errorf("%s: %d %s, want 400 about %s", c.query, w.Code, errorMessage(w), c.about)
		}
	}
	a.must(200, req{method: "GET", path: "/v1/metrics/query?window=48h&step=2m", key: viewer})
	// One metric's values alone; a week by the hour reads the hours.
	var one struct {
		Metric string               `json:"metric"`
		Values []client.MetricValue `json:"values"`
	}
	json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/metrics/query?metric=invocations&window=168h&step=1h", key: viewer}).Body.Bytes(), &one)
	if n := len(one.Values); one.Metric != "invocations" || n < 168 || n > 169 || one.Values[n-1].Value != 2 {
		t.Fatalf("invocations by the hour for a week: %+v", one)
	}
}

// A call refused for a concurrency limit counts as a throttle in the
// history, through the record batch.
func TestAThrottledInvocationCountsInTheHistory(t *testing.T) {
	a := newTestAPI(t)
	zero := 0
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: "f", Runtime: "python3.11", Handler: "main.handler", MemoryMB: 128, ReservedConcurrency: &zero}, CodeSHA256: "aa"}
	if _, err := fsm.Apply(context.Background(), a.cp, fsm.UpsertFunction{Function: fn, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	a.must(429, req{method: "POST", path: "/v1/functions/f/invoke", body: `{}`, key: a.admin})
	a.must(429, req{method: "POST", path: "/v1/functions/f/invoke", body: `{}`, key: a.admin})
	var throttles int64
	if !waitfor.Poll(10*time.Second, func() bool {
		throttles = 0
		for _, p := range a.points("/v1/metrics/query?function=f&window=5m", a.admin) {
			throttles += p.Throttles
		}
		return throttles == 2
	}) {
		t.Fatalf("%d throttles in the history, want 2", throttles)
	}
}
