package service

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"nimbus/internal/model"
)

// TestAWaitedRecordDoesNotWaitOutTheGatheringInterval gives a recorder
// an hour-long gathering interval and adds records that nobody waits for
// (each starts an interval) between records that are waited for: every
// wait must end, at a commit, long before an hour. (A stale wake once
// made each waited record sit out a whole interval.)
func TestAWaitedRecordDoesNotWaitOutTheGatheringInterval(t *testing.T) {
	c := newRecordCluster("")
	logs := openLogs(t, filepath.Join(t.TempDir(), "logs.db"))
	defer logs.Close()
	lim := defaultLimits
	lim.gather = time.Hour
	r := newRecorder(c.control(), logs, model.DefaultRetention(), discard, lim, newRecorderMetrics(nil))
	defer r.close()
	for i := range 5 {
		r.add(&model.Invocation{ID: fmt.Sprint("plain", i), Function: "f", Start: time.Now().UTC()}, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		select {
		case <-r.addWaiting(model.Invocation{ID: fmt.Sprint("waited", i), Function: "f", Start: time.Now().UTC()}, nil):
		case <-ctx.Done():
			t.Fatalf("waited record %d still waits after 30 s: behind the hour-long gathering interval", i)
		}
		cancel()
	}
}
