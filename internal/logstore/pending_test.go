package logstore

import (
	"path/filepath"
	"testing"
	"time"

	"nimbus/internal/model"
)

func TestPendingRecordsOutliveTheStoreUntilDeleted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "logs.db")
	s, err := Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []model.Invocation{
		{ID: "a", Function: "f", Status: "success", Start: base},
		{ID: "b", Function: "f", Status: "error", Start: base.Add(time.Second), LogTail: "boom"},
	}
	audit := []PendingAudit{
		{Seq: 2, Entry: model.AuditEntry{Time: base, KeyID: "k2", Action: "PUT /v1/functions/g"}},
		{Seq: 1, Entry: model.AuditEntry{Time: base, KeyID: "k1", Action: "PUT /v1/functions/f"}},
	}
	if err := s.PutPending(recs, audit); err != nil {
		t.Fatal(err)
	}
	// A newer version of a record replaces the one stored.
	if err := s.PutPending([]model.Invocation{{ID: "a", Function: "f", Status: "success", Start: base, Destination: "delivered"}}, nil); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s, err = Open(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gotRecs, gotAudit, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]model.Invocation{}
	for _, r := range gotRecs {
		byID[r.ID] = r
	}
	if len(gotRecs) != 2 || byID["a"].Destination != "delivered" || byID["b"].LogTail != "boom" || !byID["b"].Start.Equal(recs[1].Start) {
		t.Fatalf("pending records after reopening: %+v", gotRecs)
	}
	if len(gotAudit) != 2 || gotAudit[0].Seq != 1 || gotAudit[0].Entry.KeyID != "k1" || gotAudit[1].Entry.KeyID != "k2" {
		t.Fatalf("pending audit after reopening: %+v, want k1 then k2", gotAudit)
	}

	if err := s.DeletePending([]string{"a", "missing"}, []uint64{1, 7}); err != nil {
		t.Fatal(err)
	}
	gotRecs, gotAudit, err = s.Pending()
	if err != nil || len(gotRecs) != 1 || gotRecs[0].ID != "b" || len(gotAudit) != 1 || gotAudit[0].Seq != 2 {
		t.Fatalf("after deleting a and audit 1: %+v %+v %v", gotRecs, gotAudit, err)
	}
}
