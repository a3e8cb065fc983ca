package fsm

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

func testEvent(function, name string) model.TestEvent {
	return model.TestEvent{Function: function, Name: name, Event: json.RawMessage(`{"n":"` + name + `"}`), UpdatedAt: t0, UpdatedBy: "user:ada"}
}

func TestATestEventNeedsItsFunctionAndTheTenthIsTheLastNewName(t *testing.T) {
	f, s := newFSM()
	res := apply(t, f, PutTestEventType, PutTestEvent{Event: testEvent("hello", "a")})
	if err, ok := res.(error); !ok || !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("a test event of a missing function: want ErrNotFound, got %v", res)
	}
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0})
	for i := range model.MaxTestEvents {
		r := apply(t, f, PutTestEventType, PutTestEvent{Event: testEvent("hello", fmt.Sprintf("e%02d", i))}).(PutTestEventResult)
		if !r.Created || r.Event.Namespace != "default" {
			t.Fatalf("put %d: %+v", i, r)
		}
	}
	res = apply(t, f, PutTestEventType, PutTestEvent{Event: testEvent("hello", "one-too-many")})
	if err, ok := res.(error); !ok || !errors.Is(err, state.ErrConflict) {
		t.Fatalf("an eleventh name: want ErrConflict, got %v", res)
	}
	// A saved name is replaced at the limit.
	again := testEvent("hello", "e03")
	again.Event, again.UpdatedAt = json.RawMessage(`{"changed":true}`), t0.Add(time.Hour)
	r := apply(t, f, PutTestEventType, PutTestEvent{Event: again}).(PutTestEventResult)
	if r.Created || string(r.Event.Event) != `{"changed":true}` {
		t.Fatalf("replacing at the limit: %+v", r)
	}
	b, _ := json.Marshal(r)
	if got, err := DecodeResult(PutTestEventType, b); err != nil || got.(PutTestEventResult).Event.Name != "e03" {
		t.Fatalf("forwarded result: %+v %v", got, err)
	}
	if got := s.TestEvents("default/hello"); len(got) != model.MaxTestEvents || got[0].Name != "e00" || got[9].Name != "e09" {
		t.Fatalf("listed: %+v", got)
	}
	apply(t, f, DeleteTestEventType, DeleteTestEvent{Function: "hello", Name: "e03"})
	if _, err := s.TestEvent("default/hello", "e03"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	res = apply(t, f, DeleteTestEventType, DeleteTestEvent{Function: "hello", Name: "e03"})
	if err, ok := res.(error); !ok || !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("deleting it again: want ErrNotFound, got %v", res)
	}
}

func TestRemovingAFunctionRemovesItsTestEventsInTheSameEntry(t *testing.T) {
	for _, remove := range []struct {
		name string
		ct   CommandType
		cmd  any
	}{
		{"remove", RemoveFunctionType, RemoveFunction{Name: "hello"}},
		{"remove with force", RemoveFunctionType, RemoveFunction{Name: "hello", Force: true}},
		{"delete", DeleteFunctionType, DeleteFunction{Name: "hello"}},
	} {
		t.Run(remove.name, func(t *testing.T) {
			f, s := newFSM()
			apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0})
			apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("other", "aa"), Now: t0})
			apply(t, f, PutTestEventType, PutTestEvent{Event: testEvent("hello", "a")})
			apply(t, f, PutTestEventType, PutTestEvent{Event: testEvent("other", "a")})
			apply(t, f, remove.ct, remove.cmd)
			// A function deployed again under the name has none.
			apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "bb"), Now: t0})
			if got := s.TestEvents("default/hello"); got != nil {
				t.Fatalf("the test events outlived their function: %+v", got)
			}
			if got := s.TestEvents("default/other"); len(got) != 1 {
				t.Fatalf("another function's test events went too: %+v", got)
			}
		})
	}
}

func TestTestEventsSurviveASnapshot(t *testing.T) {
	f, _ := newFSM()
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0})
	apply(t, f, PutTestEventType, PutTestEvent{Event: testEvent("hello", "b")})
	apply(t, f, PutTestEventType, PutTestEvent{Event: testEvent("hello", "a")})
	_, s2 := restored(t, f)
	got := s2.TestEvents("default/hello")
	if len(got) != 2 || got[0].Name != "a" || string(got[1].Event) != `{"n":"b"}` || got[1].UpdatedBy != "user:ada" || !got[1].UpdatedAt.Equal(t0) {
		t.Fatalf("restored: %+v", got)
	}
}
