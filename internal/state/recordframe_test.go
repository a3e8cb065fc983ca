package state

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"nimbus/internal/model"
)

// loggedRecord is record i of function fn as a worker makes it: its log
// tail framed by the START, END and REPORT lines of its own fields,
// around body (and after initLog, a first invocation's).
func loggedRecord(i int, fn, initLog, body string) model.Invocation {
	r := model.Invocation{ID: fmt.Sprintf("%08x-5c1e-4b7a-9f3d-%012x", i, i*7919), Namespace: "default", Function: fn,
		Revision: 3, Trigger: "sync", Status: model.StatusSuccess, Start: t0.Add(time.Duration(i) * time.Millisecond),
		DurationMS: model.DurationMS(time.Duration(i%5000) * 1100 * time.Nanosecond), BilledMS: int64(i%5 + 1), MemoryMB: 128,
		MaxMemoryMB: 38, Worker: "w-4f2a91c07d3e", CPUMS: 0.412}
	if i%7 == 0 {
		r.ColdStart, r.InitMS = true, 61.234
	}
	b := []byte(initLog)
	b = model.AppendLogStart(b, r.ID, model.VersionString(r.Version))
	b = append(b, body...)
	b = model.AppendLogEnd(b, model.LogReportOf(&r))
	r.LogTail = string(b)
	return r
}

// A record's log tail reads back exactly as it was added, however much
// of its framing the store could leave out, from the store, a page of
// records, a capture and a snapshot restored elsewhere; and the store
// holds the common tail without its framing lines.
func TestARecordsLogTailReadsBackWhole(t *testing.T) {
	long := strings.Repeat("a line of the function's own output\n", 200) // over 4 KB: its START line is cut off
	cases := map[string]model.Invocation{}
	add := func(name string, r model.Invocation) { cases[name] = r }
	add("quiet", loggedRecord(1, "f", "", ""))
	add("a line", loggedRecord(2, "f", "", "hello\n"))
	add("cold, with its init log", loggedRecord(7, "f", "[INFO] importing\n", "hello\n"))
	cut := loggedRecord(3, "f", "", long)
	cut.LogTail = cut.LogTail[len(cut.LogTail)-4096:]
	add("cut to its last 4 KB", cut)
	v := loggedRecord(4, "f", "", "x\n")
	v.Version = 12
	v.LogTail = string(model.AppendLogEnd(append(model.AppendLogStart(nil, v.ID, "12"), "x\n"...), model.LogReportOf(&v)))
	add("a published version", v)
	left := loggedRecord(5, "f", "", "")
	left.ProcessesLeft = 2
	left.LogTail = string(model.AppendLogEnd(model.AppendLogStart(nil, left.ID, model.Latest), model.LogReportOf(&left)))
	add("processes left", left)
	other := loggedRecord(6, "f", "", "y\n")
	other.DurationMS += 0.01 // the REPORT line no longer what the fields say
	add("a REPORT line of other figures", other)
	odd := loggedRecord(8, "f", "", "")
	odd.LogTail = "START RequestId: " + odd.ID + " Version: $LATEST\nno end line"
	add("a START line only", odd)
	add("no log", model.Invocation{ID: "nolog", Function: "f", Status: model.StatusSuccess, Start: t0})

	s := New()
	var all []model.Invocation
	for _, r := range cases {
		all = append(all, r)
	}
	s.AddRecords(all, nil, model.DefaultRetention(), t0.Add(time.Minute))
	for name, want := range cases {
		got, err := s.Record(want.ID)
		if err != nil || got.LogTail != want.LogTail {
			t.Errorf("%s: Record's tail = %q (%v), want %q", name, got.LogTail, err, want.LogTail)
		}
	}
	for _, got := range s.Records(RecordQuery{Function: "f"}) {
		for name, want := range cases {
			if got.ID == want.ID && got.LogTail != want.LogTail {
				t.Errorf("%s: Records' tail = %q, want %q", name, got.LogTail, want.LogTail)
			}
		}
	}
	for name, body := range map[string]string{"quiet": "", "a line": "hello\n", "a published version": "x\n", "processes left": ""} {
		stored := s.records.byID[cases[name].ID]
		packed := stored.unpacked()
		if stored.frame != frameStart|frameEnd || packed.LogTail != body {
			t.Errorf("%s: stored with frame %b and the tail %q, want %q alone (its START, END and REPORT lines left out)", name, stored.frame, packed.LogTail, body)
		}
	}
	for name, want := range map[string]logFrame{"cut to its last 4 KB": frameEnd, "a REPORT line of other figures": frameStart, "a START line only": frameStart, "no log": 0} {
		if f := s.records.byID[cases[name].ID].frame; f != want {
			t.Errorf("%s: stored with frame %b, want %b", name, f, want)
		}
	}

	byID := func(recs []model.Invocation) map[string]string {
		m := map[string]string{}
		for _, r := range recs {
			m[r.ID] = r.LogTail
		}
		return m
	}
	for id, tail := range byID(s.Capture().Records) {
		if want := byID(all)[id]; tail != want {
			t.Errorf("Capture's tail of %s = %q, want %q", id, tail, want)
		}
	}
	var buf bytes.Buffer
	if _, err := s.CaptureUnordered().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	s2 := New()
	if err := s2.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	for name, want := range cases {
		if got, err := s2.Record(want.ID); err != nil || got.LogTail != want.LogTail {
			t.Errorf("%s: restored elsewhere, its tail = %q (%v), want %q", name, got.LogTail, err, want.LogTail)
		}
	}
}

// BenchmarkRecordHeap reports the heap 100,000 records take in the
// store, per record: records of 1,000 functions as a worker makes them,
// each with a one-line log, and decoded from a Raft entry (strings of
// their own) to be added.
func BenchmarkRecordHeap(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		recs := make([]model.Invocation, n)
		for i := range recs {
			recs[i] = loggedRecord(i, fmt.Sprintf("fn-%04d", i%1000), "", "processed the order\n")
		}
		s := New()
		for i := 0; i < n; i += 500 {
			s.AddRecords(recs[i:i+500], nil, model.Retention{PerFunction: 1000}, t0.Add(time.Hour))
		}
		recs = nil
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "heap-B/record")
		runtime.KeepAlive(s)
	}
}

// storeOfLoggedRecords is a store of n records of 1,000 functions (as
// BenchmarkRecordHeap makes them), added 500 at a time.
func storeOfLoggedRecords(n int) *Store {
	s := New()
	recs := make([]model.Invocation, 0, 500)
	for i := range n {
		recs = append(recs, loggedRecord(i, fmt.Sprintf("fn-%04d", i%1000), "", "processed the order\n"))
		if len(recs) == cap(recs) {
			s.AddRecords(recs, nil, model.Retention{PerFunction: 1000}, t0.Add(time.Hour))
			recs = recs[:0]
		}
	}
	s.AddRecords(recs, nil, model.Retention{PerFunction: 1000}, t0.Add(time.Hour))
	return s
}

// BenchmarkSnapshotRecords is a Raft snapshot of a store of 100,000
// records (as BenchmarkRecordHeap makes them): the capture alone (what
// the FSM waits for, under the store's lock), and the capture and the
// writing of the snapshot; -benchmem gives what they allocate.
func BenchmarkSnapshotRecords(b *testing.B) {
	s := storeOfLoggedRecords(100_000)
	b.Run("capture", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.CaptureUnordered()
		}
	})
	b.Run("write", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.CaptureUnordered().WriteTo(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRestoreRecordsPeak restores a snapshot of 300,000 records (as
// BenchmarkRecordHeap makes them) into an empty store and reports the
// most heap it held meanwhile (sampled each millisecond, live objects and
// garbage not yet collected alike) and what it kept, over what was in use
// before: what a restarted server, or a follower installing the
// leader's snapshot, needs beyond its state.
func BenchmarkRestoreRecordsPeak(b *testing.B) {
	var buf bytes.Buffer
	if _, err := storeOfLoggedRecords(300_000).CaptureUnordered().WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	for b.Loop() {
		runtime.GC()
		base := heapObjectBytes()
		peak := make(chan uint64)
		stop := make(chan struct{})
		go func() {
			var most uint64
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				most = max(most, heapObjectBytes())
				select {
				case <-stop:
					peak <- most
					return
				case <-tick.C:
				}
			}
		}()
		s := New()
		if err := s.Restore(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		close(stop)
		most := <-peak
		runtime.GC()
		kept := heapObjectBytes()
		runtime.KeepAlive(s)
		b.ReportMetric(float64(most-base)/(1<<20), "peak-MB")
		b.ReportMetric(float64(kept-base)/(1<<20), "kept-MB")
		b.ReportMetric(float64(len(data))/(1<<20), "snapshot-MB")
	}
}

// heapObjectBytes is the heap's objects, live and not yet collected.
func heapObjectBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
