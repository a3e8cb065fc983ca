package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"nimbus/internal/model"
)

// releaseSnapshot is a version 1 snapshot written by release da2c3ac (the
// replay fixture's, see e2e/testdata/release-da2c3ac/README.md).
const releaseSnapshot = "../../e2e/testdata/release-da2c3ac/data/raft/snapshots/3-61-1796496540421/state.bin"

func TestSnapshotVersions(t *testing.T) {
	v1, err := os.ReadFile(releaseSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	s := New()
	if err := s.Restore(bytes.NewReader(v1)); err != nil {
		t.Fatalf("a version 1 snapshot does not restore: %v", err)
	}
	snap := s.Capture()
	counts := map[string][2]int{
		"functions": {len(snap.Functions), 7}, "keys": {len(snap.Keys), 3}, "dead letters": {len(snap.DeadLetters), 2},
		"schedules": {len(snap.Schedules), 3}, "subscriptions": {len(snap.Subscriptions), 1}, "audit": {len(snap.Audit), 22},
		"namespaces": {len(snap.Namespaces), 1}, "records": {len(snap.Records), 8}, "users": {len(snap.Users), 3},
		"sessions": {len(snap.Sessions), 1},
	}
	for what, c := range counts {
		if c[0] != c[1] {
			t.Errorf("restored %d %s, the release stored %d", c[0], what, c[1])
		}
	}

	var v2 bytes.Buffer
	if _, err := snap.WriteTo(&v2); err != nil {
		t.Fatal(err)
	}
	header, body, _ := strings.Cut(v2.String(), "\n")
	if header != `{"nimbus_snapshot":2}` {
		t.Errorf("header line = %q", header)
	}
	// The model types encode what the release's types did, field for
	// field: the body is the very snapshot the release wrote.
	if body != string(v1) {
		t.Errorf("the version 2 body differs from the version 1 snapshot it was restored from:\n%s\n%s", body, v1)
	}

	again := New()
	if err := again.Restore(&v2); err != nil {
		t.Fatalf("a version 2 snapshot does not restore: %v", err)
	}
	var round bytes.Buffer
	if _, err := again.Capture().WriteTo(&round); err != nil {
		t.Fatal(err)
	}
	if round.String() != header+"\n"+body {
		t.Errorf("a version 2 snapshot does not round-trip")
	}
}

func TestSnapshotOfANewerVersionIsRefused(t *testing.T) {
	err := New().Restore(strings.NewReader(`{"nimbus_snapshot":3}` + "\n{}\n"))
	if err == nil || !strings.Contains(err.Error(), "version 3") {
		t.Fatalf("err = %v, want version 3 refused", err)
	}
}

// A snapshot is written field by field and element by element, in the
// very bytes encoding/json's Encoder writes for it: empty, and full of
// functions, records, metric history, queued events and settings.
func TestStreamedSnapshotIsTheEncodersJSON(t *testing.T) {
	v1, err := os.ReadFile(releaseSnapshot)
	if err != nil {
		t.Fatal(err)
	}
	full := New()
	if err := full.Restore(bytes.NewReader(v1)); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var recs []model.Invocation
	for i := range 300 {
		f := scaleFunction(i)
		if _, _, err := full.UpsertFunction(f, now); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, model.Invocation{ID: fmt.Sprint("r", i), Namespace: f.Namespace, Function: f.Name, Status: model.StatusSuccess,
			Start: now.Add(time.Duration(i) * time.Second), DurationMS: float64(i), Result: json.RawMessage(`{"a":"<b>"}`), LogTail: "line <&>\n"})
	}
	full.AddRecords(recs, nil, model.DefaultRetention(), now.Add(time.Hour))
	full.Enqueue([]model.QueueItem{{RequestID: "q1", Function: "fn-000001", Namespace: "team-1", Event: json.RawMessage(`{}`), EnqueuedAt: now}})
	for name, snap := range map[string]*Snapshot{"empty": New().Capture(), "full": full.Capture()} {
		var want, got bytes.Buffer
		if err := json.NewEncoder(&want).Encode(snap); err != nil {
			t.Fatal(err)
		}
		if err := encodeStreamed(&got, snap); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			i := 0
			for i < min(got.Len(), want.Len()) && got.Bytes()[i] == want.Bytes()[i] {
				i++
			}
			t.Fatalf("%s: the streamed JSON differs from the Encoder's at byte %d: %.80q vs %.80q", name, i, got.Bytes()[i:], want.Bytes()[i:])
		}
	}
}
