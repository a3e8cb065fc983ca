package state

import (
	"bytes"
	"testing"
	"time"

	"nimbus/internal/model"
)

// TestLockFreeViewFollowsEveryChange checks that what requests read
// without the lock (functions, keys, namespaces, function URLs, reserved
// concurrency) follows writes and a snapshot restore.
func TestLockFreeViewFollowsEveryChange(t *testing.T) {
	s := New()
	one, two := 1, 2
	s.PutNamespace(model.Namespace{Name: "team", Concurrency: 5})
	s.UpsertFunction(model.Function{Namespace: "team", FunctionConfig: model.FunctionConfig{Name: "a", ReservedConcurrency: &two}}, time.Now())
	s.UpsertFunction(model.Function{Namespace: "team", FunctionConfig: model.FunctionConfig{Name: "b", ReservedConcurrency: &one}}, time.Now())
	s.PutKey(model.Key{ID: "k1", Role: "viewer", Namespace: "team"})
	if limit, reserved := s.ConcurrencyLimit("team"); limit != 5 || reserved != 3 {
		t.Fatalf("limit %d reserved %d, want 5 and 3", limit, reserved)
	}
	if _, err := s.Function("team/a"); err != nil {
		t.Fatal(err)
	}
	for _, fn := range []string{"a", "b"} {
		if _, _, err := s.PutFunctionURL(model.FunctionURL{Namespace: "team", Function: fn, Auth: model.URLAuthNone}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.FunctionURL("team/a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFunction("team/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FunctionURL("team/a"); err == nil {
		t.Fatal("a removed function's URL is still seen")
	}
	if _, reserved := s.ConcurrencyLimit("team"); reserved != 1 {
		t.Fatalf("reserved %d after a delete, want 1", reserved)
	}

	var buf bytes.Buffer
	if _, err := s.Capture().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	r := New()
	if err := r.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if limit, reserved := r.ConcurrencyLimit("team"); limit != 5 || reserved != 1 {
		t.Fatalf("restored: limit %d reserved %d", limit, reserved)
	}
	if _, err := r.Namespace("team"); err != nil {
		t.Fatalf("restored namespace: %v", err)
	}
	if _, err := r.Key("k1"); err != nil {
		t.Fatalf("restored key: %v", err)
	}
	if _, err := r.Function("team/b"); err != nil {
		t.Fatalf("restored function: %v", err)
	}
	if _, err := r.FunctionURL("team/b"); err != nil {
		t.Fatalf("restored function URL: %v", err)
	}

	if err := s.DeleteFunctionURL("team/b"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.FunctionURL("team/b"); err == nil {
		t.Fatal("a removed URL is still seen")
	}
	if err := s.DeleteFunction("team/b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteNamespace("team"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Namespace("team"); err == nil {
		t.Fatal("a removed namespace is still seen")
	}
	if _, err := s.Key("k1"); err == nil {
		t.Fatal("a removed namespace's key still works")
	}
	if limit, _ := s.ConcurrencyLimit("team"); limit != 0 {
		t.Fatalf("a removed namespace's limit: %d", limit)
	}
}
