package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"nimbus/internal/model"
	"nimbus/internal/state"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newFSM() (*FSM, *state.Store) {
	s := state.New()
	return New(s, slog.New(slog.NewTextHandler(io.Discard, nil))), s
}

// apply encodes cmd and applies it as a committed Raft log entry.
func apply(t *testing.T, f *FSM, ct CommandType, cmd any) any {
	t.Helper()
	got, data, err := encode(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if got != ct {
		t.Fatalf("%T is command %s, not %s", cmd, got, ct)
	}
	return f.Apply(&raft.Log{Type: raft.LogCommand, Data: data})
}

func fn(name, sha string) model.Function {
	return model.Function{FunctionConfig: model.FunctionConfig{Name: name, Runtime: "python3.11", Handler: "main.handler", MemoryMB: 128}, CodeSHA256: sha}
}

func TestUpsertFunctionBumpsTheRevision(t *testing.T) {
	f, s := newFSM()
	r1 := apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0}).(UpsertFunctionResult)
	if !r1.Created || r1.Function.Revision != 1 || !r1.Function.CreatedAt.Equal(t0) {
		t.Fatalf("first upsert: %+v", r1)
	}
	r2 := apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "bb"), Now: t0.Add(time.Hour)}).(UpsertFunctionResult)
	if r2.Created || r2.Function.Revision != 2 || !r2.Function.CreatedAt.Equal(t0) || !r2.Function.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("second upsert: %+v", r2)
	}
	got, err := s.Function("default/hello")
	if err != nil || got.CodeSHA256 != "bb" || got.Revision != 2 {
		t.Fatalf("stored: %+v %v", got, err)
	}
}

func TestDeleteFunction(t *testing.T) {
	f, s := newFSM()
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0})
	if res := apply(t, f, DeleteFunctionType, DeleteFunction{Name: "hello"}); res != (None{}) {
		t.Fatalf("delete: %v", res)
	}
	if _, err := s.Function("default/hello"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	res := apply(t, f, DeleteFunctionType, DeleteFunction{Name: "hello"})
	if err, ok := res.(error); !ok || !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("deleting a missing function: want ErrNotFound, got %v", res)
	}
}

func TestRecordInvocationsAppliesRetention(t *testing.T) {
	f, s := newFSM()
	rec := func(id, function string, start time.Time) model.Invocation {
		return model.Invocation{ID: id, Function: function, Start: start, Status: model.StatusSuccess}
	}
	ret := model.Retention{PerFunction: 2, MaxAge: time.Hour}
	apply(t, f, RecordInvocationsType, RecordInvocations{Records: []model.Invocation{
		rec("a", "f", t0), rec("b", "f", t0.Add(time.Minute)), rec("c", "f", t0.Add(2*time.Minute)), rec("x", "g", t0),
	}, Retention: ret, Now: t0.Add(2 * time.Minute)})
	if hasRecord(s, "a") || !hasRecord(s, "b") || !hasRecord(s, "c") || !hasRecord(s, "x") {
		t.Fatal("count retention: want a dropped and b, c, x kept")
	}
	res := apply(t, f, RecordInvocationsType, RecordInvocations{Retention: ret, Now: t0.Add(62 * time.Minute)}).(RecordInvocationsResult)
	if hasRecord(s, "b") || hasRecord(s, "x") || !hasRecord(s, "c") {
		t.Fatal("age retention: want b and x dropped, c kept")
	}
	if len(res.Removed) != 2 {
		t.Fatalf("removed: %v", res.Removed)
	}
	got := s.Records(state.RecordQuery{Function: "f"})
	if len(got) != 1 || got[0].ID != "c" {
		t.Fatalf("records of f: %+v", got)
	}
}

func TestARecordWithAKnownIDReplacesTheOld(t *testing.T) {
	f, s := newFSM()
	r := model.Invocation{ID: "a", Function: "f", Start: t0, Status: "running"}
	apply(t, f, RecordInvocationsType, RecordInvocations{Records: []model.Invocation{r}, Retention: model.DefaultRetention(), Now: t0})
	r.Status = model.StatusFailed
	apply(t, f, RecordInvocationsType, RecordInvocations{Records: []model.Invocation{r}, Retention: model.DefaultRetention(), Now: t0})
	got := s.Records(state.RecordQuery{})
	if len(got) != 1 || got[0].Status != model.StatusFailed {
		t.Fatalf("got %+v", got)
	}
}

func TestPutKey(t *testing.T) {
	f, s := newFSM()
	apply(t, f, PutKeyType, PutKey{Key: model.Key{ID: "k1", SecretHash: "abc", Role: "admin", CreatedAt: t0}})
	k, err := s.Key("k1")
	if err != nil || k.Role != "admin" || k.SecretHash != "abc" {
		t.Fatalf("got %+v %v", k, err)
	}
}

func TestUnknownAndCorruptCommandsAreSkippedNotFatal(t *testing.T) {
	f, _ := newFSM()
	if _, ok := f.Apply(&raft.Log{Type: raft.LogCommand, Data: []byte{200, '{', '}'}}).(error); !ok {
		t.Fatal("unknown type: want an error result")
	}
	if _, ok := f.Apply(&raft.Log{Type: raft.LogCommand, Data: []byte{byte(UpsertFunctionType), '{'}}).(error); !ok {
		t.Fatal("corrupt body: want an error result")
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	f, s := newFSM()
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0})
	apply(t, f, PutKeyType, PutKey{Key: model.Key{ID: "k1", SecretHash: "abc", Role: "admin"}})
	apply(t, f, RecordInvocationsType, RecordInvocations{Records: []model.Invocation{{ID: "r1", Function: "hello", Start: t0}}, Retention: model.DefaultRetention(), Now: t0})

	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// A write after the snapshot was taken must not leak into it.
	apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("later", "bb"), Now: t0})

	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	f2, s2 := newFSM()
	if err := f2.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Function("default/hello"); err != nil {
		t.Fatal("restored store lacks hello")
	}
	if _, err := s2.Function("default/later"); err == nil {
		t.Fatal("snapshot holds a write made after it was taken")
	}
	if _, err := s2.Key("k1"); err != nil || !hasRecord(s2, "r1") {
		t.Fatal("restored store lacks the key or the record")
	}
	if len(s.Functions("")) != 2 {
		t.Fatal("original store changed by snapshotting")
	}
}

// restored is a new FSM restored from a snapshot of f.
func restored(t *testing.T, f *FSM) (*FSM, *state.Store) {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	f2, s2 := newFSM()
	if err := f2.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	return f2, s2
}

type memSink struct{ bytes.Buffer }

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Cancel() error { return nil }
func (m *memSink) Close() error  { return nil }

func TestPutServer(t *testing.T) {
	f, s := newFSM()
	apply(t, f, PutServerType, PutServer{Server: model.ServerInfo{ID: "s1", Raft: "127.0.0.1:7001", APIAddr: "127.0.0.1:8001"}})
	apply(t, f, PutServerType, PutServer{Server: model.ServerInfo{ID: "s1", Raft: "127.0.0.1:7001", APIAddr: "127.0.0.1:9001"}})
	info, ok := s.ServerInfo("s1")
	if !ok || info.APIAddr != "127.0.0.1:9001" || len(s.ServerInfos()) != 1 {
		t.Fatalf("got %+v %v", info, ok)
	}
}

func TestForwardedResultsDecodeToTheirLocalTypes(t *testing.T) {
	f, _ := newFSM()
	res := apply(t, f, UpsertFunctionType, UpsertFunction{Function: fn("hello", "aa"), Now: t0})
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResult(UpsertFunctionType, b)
	if err != nil || got.(UpsertFunctionResult).Function.Revision != 1 || !got.(UpsertFunctionResult).Created {
		t.Fatalf("got %+v %v", got, err)
	}
}

// hasRecord reports whether the store holds a record with that ID.
func hasRecord(s *state.Store, id string) bool {
	_, err := s.Record(id)
	return err == nil
}
