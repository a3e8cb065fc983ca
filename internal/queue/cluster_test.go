package queue

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"nimbus/internal/controlplane"
	"nimbus/internal/fsm"
	"nimbus/internal/testcluster"
)

// viaLeader is a server's Control: its own store, and writes forwarded
// to the leader when it does not lead.
type viaLeader struct {
	*controlplane.Node
	w fsm.Writer
}

func (v viaLeader) Write(ctx context.Context, t fsm.CommandType, data []byte) (any, error) {
	return v.w.Write(ctx, t, data)
}

func TestEventsEnqueuedThroughEveryServerOfAClusterRunOnceEachOnTheLeader(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitLeader(nil)
	controls := make([]Control, len(c.Nodes))
	for i, n := range c.Nodes {
		controls[i] = viaLeader{n, n.Via(c.LeaderLink(i, nil))}
	}
	lcp := controls[leader]
	deploy(t, lcp, newFunction("f"))
	w := newWorker(4, always(okResult(`1`)))
	d := startDispatcher(t, lcp, w, Hooks{}, newLogSink(t))

	const perServer = 15
	var wg sync.WaitGroup
	var ids []string
	for i, cp := range controls {
		e := newEnqueuer(t, cp)
		if i == leader {
			e.Committed = d.Wake
		}
		for j := range perServer {
			id := fmt.Sprintf("s%d-%d", i, j)
			ids = append(ids, id)
			wg.Go(func() {
				if err := e.Enqueue(withDefaultTimeout(t), newEvent(id, "f")); err != nil {
					t.Errorf("enqueueing %s through server %d: %v", id, i, err)
					return
				}
				// Acknowledged: committed, so the leader that answered
				// has applied it (whichever server leads by now).
				applied := false
				for _, cp := range controls {
					_, ok := recordOf(cp, id)
					applied = applied || ok
				}
				if !applied {
					t.Errorf("%s was acknowledged but no server has applied it", id)
				}
			})
		}
	}
	wg.Wait()
	for i, cp := range controls {
		waitFor(t, fmt.Sprintf("server %d to see every event succeed", i), func() bool {
			for _, id := range ids {
				if r, _ := recordOf(cp, id); r.Status != statusSuccess {
					return false
				}
			}
			return true
		})
	}
	for _, id := range ids {
		if n := len(w.callsOf(id)); n != 1 {
			t.Errorf("%s ran %d times; want once", id, n)
		}
		if r, _ := recordOf(lcp, id); r.Attempts != 1 {
			t.Errorf("%s: %d attempts; want 1", id, r.Attempts)
		}
	}
}
