package state

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"nimbus/internal/model"
)

// A page of records (a limit) is the newest of all that match, newest
// first, whatever order they arrived in, filtered by status, trigger and
// time bounds.
func TestRecordsPageIsTheNewestThatMatch(t *testing.T) {
	s := New()
	rnd := rand.New(rand.NewPCG(7, 9))
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var recs []model.Invocation
	for i := 0; i < 3000; i++ {
		recs = append(recs, model.Invocation{ID: fmt.Sprintf("r%04d", i), Namespace: "default", Function: fmt.Sprintf("f%d", i%17),
			Status:  []string{model.StatusSuccess, model.StatusFailed}[i%2],
			Trigger: []string{"sync", "async", "source:orders"}[i%3],
			Start:   base.Add(time.Duration(rnd.Int64N(int64(24*time.Hour))) + time.Duration(i))}) // distinct starts, shuffled
	}
	s.AddRecords(recs, nil, model.Retention{PerFunction: 1000}, base.Add(24*time.Hour))
	for _, q := range []RecordQuery{
		{Namespace: "default", Limit: 51},
		{Namespace: "default", Status: model.StatusFailed, Limit: 10},
		{Namespace: "default", Trigger: "source", Limit: 25},
		{Namespace: "default", Since: base.Add(12 * time.Hour), Before: base.Add(18 * time.Hour), Limit: 40},
		{Namespace: "default", Function: "f3", Limit: 5},
		{Namespace: "default", Limit: 5000},
	} {
		all := q
		all.Limit = 0
		want := s.Records(all)
		if len(want) > q.Limit {
			want = want[:q.Limit]
		}
		got := s.Records(q)
		if len(got) != len(want) || len(got) == 0 {
			t.Fatalf("%+v: %d records, want %d", q, len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID {
				t.Fatalf("%+v: record %d is %s, want %s", q, i, got[i].ID, want[i].ID)
			}
			if i > 0 && got[i].Start.After(got[i-1].Start) {
				t.Fatalf("%+v: not newest first at %d", q, i)
			}
			if !q.Matches(&got[i]) {
				t.Fatalf("%+v: %+v does not match", q, got[i])
			}
		}
	}
}
