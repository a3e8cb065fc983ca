package testcluster

import (
	"context"
	"errors"
	"testing"
	"time"

	"nimbus/internal/controlplane"
	"nimbus/internal/fsm"
)

// TestAnIsolatedFollowerRefusesConsistentReadsUntilHealed cuts a follower
// off: its own state is stale, and a consistent read through it fails
// with ErrNotLeader rather than answer from that state, whether it can
// still reach the leader's API (Raft cut alone) or not. Healed, a
// consistent read through it sees the write.
func TestAnIsolatedFollowerRefusesConsistentReadsUntilHealed(t *testing.T) {
	for _, apiToo := range []bool{false, true} {
		name := "raft network cut"
		if apiToo {
			name = "raft and api networks cut"
		}
		t.Run(name, func(t *testing.T) {
			c := New(t, 3)
			leader := c.WaitLeader(nil)
			follower := (leader + 1) % 3
			var net network
			c.Isolate(follower)
			net.set(follower, apiToo)
			link := c.LeaderLink(follower, net.reachable)
			if _, err := fsm.Apply(c.Context(5*time.Second), c.Nodes[leader], upsert("f")); err != nil {
				t.Fatal(err)
			}
			if rev, _ := revision(c, follower, "f"); rev != 0 {
				t.Fatalf("the isolated follower has revision %d", rev)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			if err := c.Nodes[follower].ConsistentReadVia(ctx, link); !errors.Is(err, controlplane.ErrNotLeader) {
				t.Fatalf("consistent read on an isolated follower: got %v, want ErrNotLeader", err)
			}

			c.Heal()
			net.set(follower, false)
			c.WaitFor(10*time.Second, "a consistent read through the healed follower succeeds", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				return c.Nodes[follower].ConsistentReadVia(ctx, link) == nil
			})
			if rev, _ := revision(c, follower, "f"); rev != 1 {
				t.Fatalf("after a consistent read the follower has revision %d, want 1", rev)
			}
		})
	}
}

// TestAConsistentReadThroughAFollowerSeesTheLatestWrite writes through
// the leader and reads at once through each follower.
func TestAConsistentReadThroughAFollowerSeesTheLatestWrite(t *testing.T) {
	c := New(t, 3)
	leader := c.WaitLeader(nil)
	for i := 1; i <= 20; i++ {
		if _, err := fsm.Apply(c.Context(5*time.Second), c.Nodes[leader], upsert("f")); err != nil {
			t.Fatal(err)
		}
		for n := range c.Nodes {
			if err := c.Nodes[n].ConsistentReadVia(c.Context(5*time.Second), c.LeaderLink(n, nil)); err != nil {
				t.Fatal(err)
			}
			if rev, _ := revision(c, n, "f"); rev != i {
				t.Fatalf("after write %d, node %d reads revision %d", i, n, rev)
			}
		}
	}
}
