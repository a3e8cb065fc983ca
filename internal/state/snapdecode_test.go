package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"nimbus/internal/model"
)

// bigSnapshot is a snapshot with more elements in its large sections than
// one decoding task takes, and strings that look like JSON's structure.
func bigSnapshot(n int) *Snapshot {
	at := time.Date(2026, 12, 7, 6, 0, 0, 123456789, time.UTC)
	snap := &Snapshot{QueueSeq: 42, Settings: map[string]string{"a": `b"}],{`}, MetricsNow: at}
	for i := range n {
		name := fmt.Sprintf("f%06d", i)
		snap.Functions = append(snap.Functions, &model.Function{FunctionConfig: model.FunctionConfig{Name: name, Runtime: "python3.13",
			Handler: `main.handler "[{\"x\"}]"`, MemoryMB: 128, Env: map[string]string{"K": "v\\\"]}"}}, Namespace: "default", CreatedAt: at})
		snap.Records = append(snap.Records, model.Invocation{ID: fmt.Sprintf("r%d", i), Function: name, Start: at, LogTail: "END\n\t\"}]\u2028"})
		if i%3 == 0 {
			snap.Metrics = append(snap.Metrics, model.MetricHistory{Namespace: "default", Function: name})
		}
		if i%7 == 0 {
			snap.Audit = append(snap.Audit, model.AuditEntry{Action: "PUT /v1/functions/" + name, KeyID: "k1", Time: at})
		}
	}
	snap.Keys = []*model.Key{{ID: "k1", Role: "admin"}}
	snap.DeadLetters = []*model.DeadLetter{}
	return snap
}

func encodeBody(t *testing.T, snap *Snapshot) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := snap.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	_, body, _ := bytes.Cut(b.Bytes(), []byte("\n"))
	return body
}

// decodeBoth decodes body with decodeSnapshot and with a json.Decoder
// (as snapshots were decoded before), and fails unless they agree (both
// failing counts).
func decodeBoth(t *testing.T, body []byte) {
	t.Helper()
	var got, want Snapshot
	gotErr := decodeSnapshot(bufio.NewReader(bytes.NewReader(body)), &got, nil)
	wantErr := json.NewDecoder(bytes.NewReader(body)).Decode(&want)
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("decodeSnapshot error %v, json.Decoder error %v, of %.200q", gotErr, wantErr, body)
	}
	if gotErr == nil && !reflect.DeepEqual(&got, &want) {
		t.Fatalf("decodeSnapshot and json.Decoder differ on %.200q", body)
	}
}

func TestTheParallelDecodeOfASnapshotIsEncodingJSONs(t *testing.T) {
	t.Run("a release's snapshot", func(t *testing.T) {
		v1, err := os.ReadFile(releaseSnapshot)
		if err != nil {
			t.Fatal(err)
		}
		decodeBoth(t, v1)
	})
	t.Run("a snapshot whose sections take many tasks, strings full of brackets and quotes", func(t *testing.T) {
		decodeBoth(t, encodeBody(t, bigSnapshot(3*elementsPerTask+17)))
	})
	for _, c := range []struct{ name, body string }{
		{"an empty object", `{}`},
		{"white space everywhere", " \n{ \"functions\" :\t[ {\"name\":\"a\"} ,\r\n{\"name\":\"b\"} ] , \"queue_seq\" : 3 }\n"},
		{"null sections", `{"functions":null,"records":null,"settings":null,"audit":[]}`},
		{"a null element", `{"functions":[null,{"name":"a"}]}`},
		{"keys of another case, which encoding/json matches", `{"Functions":[{"name":"a"}],"QUEUE_SEQ":1}`},
		{"an escaped key", `{"function\u0073":[{"name":"a"}]}`},
		{"unknown sections", `{"later":{"x":[1,2,{"y":"]"}]},"functions":[]}`},
		{"trailing data after the object", `{"queue_seq":1} {"queue_seq":2}`},
		{"a truncated object", `{"functions":[{"name":"a"}`},
		{"a truncated string", `{"functions":[{"name":"a`},
		{"a missing comma between members", `{"queue_seq":1 "functions":[]}`},
		{"a missing comma between elements", `{"functions":[{"name":"a"} {"name":"b"}]}`},
		{"a bad element", `{"functions":[{"name":"a"},{"name":}]}`},
		{"an element of the wrong type", `{"functions":[{"name":"a"},7]}`},
		{"a section of the wrong type", `{"functions":{"name":"a"}}`},
		{"brackets that do not match", `{"functions":[{"name":"a"]}]}`},
		{"not an object", `[1,2]`},
		{"nothing", ``},
	} {
		t.Run(c.name, func(t *testing.T) { decodeBoth(t, []byte(c.body)) })
	}
}

// A member for a field an earlier member set is refused (encoding/json
// would let the later win; a record of the first may be stored already).
func TestASnapshotThatSetsAFieldTwiceIsRefused(t *testing.T) {
	for _, body := range []string{
		`{"functions":[{"name":"a"}],"Functions":[{"name":"b"}]}`,
		`{"queue_seq":1,"records":[],"Queue_Seq":2}`,
		`{"records":[{"id":"a"}],"records":[{"id":"b"}]}`,
	} {
		var snap Snapshot
		err := decodeSnapshot(bufio.NewReader(strings.NewReader(body)), &snap, nil)
		if err == nil || !strings.Contains(err.Error(), "a second member") {
			t.Errorf("%s: error %v, want a second member refused", body, err)
		}
	}
}

func TestARestoredSnapshotRestoresTheSameState(t *testing.T) {
	var b bytes.Buffer
	if _, err := bigSnapshot(2*elementsPerTask + 1).WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	written := b.String()
	s := New()
	if err := s.Restore(strings.NewReader(written)); err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if _, err := s.Capture().WriteTo(&again); err != nil {
		t.Fatal(err)
	}
	if again.Len() == 0 || len(s.Capture().Functions) != 2*elementsPerTask+1 {
		t.Fatalf("restored %d functions, want %d", len(s.Capture().Functions), 2*elementsPerTask+1)
	}
	// The records, passed to the store a run at a time as they decode, are
	// all there, as they were.
	want := bigSnapshot(2*elementsPerTask + 1).Records
	got := s.Capture().Records
	if len(got) != len(want) {
		t.Fatalf("restored %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if r, ok := s.records.byID[want[i].ID]; !ok || r.record().LogTail != want[i].LogTail || r.Function != want[i].Function {
			t.Fatalf("record %s not restored as it was", want[i].ID)
		}
	}
}

// BenchmarkRestore restores a snapshot of 20,000 functions and as many
// invocation records (SNAPSHOT=path: a state.bin instead).
func BenchmarkRestore(b *testing.B) {
	var data []byte
	if p := os.Getenv("SNAPSHOT"); p != "" {
		var err error
		if data, err = os.ReadFile(p); err != nil {
			b.Fatal(err)
		}
	} else {
		var buf bytes.Buffer
		if _, err := bigSnapshot(20000).WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
		data = buf.Bytes()
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := New().Restore(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCapture measures what a Raft snapshot holds the FSM for: the
// state's capture, unordered (SNAPSHOT=path: of a store restored from a
// state.bin, else of 20,000 functions and as many records), and as a
// whole (what the capture was before the ordering moved to WriteTo).
func BenchmarkCapture(b *testing.B) {
	s := New()
	if p := os.Getenv("SNAPSHOT"); p != "" {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Restore(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	} else {
		var buf bytes.Buffer
		if _, err := bigSnapshot(20000).WriteTo(&buf); err != nil {
			b.Fatal(err)
		}
		if err := s.Restore(&buf); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("unordered", func(b *testing.B) {
		for b.Loop() {
			s.CaptureUnordered()
		}
	})
	b.Run("ordered", func(b *testing.B) {
		for b.Loop() {
			s.Capture()
		}
	})
}

// The FSM's capture leaves the sorting to WriteTo: what it writes is
// byte for byte what a complete capture writes.
func TestAnUnorderedCaptureWritesTheOrderedSnapshot(t *testing.T) {
	snap := bigSnapshot(3000)
	for i, h := range snap.Metrics {
		if i%2 == 0 {
			snap.Metrics[i].Namespace = "team-" + h.Function[len(h.Function)-1:]
		}
	}
	var b bytes.Buffer
	if _, err := snap.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	s := New()
	if err := s.Restore(&b); err != nil {
		t.Fatal(err)
	}
	var ordered, unordered bytes.Buffer
	if _, err := s.Capture().WriteTo(&ordered); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CaptureUnordered().WriteTo(&unordered); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ordered.Bytes(), unordered.Bytes()) {
		t.Fatalf("the unordered capture wrote %d bytes unlike the ordered one's %d", unordered.Len(), ordered.Len())
	}
}

// What Apply changes after a capture does not reach the capture: the
// open buckets it counts into (error types too) and the sealed chunks it
// appends to were copied. Days of invocations (older buckets sealed),
// then a capture, then more invocations into the same minutes, hours and
// days, and a day and a half later, which seals them: the capture writes
// the bytes an ordered capture made at its moment writes.
func TestACaptureIsNotChangedByLaterApplies(t *testing.T) {
	s := New()
	ret := model.DefaultRetention()
	start := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	add := func(at time.Time, k int) {
		var recs []model.Invocation
		for i := range k {
			n++
			inv := model.Invocation{ID: fmt.Sprint("r", n), Namespace: fmt.Sprint("ns", i%2), Function: fmt.Sprint("f", i%5), Status: model.StatusSuccess,
				Start: at, DurationMS: float64(i), BilledMS: int64(i + 1), MemoryMB: 128}
			if i%3 == 0 {
				inv.Status, inv.ErrorType = model.StatusFailed, fmt.Sprint("E", i%4)
			}
			recs = append(recs, inv)
		}
		s.AddRecords(recs, nil, ret, at)
	}
	for at := start; at.Before(start.Add(3 * 24 * time.Hour)); at = at.Add(7 * time.Minute) {
		add(at, 6)
	}
	now := start.Add(3 * 24 * time.Hour)
	var want bytes.Buffer
	if _, err := s.Capture().WriteTo(&want); err != nil {
		t.Fatal(err)
	}
	captured := s.CaptureUnordered()
	for i := range 5 {
		add(now.Add(-time.Duration(i)*time.Second), 12)
	}
	// Records the capture holds change: a status, a start (it moves in
	// its lists), a function.
	r1, _ := s.Record("r1")
	r2, _ := s.Record("r2")
	r3, _ := s.Record("r3")
	r1.Status, r1.ErrorType = model.StatusFailed, "Late"
	r2.Start = now
	r3.Function = "elsewhere"
	s.AddRecords([]model.Invocation{r1, r2, r3}, nil, ret, now)
	add(now.Add(36*time.Hour), 3) // seals what was open at the capture
	var got bytes.Buffer
	if _, err := captured.WriteTo(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("the capture wrote %d bytes, the state at its moment %d", got.Len(), want.Len())
	}
	var after bytes.Buffer
	if _, err := s.Capture().WriteTo(&after); err != nil || bytes.Equal(after.Bytes(), want.Bytes()) {
		t.Fatalf("the later invocations changed nothing (%v): the test proves nothing", err)
	}
}

// A snapshot whose records go bad after a few runs is refused, without
// waiting forever on the runs passed in order, and the store keeps what it
// held.
func TestARestoreOfABadRecordRunKeepsTheStore(t *testing.T) {
	body := string(encodeBody(t, bigSnapshot(3*elementsPerTask)))
	at := strings.Index(body, `"id":"r1500"`)
	if at < 0 {
		t.Fatal("no record r1500 in the snapshot")
	}
	bad := body[:at] + `"id":1500` + body[at+len(`"id":"r1500"`):]
	s := New()
	if err := s.Restore(strings.NewReader(string(encodeBody(t, bigSnapshot(3))))); err != nil {
		t.Fatal(err)
	}
	err := s.Restore(strings.NewReader(bad))
	if err == nil || !strings.Contains(err.Error(), "cannot unmarshal number") {
		t.Fatalf("restore of a bad record: %v, want encoding/json's error", err)
	}
	if got := len(s.Capture().Records); got != 3 {
		t.Fatalf("the store holds %d records after a refused restore, want the 3 it had", got)
	}
}

// A capture's records are written while Applies change them: the
// snapshot is the state at the capture (run with -race: the store copies
// a record a capture holds before it changes it).
func TestACaptureIsWrittenWhileItsRecordsChange(t *testing.T) {
	s := New()
	ret := model.Retention{PerFunction: 10000}
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var recs []model.Invocation
	for i := range 2000 {
		recs = append(recs, loggedRecord(i, fmt.Sprint("f", i%10), "", "line\n"))
	}
	s.AddRecords(recs, nil, ret, at)
	var want bytes.Buffer
	if _, err := s.Capture().WriteTo(&want); err != nil {
		t.Fatal(err)
	}
	captured := s.CaptureUnordered()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for round := range 5 {
			changed := slices.Clone(recs)
			for i := range changed {
				changed[i].Status, changed[i].ErrorType = model.StatusFailed, fmt.Sprint("Round", round)
				changed[i].Start = changed[i].Start.Add(time.Duration(round+1) * time.Second)
			}
			s.AddRecords(changed, nil, ret, at)
		}
	}()
	var got bytes.Buffer
	if _, err := captured.WriteTo(&got); err != nil {
		t.Fatal(err)
	}
	<-done
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatal("the capture wrote records as they were changed after it")
	}
	if r, _ := s.Record(recs[0].ID); r.ErrorType != "Round4" {
		t.Fatalf("the store holds %q, want the last round's change", r.ErrorType)
	}
}

// What a backup says of a snapshot read as it streams is what the whole
// snapshot, decoded, says.
func TestASummaryOfASnapshotIsItsCountsAndBlobs(t *testing.T) {
	snap := bigSnapshot(3000)
	for i, f := range snap.Functions {
		f.CodeSHA256 = fmt.Sprintf("%064x", i%40)
	}
	snap.Layers = []*model.Layer{{Name: "l", SHA256: fmt.Sprintf("%064x", 99)}}
	data := encodeBody(t, snap)
	whole, err := ReadSnapshot(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	counts, blobs, err := SummarizeSnapshot(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(counts, whole.Counts()) || counts["records"] != 3000 {
		t.Fatalf("counts %v, the decoded snapshot's %v", counts, whole.Counts())
	}
	if !slices.Equal(blobs, whole.Blobs()) || len(blobs) != 41 {
		t.Fatalf("%d blobs, the decoded snapshot's %d", len(blobs), len(whole.Blobs()))
	}
	if _, _, err := SummarizeSnapshot(bytes.NewReader(data[:len(data)/2])); err == nil {
		t.Fatal("half a snapshot was summarized")
	}
}
