package controlplane

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"nimbus/internal/fsm"
	"nimbus/internal/waitfor"
)

func TestTheTrailingLogIsSizedByBytes(t *testing.T) {
	cases := []struct {
		name            string
		bytes, entries  int64
		snapshot        int64
		want            uint64
		dueAt, notDueAt int64
	}{
		{"nothing stored yet keeps the most", 0, 0, 0, maxTrailingLogs, minSnapshotBytes, minSnapshotBytes - 1},
		{"big entries keep few", 10 << 20, 1000, 0, minTrailingBytes / (10 << 20 / 1000), minSnapshotBytes, 1},
		{"huge entries keep the least", 1 << 30, 10, 0, minTrailingLogs, minSnapshotBytes, 1},
		{"small entries keep the most", 1 << 20, 10000, 0, maxTrailingLogs, minSnapshotBytes, 1},
		{"a big state keeps an eighth of it", 400 << 20, 4000, 200 << 20, (200 << 20 / 8) / (400 << 20 / 4000), 100 << 20, 100<<20 - 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b logBudget
			b.bytes.Store(c.bytes)
			b.entries.Store(c.entries)
			b.snapshot.Store(c.snapshot)
			if got := b.trailingLogs(); got != c.want {
				t.Errorf("trailing logs %d, want %d", got, c.want)
			}
			b.sinceSnapshot.Store(c.dueAt)
			if !b.snapshotDue() {
				t.Errorf("no snapshot due at %d bytes", c.dueAt)
			}
			b.sinceSnapshot.Store(c.notDueAt)
			if c.notDueAt > 1 && b.snapshotDue() {
				t.Errorf("a snapshot due at %d bytes", c.notDueAt)
			}
		})
	}
}

// Entries far fewer than Raft's entry threshold but heavier than the
// byte budget get snapshotted and compacted: the log does not keep them.
func TestAHeavyLogIsSnapshottedAndCompactedLongBeforeItsEntryCount(t *testing.T) {
	n := startSingle(t, t.TempDir())
	defer n.Shutdown()
	value := strings.Repeat("x", 96<<10)
	ctx := context.Background()
	for i := range 200 { // ~19 MB in 200 entries, against a threshold of 4,096
		if _, err := fsm.Apply(ctx, n, fsm.PutSetting{Key: fmt.Sprintf("k%d", i%8), Value: value}); err != nil {
			t.Fatal(err)
		}
	}
	var first uint64
	if !waitfor.Poll(time.Minute, func() bool {
		first, _ = n.logStore.FirstIndex()
		return first > 1 && n.snapshotIndex() > 0
	}) {
		t.Fatalf("the log was never compacted: first index %d, last snapshot %d, %d bytes since", first, n.snapshotIndex(), n.budget.sinceSnapshot.Load())
	}
	if rc := n.raft.ReloadableConfig(); rc.TrailingLogs >= raft.DefaultConfig().TrailingLogs {
		t.Errorf("the trailing log is %d entries of ~96 KB", rc.TrailingLogs)
	}
}
