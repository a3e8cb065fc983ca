package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"

	"nimbus/internal/model"
)

// everyRecordReference is what Records(q) answers, computed the long way
// from every stored record (all, as a snapshot has them): filtered, and
// sorted newest first by start, then by ID, greatest first.
func everyRecordReference(all []model.Invocation, q RecordQuery) []model.Invocation {
	var out []model.Invocation
	for _, r := range all {
		if q.Function != "" && (r.Function != q.Function || r.Namespace != model.NamespaceOf(q.Namespace)) {
			continue
		}
		if q.Matches(&r) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Start.Equal(out[j].Start) {
			return out[i].Start.After(out[j].Start)
		}
		return out[i].ID > out[j].ID
	})
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out
}

// checkTimeIndex reports how the store's byTime lists break their
// contract, if they do: every record once, in its namespace, at its
// position, under a maximum that bounds it and never decreases; no more
// tombstones than half a list, none at its front.
func checkTimeIndex(s *Store) error {
	x := &s.records
	live := 0
	for ns, l := range x.byTime {
		dead, last := 0, int64(0)
		for i, e := range l.entries {
			if i > 0 && e.max < last {
				return fmt.Errorf("%s: maximum decreases at %d", ns, i)
			}
			last = e.max
			if e.r == nil {
				dead++
				continue
			}
			live++
			switch {
			case e.r.at != l.base+i:
				return fmt.Errorf("%s: %s is at %d+%d, says %d", ns, e.r.ID, l.base, i, e.r.at)
			case e.r.Namespace != ns:
				return fmt.Errorf("%s: holds %s of namespace %s", ns, e.r.ID, e.r.Namespace)
			case startKey(e.r.Start) > e.max:
				return fmt.Errorf("%s: %s started after the maximum at %d", ns, e.r.ID, i)
			case x.byID[e.r.ID] != e.r:
				return fmt.Errorf("%s: %s at %d is not the stored record", ns, e.r.ID, i)
			}
		}
		if dead != l.dead || 2*dead > len(l.entries) || dead == len(l.entries) || l.entries[0].r == nil {
			return fmt.Errorf("%s: %d tombstones of %d, counted %d", ns, dead, len(l.entries), l.dead)
		}
	}
	if live != len(x.byID) {
		return fmt.Errorf("%d records indexed by time, %d stored", live, len(x.byID))
	}
	return nil
}

// Whatever order records arrive, change and leave in (updated in place,
// their start moved either way, removed by retention by count and by
// age, kept while queued, restored from a snapshot), a query without a
// function answers what reading every record answers, to the order of
// records that started at the same instant.
func TestRecordsByTimeAnswerAsEveryRecordDoes(t *testing.T) {
	rnd := rand.New(rand.NewPCG(11, 12))
	s := New()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	namespaces := []string{"", "default", "team-a", "team-b"} // "" is the default one
	statuses := []string{model.StatusSuccess, model.StatusFailed, model.StatusDeadLetter}
	triggers := []string{"sync", "async", "source:orders", "source:users", "schedule"}
	// start is a start near now: most just before, some on a coarse grid
	// (so that some are equal), some long before, some after (a skewed
	// clock), a few zero.
	start := func() time.Time {
		switch k := rnd.IntN(20); {
		case k < 10:
			return now.Add(-time.Duration(rnd.Int64N(int64(5 * time.Second))))
		case k < 15:
			return now.Truncate(time.Minute).Add(-time.Duration(rnd.IntN(5)) * time.Minute)
		case k < 18:
			return now.Add(-time.Duration(rnd.Int64N(int64(3 * time.Hour))))
		case k < 19:
			return now.Add(time.Duration(rnd.Int64N(int64(time.Hour))))
		}
		return time.Time{}
	}
	seq := 0
	newID := func() string { seq++; return fmt.Sprintf("%08x-%d", rnd.Uint32(), seq) } // not in time order
	var ids []string                                                                   // every ID used, removed ones too
	leased := map[string]uint64{}                                                      // queued event: its lease's epoch
	var queued []string
	queries := 0
	for step := 0; step < 300; step++ {
		now = now.Add(time.Duration(rnd.Int64N(int64(2 * time.Minute))))
		var batch []model.Invocation
		for range rnd.IntN(30) {
			if len(ids) > 0 && rnd.IntN(4) == 0 {
				// An update in place (a record that retention removed
				// comes back as a new one).
				r, err := s.Record(ids[rnd.IntN(len(ids))])
				if err != nil {
					continue
				}
				r.Status = statuses[rnd.IntN(len(statuses))]
				switch rnd.IntN(3) {
				case 0:
					r.Start = r.Start.Add(time.Duration(rnd.Int64N(int64(10*time.Minute))) - 5*time.Minute)
				case 1:
					r.Start = start()
				}
				batch = append(batch, r)
				continue
			}
			id := newID()
			ids = append(ids, id)
			batch = append(batch, model.Invocation{ID: id, Namespace: namespaces[rnd.IntN(len(namespaces))],
				Function: fmt.Sprintf("f%d", rnd.IntN(6)), Status: statuses[rnd.IntN(len(statuses))],
				Trigger: triggers[rnd.IntN(len(triggers))], Start: start()})
		}
		ret := model.Retention{PerFunction: 5 + rnd.IntN(20), MaxAge: time.Duration(1+rnd.IntN(4)) * time.Hour}
		s.AddRecords(batch, nil, ret, now)

		// Events queued, leased and completed: their records are kept by
		// retention while queued, and move on when they end.
		for range rnd.IntN(4) {
			id := newID()
			ids = append(ids, id)
			ns := namespaces[rnd.IntN(len(namespaces))]
			if s.Enqueue([]model.QueueItem{{RequestID: id, Namespace: ns, Function: fmt.Sprintf("f%d", rnd.IntN(6)),
				Trigger: "async", EnqueuedAt: now.Add(-time.Duration(rnd.Int64N(int64(time.Hour))))}}) == 1 {
				queued = append(queued, id)
			}
		}
		for i := 0; i < len(queued); i++ {
			id := queued[i]
			if epoch, ok := leased[id]; ok && rnd.IntN(3) == 0 {
				it, _ := s.QueueItem(id)
				if err := s.Complete(id, epoch, model.Invocation{Namespace: it.Namespace, Status: statuses[rnd.IntN(2)], Start: start()}); err != nil {
					t.Fatal(err)
				}
				delete(leased, id)
				queued[i] = queued[len(queued)-1]
				queued = queued[:len(queued)-1]
				i--
			} else if !ok && rnd.IntN(3) == 0 {
				epoch, err := s.Lease(id, now.Add(time.Hour), now)
				if err != nil {
					t.Fatal(err)
				}
				leased[id] = epoch
			}
		}
		if step%60 == 59 {
			var buf bytes.Buffer
			if _, err := s.Capture().WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			if err := s.Restore(&buf); err != nil {
				t.Fatal(err)
			}
		}
		if err := checkFunctionLists(s); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if err := checkTimeIndex(s); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}

		var all []model.Invocation
		for _, r := range s.records.all() {
			all = append(all, r.unpacked())
		}
		for range 30 {
			q := RecordQuery{Namespace: []string{"", "", "default", "team-a", "team-b", "nobody"}[rnd.IntN(6)], Limit: []int{0, 1, 5, 20, 50}[rnd.IntN(5)]}
			if rnd.IntN(8) == 0 {
				q.Function = fmt.Sprintf("f%d", rnd.IntN(6))
			}
			if rnd.IntN(3) == 0 {
				q.Status = append(statuses, model.StatusQueued, model.StatusRunning)[rnd.IntN(5)]
			}
			if rnd.IntN(3) == 0 {
				q.Trigger = []string{"sync", "async", "source", "source:orders", "schedule"}[rnd.IntN(5)]
			}
			if rnd.IntN(3) == 0 {
				q.Since = now.Add(-time.Duration(rnd.Int64N(int64(4 * time.Hour))))
			}
			switch rnd.IntN(4) {
			case 0:
				q.Before = now.Add(-time.Duration(rnd.Int64N(int64(3 * time.Hour))))
			case 1: // the next page after one: the last one's start
				first := q
				first.Before, first.Limit = time.Time{}, 1+rnd.IntN(30)
				if page := s.Records(first); len(page) > 0 {
					q.Before = page[len(page)-1].Start
				}
			}
			got, want := s.Records(q), everyRecordReference(all, q)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("step %d, %+v:\n got %d: %v\nwant %d: %v", step, q, len(got), recordIDs(got), len(want), recordIDs(want))
			}
			queries++
		}
	}
	if len(s.records.byID) < 100 {
		t.Fatalf("only %d records at the end: the test stores too few to mean much", len(s.records.byID))
	}
	t.Logf("%d queries, %d records at the end, %d queued", queries, len(s.records.byID), len(queued))
}

func recordIDs(recs []model.Invocation) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.ID + "@" + r.Start.Format(time.TimeOnly)
	}
	return out
}
