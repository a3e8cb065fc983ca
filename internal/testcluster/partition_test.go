package testcluster

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
)

func deploy(c *Cluster, node int, name string, timeout time.Duration) error {
	_, err := fsm.Apply(c.Context(timeout), c.Nodes[node], fsm.UpsertFunction{
		Function: model.Function{FunctionConfig: model.FunctionConfig{Name: name}},
		Now:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	})
	return err
}

func names(c *Cluster, node int) []string {
	var out []string
	for _, f := range c.Nodes[node].Store().Functions("") {
		out = append(out, fmt.Sprintf("%s@%d", f.Name, f.Revision))
	}
	return out
}

// TestAPartitionedLeaderCannotCommitAndHealingLeavesOneHistory cuts the
// leader off: its writes fail, the majority elects another leader and
// commits, and after healing every server holds the majority's history
// and nothing the minority tried to write.
func TestAPartitionedLeaderCannotCommitAndHealingLeavesOneHistory(t *testing.T) {
	c := New(t, 3)
	old := c.WaitLeader(nil)
	if err := deploy(c, old, "before", 5*time.Second); err != nil {
		t.Fatal(err)
	}

	c.Isolate(old)
	if err := deploy(c, old, "minority", 2*time.Second); err == nil {
		t.Fatal("an isolated leader committed a write")
	}
	leader := c.WaitLeader(map[int]bool{old: true})
	if err := deploy(c, leader, "majority", 5*time.Second); err != nil {
		t.Fatalf("the majority could not commit: %v", err)
	}

	c.Heal()
	want := []string{"before@1", "majority@1"}
	c.WaitFor(10*time.Second, "every server holds the same history", func() bool {
		for i := range c.Nodes {
			if !slices.Equal(names(c, i), want) {
				return false
			}
		}
		return true
	})
}

// TestAFollowerCutOffCatchesUp isolates a follower while the others keep
// committing; healed, it catches up.
func TestAFollowerCutOffCatchesUp(t *testing.T) {
	c := New(t, 3)
	leader := c.WaitLeader(nil)
	follower := (leader + 1) % 3
	c.Isolate(follower)
	for i := 0; i < 20; i++ {
		if err := deploy(c, leader, fmt.Sprintf("f%02d", i), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if len(names(c, follower)) != 0 {
		t.Fatal("an isolated follower received writes")
	}
	c.Heal()
	c.WaitFor(10*time.Second, "the follower catches up", func() bool {
		return len(names(c, follower)) == 20 && slices.Equal(names(c, follower), names(c, leader))
	})
}
