package logstore

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

func TestStore(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "logs.db"), 16)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := []client.LogEntry{
		{RequestID: "a", Function: "f", Time: base, Log: "first"},
		{RequestID: "b", Function: "f", Time: base.Add(time.Minute), Log: strings.Repeat("x", 20) + "END"},
		{RequestID: "c", Function: "g", Time: base.Add(2 * time.Minute), Log: "other function"},
		{RequestID: "d", Function: "f", Time: base.Add(3 * time.Minute), Log: "third"},
	}
	if err := s.Put(entries); err != nil {
		t.Fatal(err)
	}
	ids := func(es []client.LogEntry) string {
		var out []string
		for _, e := range es {
			out = append(out, e.RequestID)
		}
		return strings.Join(out, ",")
	}
	t.Run("a function's logs come oldest first without other functions'", func(t *testing.T) {
		got, err := s.List("default/f", time.Time{}, 0)
		if err != nil || ids(got) != "a,b,d" {
			t.Fatalf("got %q, %v", ids(got), err)
		}
	})
	t.Run("since and limit keep the newest", func(t *testing.T) {
		got, _ := s.List("default/f", base.Add(30*time.Second), 0)
		if ids(got) != "b,d" {
			t.Fatalf("since: got %q", ids(got))
		}
		got, _ = s.List("default/f", time.Time{}, 1)
		if ids(got) != "d" {
			t.Fatalf("limit: got %q", ids(got))
		}
	})
	t.Run("a long log keeps its end and says it was truncated", func(t *testing.T) {
		e, found, err := s.Get("b")
		if err != nil || !found || !e.Truncated || !strings.HasSuffix(e.Log, "END") || len(e.Log) != 16 {
			t.Fatalf("got %+v found=%v err=%v", e, found, err)
		}
	})
	t.Run("deleted logs are gone from the index too", func(t *testing.T) {
		if err := s.Delete([]string{"a", "missing"}); err != nil {
			t.Fatal(err)
		}
		got, _ := s.List("default/f", time.Time{}, 0)
		if ids(got) != "b,d" {
			t.Fatalf("got %q", ids(got))
		}
		if _, found, _ := s.Get("a"); found {
			t.Fatal("a still stored")
		}
	})
}
