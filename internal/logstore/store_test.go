package logstore

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"nimbus/internal/model"

	bolt "go.etcd.io/bbolt"
)

func TestStore(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "logs.db"), 16)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	entries := []model.LogEntry{
		{RequestID: "a", Function: "f", Time: base, Log: "first"},
		{RequestID: "b", Function: "f", Time: base.Add(time.Minute), Log: strings.Repeat("x", 20) + "END"},
		{RequestID: "c", Function: "g", Time: base.Add(2 * time.Minute), Log: "other function"},
		{RequestID: "d", Function: "f", Time: base.Add(3 * time.Minute), Log: "third"},
	}
	if err := s.Put(entries); err != nil {
		t.Fatal(err)
	}
	ids := func(es []model.LogEntry) string {
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

func TestStoredAgainReplaces(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "logs.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// An asynchronous retry stores its request's log again, later.
	if err := s.Put([]model.LogEntry{{RequestID: "r", Function: "f", Time: base, Log: "attempt 1"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put([]model.LogEntry{{RequestID: "r", Function: "f", Time: base.Add(time.Minute), Log: "attempt 2"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.List("default/f", time.Time{}, 0)
	if len(got) != 1 || got[0].Log != "attempt 2" {
		t.Fatalf("List = %+v, want attempt 2 alone", got)
	}
	if e, found, _ := s.Get("r"); !found || e.Log != "attempt 2" {
		t.Fatalf("Get = %+v, %v", e, found)
	}
	if err := s.Delete([]string{"r"}); err != nil {
		t.Fatal(err)
	}
	s.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLogs, bucketIndex, bucketKeys} {
			if k, _ := tx.Bucket(b).Cursor().First(); k != nil {
				t.Errorf("bucket %s still holds %q", b, k)
			}
		}
		return nil
	})
}

// Logs stored by earlier versions are under their request id, with (or,
// earlier still, without) an entry in the keys bucket.
func TestLogsStoredByRequestID(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "logs.db"), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	old := []model.LogEntry{
		{RequestID: "withkey", Function: "f", Time: base, Log: "one"},
		{RequestID: "nokey", Function: "f", Time: base.Add(time.Minute), Log: "two"},
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		for i, e := range old {
			b, _ := json.Marshal(e)
			ik := indexKey(model.QualifiedName(e.Namespace, e.Function), e.Time, e.RequestID)
			tx.Bucket(bucketLogs).Put([]byte(e.RequestID), b)
			tx.Bucket(bucketIndex).Put(ik, nil)
			if i == 0 {
				tx.Bucket(bucketKeys).Put([]byte(e.RequestID), ik)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put([]model.LogEntry{{RequestID: "new", Function: "f", Time: base.Add(2 * time.Minute), Log: "three"}}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.List("default/f", time.Time{}, 0)
	var logs []string
	for _, e := range got {
		logs = append(logs, e.Log)
	}
	if strings.Join(logs, ",") != "one,two,three" {
		t.Fatalf("List = %q", logs)
	}
	for _, id := range []string{"withkey", "nokey", "new"} {
		if _, found, err := s.Get(id); !found || err != nil {
			t.Fatalf("Get(%s): found=%v err=%v", id, found, err)
		}
	}
	if err := s.Delete([]string{"withkey", "nokey", "new"}); err != nil {
		t.Fatal(err)
	}
	s.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketLogs, bucketIndex, bucketKeys} {
			if k, _ := tx.Bucket(b).Cursor().First(); k != nil {
				t.Errorf("bucket %s still holds %q", b, k)
			}
		}
		return nil
	})
}
