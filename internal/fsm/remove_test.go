package fsm

import (
	"errors"
	"testing"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

func TestRemoveFunctionRefusesWhileNamedAndForceRemovesWhatNamesIt(t *testing.T) {
	f, s := newFSM()
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("target", "aa"), Now: t0})
	caller := fn("caller", "bb")
	caller.Destinations = &model.Destinations{OnFailure: "function:target", OnSuccess: "https://example.test/hook"}
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: caller, Now: t0})
	other := fn("target", "cc")
	other.Namespace = "team" // same name, another namespace: not a dependent
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: other, Now: t0})
	apply(t, f, PutScheduleType, PutSchedule{Schedule: model.Schedule{Name: "pulse", Function: "target", Expression: "@every 1s", CreatedAt: t0}})
	apply(t, f, PutScheduleType, PutSchedule{Schedule: model.Schedule{Name: "pulse", Namespace: "team", Function: "target", Expression: "@every 1s", CreatedAt: t0}})
	apply(t, f, PutSubscriptionType, PutSubscription{Subscription: model.Subscription{ID: "sub-1", Function: "target", On: []string{"success"}, Webhook: "https://example.test/n"}})
	apply(t, f, PutSubscriptionType, PutSubscription{Subscription: model.Subscription{ID: "sub-2", On: []string{"success"}, Webhook: "https://example.test/n"}})

	want := model.FunctionDependents{Schedules: []string{"pulse"}, Subscriptions: []string{"sub-1"}, Destinations: []string{"caller"}}
	res := apply(t, f, RemoveFunctionType, RemoveFunction{Name: "target"}).(RemoveFunctionResult)
	if res.Deleted || res.Dependents.String() != want.String() {
		t.Fatalf("remove without force: %+v, want refused naming %s", res, want)
	}
	if _, err := s.Function("default/target"); err != nil {
		t.Fatalf("a refused remove removed the function: %v", err)
	}
	if len(s.Schedules("")) != 2 || len(s.Subscriptions()) != 2 {
		t.Fatalf("a refused remove changed schedules or subscriptions")
	}

	res = apply(t, f, RemoveFunctionType, RemoveFunction{Name: "target", Force: true}).(RemoveFunctionResult)
	if !res.Deleted || res.Dependents.String() != want.String() {
		t.Fatalf("remove with force: %+v", res)
	}
	if _, err := s.Function("default/target"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("after a forced remove: %v", err)
	}
	if scs := s.Schedules(""); len(scs) != 1 || scs[0].Namespace != "team" {
		t.Errorf("schedules after a forced remove: %+v, want team's only", scs)
	}
	if subs := s.Subscriptions(); len(subs) != 1 || subs[0].ID != "sub-2" {
		t.Errorf("subscriptions after a forced remove: %+v, want sub-2 only", subs)
	}
	c, _ := s.Function("default/caller")
	if c.Destinations == nil || c.Destinations.OnFailure != "" || c.Destinations.OnSuccess != "https://example.test/hook" || c.Revision != 1 {
		t.Errorf("caller after a forced remove: %+v revision %d, want on_failure cleared, the rest kept", c.Destinations, c.Revision)
	}
	if _, err := s.Function("team/target"); err != nil {
		t.Errorf("team's function of the same name went too: %v", err)
	}

	// An old DeleteFunction entry still removes the function alone.
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("target", "dd"), Now: t0})
	apply(t, f, PutScheduleType, PutSchedule{Schedule: model.Schedule{Name: "pulse", Function: "target", Expression: "@every 1s", CreatedAt: t0}})
	if res := apply(t, f, DeleteFunctionType, DeleteFunction{Name: "target"}); res != (None{}) {
		t.Fatalf("DeleteFunction: %v", res)
	}
	if len(s.Schedules("default")) != 1 {
		t.Errorf("DeleteFunction changed schedules: replaying an old log must give the old state")
	}
}
