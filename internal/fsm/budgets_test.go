package fsm

import (
	"reflect"
	"testing"
	"time"

	"nimbus/internal/model"
)

// A budget: set on a namespace that exists, its month's alerts recorded
// once each (the result names only the new ones), a new month starting
// afresh, a raise lifting the hard limit, in snapshots, gone with its
// namespace.
func TestBudgetsApplyAndSurviveASnapshot(t *testing.T) {
	f, s := newFSM()
	apply(t, f, PutNamespaceType, PutNamespace{Namespace: model.Namespace{Name: "team"}})
	if res := apply(t, f, PutBudgetType, PutBudget{Budget: model.Budget{Namespace: "nowhere", Monthly: 5}}); !isNotFound(res) {
		t.Fatalf("a budget for an unknown namespace: %v", res)
	}
	apply(t, f, PutBudgetType, PutBudget{Budget: model.Budget{Namespace: "team", Monthly: 5, Notify: []int{50, 100}, HardLimit: true}})
	check := func(alerts []string, exceeded bool, month string) BudgetCheckResult {
		t.Helper()
		res := apply(t, f, BudgetCheckType, BudgetCheck{Namespace: "team", Month: month, Alerts: alerts, Exceeded: exceeded})
		r, ok := res.(BudgetCheckResult)
		if !ok {
			t.Fatalf("budget check: %v", res)
		}
		return r
	}
	if r := check([]string{"spend:50", "forecast:100"}, false, "2026-12"); !reflect.DeepEqual(r.Fresh, []string{"spend:50", "forecast:100"}) {
		t.Fatalf("first check: %+v", r)
	}
	if r := check([]string{"spend:50", "forecast:100", "spend:100"}, true, "2026-12"); !reflect.DeepEqual(r.Fresh, []string{"spend:100"}) {
		t.Fatalf("second check: %+v", r)
	}
	at := mustTime(t, "2026-12-20T10:00:00Z")
	if !s.BudgetBlocks("team", at) || s.BudgetBlocks("team", mustTime(t, "2027-01-01T00:00:00Z")) || s.BudgetBlocks("default", at) {
		t.Fatalf("blocks: in December %v, in January %v", s.BudgetBlocks("team", at), s.BudgetBlocks("team", mustTime(t, "2027-01-01T00:00:00Z")))
	}
	_, s2 := restored(t, f)
	if b, err := s2.Budget("team"); err != nil || !b.Exceeded || len(b.Alerts) != 3 || !s2.BudgetBlocks("team", at) {
		t.Fatalf("restored: %+v %v", b, err)
	}
	// Raised: the limit lifts; the month's alerts stay sent.
	apply(t, f, PutBudgetType, PutBudget{Budget: model.Budget{Namespace: "team", Monthly: 50, Notify: []int{50, 100}, HardLimit: true}})
	if b, _ := s.Budget("team"); s.BudgetBlocks("team", at) || len(b.Alerts) != 3 || b.Month != "2026-12" {
		t.Fatalf("after the raise: %+v", b)
	}
	// A new month starts afresh.
	if r := check([]string{"spend:50"}, false, "2027-01"); !reflect.DeepEqual(r.Fresh, []string{"spend:50"}) {
		t.Fatalf("January: %+v", r)
	}
	if b, _ := s.Budget("team"); !reflect.DeepEqual(b.Alerts, []string{"spend:50"}) {
		t.Fatalf("January's alerts: %+v", b.Alerts)
	}
	apply(t, f, DeleteBudgetType, DeleteBudget{Namespace: "team"})
	if res := apply(t, f, DeleteBudgetType, DeleteBudget{Namespace: "team"}); !isNotFound(res) {
		t.Fatalf("removing a budget twice: %v", res)
	}
	apply(t, f, PutBudgetType, PutBudget{Budget: model.Budget{Namespace: "team", Monthly: 5}})
	apply(t, f, DeleteNamespaceType, DeleteNamespace{Name: "team"})
	if len(s.Budgets()) != 0 {
		t.Fatalf("a removed namespace's budget stays: %+v", s.Budgets())
	}
	if res := apply(t, f, BudgetCheckType, BudgetCheck{Namespace: "team", Month: "2027-01"}); !isNotFound(res) {
		t.Fatalf("a check of a removed budget: %v", res)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
