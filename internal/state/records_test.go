package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
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

// Retention removes the same records on a store that replays every batch
// as on one restored from a snapshot midway (a follower that installed
// one): a function's records are ordered by start, then ID, whatever
// order they arrived or were restored in, so the records kept and the
// IDs removed are the same on both after every later batch. Records
// arrive when they end (not in start order), some start at the same
// instant, updates move their start (and a few their function), events
// still queued are kept, and both caps bite.
func TestRetentionRemovesTheSameRecordsAfterARestore(t *testing.T) {
	rnd := rand.New(rand.NewPCG(5, 8))
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	replayed, restored := New(), New()
	both := []*Store{replayed, restored}
	// start is a start before now, out of arrival order: most within
	// seconds, some on a coarse grid (so that some are equal), some
	// minutes or hours before.
	start := func() time.Time {
		switch k := rnd.IntN(10); {
		case k < 5:
			return now.Add(-time.Duration(rnd.Int64N(int64(5 * time.Second))))
		case k < 8:
			return now.Truncate(time.Minute).Add(-time.Duration(rnd.IntN(3)) * time.Minute)
		}
		return now.Add(-time.Duration(rnd.Int64N(int64(2 * time.Hour))))
	}
	seq := 0
	// newID is a UUIDv7-like ID (its time prefix is the record's start)
	// or, for one in four, an ID out of time order (a caller's own).
	newID := func(at time.Time) string {
		seq++
		if rnd.IntN(4) == 0 {
			return fmt.Sprintf("x%08x-%d", rnd.Uint32(), seq)
		}
		return fmt.Sprintf("%012x-%04x-%d", at.UnixMilli(), rnd.IntN(0x10000), seq)
	}
	var ids []string
	leased := map[string]uint64{}
	var queued []string
	function := func() string { return fmt.Sprintf("f%d", rnd.IntN(4)) }
	namespace := func() string { return []string{"", "team-a"}[rnd.IntN(2)] }
	removedTotal := 0
	var ret model.Retention
	for step := 0; step < 400; step++ {
		// Several batches a minute, and the retention changed now and
		// then: prune sweeps every function only at a new minute or
		// retention (see recordIndex.prune).
		now = now.Add(time.Duration(rnd.Int64N(int64(15 * time.Second))))
		if step%40 == 0 {
			ret = model.Retention{PerFunction: 3 + rnd.IntN(60), MaxAge: time.Duration(1+rnd.IntN(4)) * time.Minute}
		}
		var batch []model.Invocation
		for range rnd.IntN(20) {
			if len(ids) > 0 && rnd.IntN(4) == 0 {
				r, err := replayed.Record(ids[rnd.IntN(len(ids))])
				if err != nil {
					continue
				}
				switch rnd.IntN(5) {
				case 0, 1:
					r.Start = r.Start.Add(time.Duration(rnd.Int64N(int64(10*time.Minute))) - 5*time.Minute)
				case 2:
					r.Start = start()
				case 3:
					r.Function = function()
				}
				r.Status = model.StatusFailed
				batch = append(batch, r)
				continue
			}
			at := start()
			id := newID(at)
			ids = append(ids, id)
			batch = append(batch, model.Invocation{ID: id, Namespace: namespace(), Function: function(),
				Status: model.StatusSuccess, Trigger: "sync", Start: at})
		}
		var removed [2][]string
		for i, s := range both {
			removed[i] = slices.Sorted(slices.Values(s.AddRecords(batch, nil, ret, now)))
		}
		if !slices.Equal(removed[0], removed[1]) {
			t.Fatalf("step %d: the replayed store removed %v, the restored one %v", step, removed[0], removed[1])
		}
		removedTotal += len(removed[0])

		// Events queued, leased and completed the same way on both.
		for range rnd.IntN(3) {
			at := now.Add(-time.Duration(rnd.Int64N(int64(time.Hour))))
			id := newID(at)
			ids = append(ids, id)
			item := model.QueueItem{RequestID: id, Namespace: namespace(), Function: function(), Trigger: "async", EnqueuedAt: at}
			if replayed.Enqueue([]model.QueueItem{item}) == 1 && restored.Enqueue([]model.QueueItem{item}) == 1 {
				queued = append(queued, id)
			}
		}
		for i := 0; i < len(queued); i++ {
			id := queued[i]
			epoch, ok := leased[id]
			switch {
			case ok && rnd.IntN(3) == 0:
				it, _ := replayed.QueueItem(id)
				rec := model.Invocation{Namespace: it.Namespace, Status: model.StatusSuccess, Start: start()}
				for _, s := range both {
					if err := s.Complete(id, epoch, rec); err != nil {
						t.Fatal(err)
					}
				}
				delete(leased, id)
				queued[i] = queued[len(queued)-1]
				queued = queued[:len(queued)-1]
				i--
			case !ok && rnd.IntN(3) == 0:
				for _, s := range both {
					e, err := s.Lease(id, now.Add(time.Hour), now)
					if err != nil {
						t.Fatal(err)
					}
					leased[id] = e
				}
			}
		}

		if step%25 == 12 {
			var buf bytes.Buffer
			if _, err := restored.Capture().WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			restored = New()
			if err := restored.Restore(&buf); err != nil {
				t.Fatal(err)
			}
			both[1] = restored
		}
		want, got := functionRecordIDs(replayed), functionRecordIDs(restored)
		if !reflect.DeepEqual(got, want) {
			for fn := range want {
				if !slices.Equal(got[fn], want[fn]) {
					t.Fatalf("step %d: %s holds\n%v on the replayed store,\n%v on the restored one", step, fn, want[fn], got[fn])
				}
			}
			t.Fatalf("step %d: the restored store holds functions %v, the replayed one %v", step, got, want)
		}
		for _, s := range both {
			if err := checkFunctionLists(s); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
			if err := checkTimeIndex(s); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
	}
	if removedTotal < 500 {
		t.Fatalf("retention removed only %d records: the test does not make it bite", removedTotal)
	}
}

// functionRecordIDs is each function's record IDs in the order the store
// holds them.
func functionRecordIDs(s *Store) map[string][]string {
	out := map[string][]string{}
	for fn, list := range s.records.byFunction {
		for _, r := range list {
			out[fn] = append(out[fn], r.ID)
		}
	}
	return out
}

// checkFunctionLists reports how the store's byFunction lists break
// their contract, if they do: every record once, under its function,
// the lists in compareOldestFirst order, none empty.
func checkFunctionLists(s *Store) error {
	x := &s.records
	n := 0
	for fn, list := range x.byFunction {
		if len(list) == 0 {
			return fmt.Errorf("%s: an empty list", fn)
		}
		for i, r := range list {
			switch {
			case model.QualifiedName(r.Namespace, r.Function) != fn:
				return fmt.Errorf("%s: holds %s of %s", fn, r.ID, model.QualifiedName(r.Namespace, r.Function))
			case x.byID[r.ID] != r:
				return fmt.Errorf("%s: %s at %d is not the stored record", fn, r.ID, i)
			case i > 0 && compareOldestFirst(list[i-1], r) >= 0:
				return fmt.Errorf("%s: %s at %d is not after %s", fn, r.ID, i, list[i-1].ID)
			}
		}
		n += len(list)
	}
	if n != len(x.byID) {
		return fmt.Errorf("%d records listed by function, %d stored", n, len(x.byID))
	}
	return nil
}

// Paging by the last record's start and ID walks records that share a
// start one page after another, none skipped and none twice, with or
// without a function.
func TestPagesOfRecordsSharingAStartSkipNone(t *testing.T) {
	s := New()
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var recs []model.Invocation
	for i := range 25 {
		start := at
		if i%5 == 0 {
			start = at.Add(-time.Second) // some older, the rest tied
		}
		recs = append(recs, model.Invocation{ID: fmt.Sprintf("r%02d", i), Namespace: "default", Function: "f", Status: model.StatusSuccess, Start: start})
	}
	s.AddRecords(recs, nil, model.Retention{PerFunction: 1000}, at)
	for _, fn := range []string{"", "f"} {
		seen := map[string]bool{}
		q := RecordQuery{Namespace: "default", Function: fn, Limit: 4}
		for pages := 0; ; pages++ {
			page := s.Records(q)
			if len(page) == 0 || pages > 10 {
				break
			}
			for _, r := range page {
				if seen[r.ID] {
					t.Fatalf("function %q: %s shown twice", fn, r.ID)
				}
				seen[r.ID] = true
			}
			last := page[len(page)-1]
			q.Before, q.BeforeID = last.Start, last.ID
		}
		if len(seen) != 25 {
			t.Fatalf("function %q: %d of 25 records paged through", fn, len(seen))
		}
	}
}
