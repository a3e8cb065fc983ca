package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/fsm"
	"nimbus/internal/logstore"
	"nimbus/internal/model"
	"nimbus/internal/state"
	"nimbus/internal/waitfor"
)

// flakyWriter is the real state machine behind a write path that fails
// while down is set, as a server's does when Raft cannot commit (no
// leader, a full disk). When refuse is set, the state machine refuses a
// RecordInvocations command holding a record of that ID, as it refuses an
// invalid command.
type flakyWriter struct {
	w        fsm.Writer
	refuse   string
	down     atomic.Bool
	failures atomic.Int64
}

func (f *flakyWriter) Write(ctx context.Context, t fsm.CommandType, data []byte) (any, error) {
	if f.down.Load() {
		f.failures.Add(1)
		return nil, errors.New("raft apply: write raft.db: no space left on device")
	}
	if f.refuse != "" && t == fsm.RecordInvocationsType && bytes.Contains(data, []byte(f.refuse)) {
		return nil, state.Errorf(state.ErrInvalid, "record %s is not valid", f.refuse)
	}
	return f.w.Write(ctx, t, data)
}

// recordCluster is one server's state store behind a flakyWriter, with a
// count of how many times each record was applied to it.
type recordCluster struct {
	store   *state.Store
	writer  *flakyWriter
	mu      sync.Mutex
	applied map[string]int
}

func newRecordCluster(refuse string) *recordCluster {
	store := state.New()
	c := &recordCluster{store: store, applied: map[string]int{},
		writer: &flakyWriter{w: fsm.Direct(fsm.New(store, discard)), refuse: refuse}}
	store.ObserveRecords(func(r model.Invocation) {
		c.mu.Lock()
		c.applied[r.ID]++
		c.mu.Unlock()
	})
	return c
}

func (c *recordCluster) timesApplied(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied[id]
}

func (c *recordCluster) control() Control { return control{c.writer, c.store} }

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func openLogs(t *testing.T, path string) *logstore.Store {
	t.Helper()
	logs, err := logstore.Open(path, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	return logs
}

// waitFor polls cond until it holds, failing the test after 20 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitfor.Until(t, 20*time.Second, what, cond)
}

func syncRecord(id string, i int) model.Invocation {
	return model.Invocation{ID: id, Namespace: "default", Function: "f", Trigger: "sync", Status: "success",
		Start: time.Now().UTC().Add(time.Duration(i) * time.Millisecond), LogTail: "hello from " + id}
}

// metricValue is the value of the counter or gauge name with labels in
// reg (0 when it has none).
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			if m.Counter != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func TestRecordsWhoseCommitFailsAreKeptAcrossARestartAndCommittedOnce(t *testing.T) {
	c := newRecordCluster("")
	c.writer.down.Store(true)
	path := filepath.Join(t.TempDir(), "logs.db")
	logs := openLogs(t, path)
	s := New(Deps{Control: c.control(), Logs: logs, Retention: model.DefaultRetention(), Log: discard})
	ids := []string{"r1", "r2", "r3"}
	for i, id := range ids {
		rec := syncRecord(id, i)
		s.AddRecord(&rec, nil)
	}
	s.AddAudit(model.AuditEntry{Time: time.Now().UTC(), KeyID: "k1", Role: "admin", Action: "PUT /v1/functions/f", Status: 200})

	waitFor(t, "the records and the audit entry kept in the log store", func() bool {
		recs, audit, err := logs.Pending()
		return err == nil && len(recs) == len(ids) && len(audit) == 1
	})
	if c.writer.failures.Load() == 0 {
		t.Fatal("no commit was attempted")
	}
	for _, id := range ids {
		if _, ok := s.PendingRecords()[id]; !ok {
			t.Fatalf("%s is not pending while its commit fails", id)
		}
		if rec, ok := s.PendingRecord(id); !ok || rec.ID != id {
			t.Fatalf("PendingRecord(%s) = %+v, %v", id, rec, ok)
		}
		// Its log, which only the record carries, is served from the log store.
		if e, found, err := logs.Get(id); err != nil || !found || e.Log != "hello from "+id {
			t.Fatalf("the log of held record %s: %+v found=%v err=%v", id, e, found, err)
		}
	}
	s.Close()
	logs.Close()
	if n := len(c.store.Records(state.RecordQuery{})); n != 0 {
		t.Fatalf("%d records committed while every commit failed", n)
	}

	// A restart: a new recorder over the same log store, the cluster still
	// unable to commit.
	logs = openLogs(t, path)
	defer logs.Close()
	s = New(Deps{Control: c.control(), Logs: logs, Retention: model.DefaultRetention(), Log: discard})
	defer s.Close()
	if p := s.PendingRecords(); len(p) != len(ids) {
		t.Fatalf("after the restart %d records are pending, want %d: %v", len(p), len(ids), p)
	}

	c.writer.down.Store(false)
	waitFor(t, "the held records committed and gone from the log store", func() bool {
		recs, audit, err := logs.Pending()
		return err == nil && len(recs) == 0 && len(audit) == 0 && s.PendingRecords() == nil
	})
	for _, id := range ids {
		rec, err := c.store.Record(id)
		if err != nil || rec.LogTail != "hello from "+id {
			t.Fatalf("record %s after the retry: %+v %v", id, rec, err)
		}
		if n := c.timesApplied(id); n != 1 {
			t.Fatalf("record %s was applied %d times, want once", id, n)
		}
	}
	if audit := c.store.Audit(0); len(audit) != 1 || audit[0].KeyID != "k1" {
		t.Fatalf("audit after the retry: %+v, want k1's entry once", audit)
	}
}

func TestARecordTheStateMachineRefusesIsDroppedAloneAndCounted(t *testing.T) {
	c := newRecordCluster("refused-record")
	logs := openLogs(t, filepath.Join(t.TempDir(), "logs.db"))
	defer logs.Close()
	reg := prometheus.NewRegistry()
	s := New(Deps{Control: c.control(), Logs: logs, Retention: model.DefaultRetention(), Log: discard, Registry: reg})
	defer s.Close()
	for i, id := range []string{"good-1", "refused-record", "good-2"} {
		rec := syncRecord(id, i)
		s.AddRecord(&rec, nil)
	}
	waitFor(t, "the valid records committed and nothing pending, in the log store either", func() bool {
		stored, _, err := logs.Pending()
		return c.timesApplied("good-1") == 1 && c.timesApplied("good-2") == 1 && s.PendingRecords() == nil &&
			err == nil && len(stored) == 0
	})
	if _, err := c.store.Record("refused-record"); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("the refused record: %v, want not found", err)
	}
	if n := metricValue(t, reg, "nimbus_records_dropped_total", map[string]string{"kind": "invocation", "reason": "refused"}); n != 1 {
		t.Fatalf("refused records counted: %v, want 1", n)
	}
}

func TestBeyondItsCapARecorderDropsWhatItCannotHoldAndCountsIt(t *testing.T) {
	c := newRecordCluster("")
	c.writer.down.Store(true)
	logs := openLogs(t, filepath.Join(t.TempDir(), "logs.db"))
	defer logs.Close()
	reg := prometheus.NewRegistry()
	recs := []model.Invocation{syncRecord("r1", 1), syncRecord("r2", 2), syncRecord("r3", 3)}
	lim := limits{heldBytes: heldSize(recs[0]) + heldSize(recs[1]), heldAudit: 1, gather: batchInterval}
	r := newRecorder(c.control(), logs, model.DefaultRetention(), discard, lim, newRecorderMetrics(reg))
	defer r.close()
	for i := range recs {
		r.add(&recs[i], nil)
		r.addAudit(model.AuditEntry{KeyID: fmt.Sprintf("k%d", i)})
	}
	// The counts change before the dropped record leaves the batch in
	// flight and before the held ones reach the log store: wait for all.
	waitFor(t, "two records and one audit entry held, in the log store too, the others dropped", func() bool {
		dropped := metricValue(t, reg, "nimbus_records_dropped_total", map[string]string{"kind": "invocation", "reason": "over_cap"})
		droppedAudit := metricValue(t, reg, "nimbus_records_dropped_total", map[string]string{"kind": "audit", "reason": "over_cap"})
		held := metricValue(t, reg, "nimbus_records_held", map[string]string{"kind": "invocation"})
		stored, audit, err := logs.Pending()
		return dropped == 1 && droppedAudit == 2 && held == 2 && len(r.pending()) == 2 &&
			err == nil && len(stored) == 2 && len(audit) == 1
	})
}
