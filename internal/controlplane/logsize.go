package controlplane

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// The Raft log is sized by bytes, not only by entries. Raft counts
// entries (a snapshot every SnapshotThreshold, TrailingLogs kept behind
// it), but the entries that carry invocation records hold hundreds of
// them each: under load 4,096 entries were hundreds of MB, and raft.db,
// whose file never shrinks, kept the high-water mark for good (170 MB
// after 480k invocations, 700 MB after 2.3M). So a snapshot is also
// taken once the entries stored since the last one reach the larger of
// minSnapshotBytes and half the last snapshot's size (the log since a
// snapshot never outweighs half the state it would rebuild), and the
// entries kept behind a snapshot are as many as make an eighth of the
// state (at least minTrailingBytes) at the
// recent average entry size. raft.db's high-water mark is then about
// two thirds of the state's size (or 6 MB), however long the cluster
// runs; with the one snapshot kept (node.go), the data directory holds
// about 1.6 times the state.
const (
	// snapshotsKept is how many snapshots the snapshot store keeps: the
	// newest (Raft writes a snapshot beside the old one and removes the
	// old only once the new one is complete).
	snapshotsKept    = 1
	minSnapshotBytes = 4 << 20
	minTrailingBytes = 2 << 20
	minTrailingLogs  = 128
	maxTrailingLogs  = 2048
	logBudgetEvery   = time.Second
)

// logBudget counts what the log store is given and what snapshots
// weigh. Safe for concurrent use.
type logBudget struct {
	sinceSnapshot atomic.Int64 // bytes stored since the last snapshot began
	bytes         atomic.Int64 // bytes stored, ever (for the average)
	entries       atomic.Int64 // entries stored, ever
	snapshot      atomic.Int64 // bytes of the last snapshot persisted
}

func (b *logBudget) stored(logs ...*raft.Log) {
	var n int64
	for _, l := range logs {
		n += int64(len(l.Data)) + 32 // the entry's header, roughly
	}
	b.sinceSnapshot.Add(n)
	b.bytes.Add(n)
	b.entries.Add(int64(len(logs)))
}

// snapshotDue reports whether the log since the last snapshot has
// grown to what a snapshot is due at.
func (b *logBudget) snapshotDue() bool {
	return b.sinceSnapshot.Load() >= max(minSnapshotBytes, b.snapshot.Load()/2)
}

// trailingLogs is how many entries to keep behind a snapshot: those
// that make max(minTrailingBytes, an eighth of the state) at the
// average entry size, within [minTrailingLogs, maxTrailingLogs].
func (b *logBudget) trailingLogs() uint64 {
	entries := b.entries.Load()
	if entries == 0 {
		return maxTrailingLogs
	}
	avg := max(b.bytes.Load()/entries, 1)
	want := max(minTrailingBytes, b.snapshot.Load()/8) / avg
	return uint64(min(max(want, minTrailingLogs), maxTrailingLogs))
}

// countingLogStore is the log store, counting into a logBudget what it
// stores.
type countingLogStore struct {
	raft.LogStore
	budget *logBudget
}

func (c countingLogStore) StoreLog(l *raft.Log) error {
	c.budget.stored(l)
	return c.LogStore.StoreLog(l)
}

func (c countingLogStore) StoreLogs(logs []*raft.Log) error {
	c.budget.stored(logs...)
	return c.LogStore.StoreLogs(logs)
}

// countedSnapshot is an FSM snapshot whose persisted size goes into the
// budget.
type countedSnapshot struct {
	raft.FSMSnapshot
	budget *logBudget
}

func (c countedSnapshot) Persist(sink raft.SnapshotSink) error {
	cs := &countingSink{SnapshotSink: sink}
	err := c.FSMSnapshot.Persist(cs)
	if err == nil {
		c.budget.snapshot.Store(cs.n)
	}
	return err
}

type countingSink struct {
	raft.SnapshotSink
	n int64
}

func (c *countingSink) Write(p []byte) (int, error) {
	n, err := c.SnapshotSink.Write(p)
	c.n += int64(n)
	return n, err
}

// keepLogWithinBudget takes a snapshot whenever the log since the last
// one is due one, and keeps the trailing entries sized by bytes, until
// ctx ends.
func (n *Node) keepLogWithinBudget(ctx context.Context) {
	tick := time.NewTicker(logBudgetEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rc := n.raft.ReloadableConfig()
		if want := n.budget.trailingLogs(); want != rc.TrailingLogs {
			rc.TrailingLogs = want
			if err := n.raft.ReloadConfig(rc); err != nil {
				n.log.Warn("sizing the trailing Raft log", "err", err)
			}
		}
		if !n.budget.snapshotDue() {
			continue
		}
		if err := n.raft.Snapshot().Error(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
			n.log.Warn("a snapshot the log's size called for failed", "err", err, "log_bytes", n.budget.sinceSnapshot.Load())
		}
	}
}
