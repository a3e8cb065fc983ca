package fsm

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

func TestASourceMappingKeepsItsProgressAcrossAReplaceAndASnapshot(t *testing.T) {
	f, s := newFSM()
	src := model.Source{Name: "orders", Function: "hello", Type: model.SourceRabbitMQ, URL: "amqp://u@127.0.0.1:5672/", Password: "pw", Queue: "q", BatchSize: 10, Concurrency: 1}
	if err, _ := apply(t, f, PutSourceType, PutSource{Source: src, Now: t0}).(error); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("a mapping of a missing function: %v, want not found", err)
	}
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0})
	if r := apply(t, f, PutSourceType, PutSource{Source: src, Now: t0}).(PutSourceResult); !r.Created {
		t.Fatal("the first put did not create the mapping")
	}
	apply(t, f, SourceProgressType, SourceProgress{Progress: map[string]model.SourceProgress{
		"default/orders":  {State: model.SourceRunning, Received: 7, Succeeded: 5, Offsets: map[string]int64{"0": 4}},
		"default/missing": {Received: 1},
	}})
	src.BatchSize = 50
	if r := apply(t, f, PutSourceType, PutSource{Source: src, Now: t0.Add(time.Hour)}).(PutSourceResult); r.Created {
		t.Fatal("a replace said it created the mapping")
	}
	apply(t, f, EnableSourceType, EnableSource{Name: "orders", Enabled: false, Now: t0.Add(2 * time.Hour)})

	var buf bytes.Buffer
	if _, err := s.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	back := state.New()
	if err := back.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := back.Source("default/orders")
	if err != nil {
		t.Fatal(err)
	}
	if got.BatchSize != 50 || !got.Disabled || got.Password != "pw" || !got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0.Add(2*time.Hour)) {
		t.Errorf("restored mapping: %+v", got)
	}
	if got.Progress.Received != 7 || got.Progress.Succeeded != 5 || got.Progress.Offsets["0"] != 4 {
		t.Errorf("restored progress: %+v", got.Progress)
	}
	if len(back.Sources("")) != 1 {
		t.Errorf("progress of a missing mapping created one: %+v", back.Sources(""))
	}
}

func TestRemovingAFunctionFedByASourceNeedsForceAndRemovesTheMapping(t *testing.T) {
	f, s := newFSM()
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0})
	apply(t, f, PutSourceType, PutSource{Source: model.Source{Name: "orders", Function: "hello", Type: model.SourceNATS}, Now: t0})
	r := apply(t, f, RemoveFunctionType, RemoveFunction{Name: "hello"}).(RemoveFunctionResult)
	if r.Deleted || len(r.Dependents.Sources) != 1 || r.Dependents.Sources[0] != "orders" {
		t.Fatalf("remove without force: %+v", r)
	}
	r = apply(t, f, RemoveFunctionType, RemoveFunction{Name: "hello", Force: true}).(RemoveFunctionResult)
	if !r.Deleted {
		t.Fatalf("remove with force: %+v", r)
	}
	if _, err := s.Source("default/orders"); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("the mapping outlived its function: %v", err)
	}
}

func TestDeadLettersOfASourceAreStoredOnceAndRedriveIntoTheQueue(t *testing.T) {
	f, s := newFSM()
	dl := model.DeadLetter{RequestID: "m1", Function: "hello", Event: []byte(`{"Records":[]}`), Reason: "RetriesExhausted", Attempts: 3, At: t0, Trigger: "source:orders"}
	apply(t, f, PutDeadLettersType, PutDeadLetters{Letters: []model.DeadLetter{dl}})
	dl.Attempts = 9
	apply(t, f, PutDeadLettersType, PutDeadLetters{Letters: []model.DeadLetter{dl}})
	got := s.DeadLetters("default", "hello")
	if len(got) != 1 || got[0].Attempts != 3 || got[0].Trigger != "source:orders" {
		t.Fatalf("dead letters: %+v", got)
	}
	if r := apply(t, f, RedriveType, Redrive{IDs: []string{"m1"}, Now: t0}).(RedriveResult); r.Moved != 1 {
		t.Fatalf("redrive moved %d", r.Moved)
	}
	if q := s.QueueItems(); len(q) != 1 || q[0].Trigger != "source:orders" {
		t.Fatalf("queue after redrive: %+v", q)
	}
}
