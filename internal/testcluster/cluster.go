// Package testcluster runs in-process control planes for tests: N Raft
// servers over hashicorp/raft's in-memory transport, which can be
// partitioned and healed. Each server has its own data directory and the
// real FSM and state store.
package testcluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"nimbus/internal/controlplane"
)

// Cluster is a set of in-process servers.
type Cluster struct {
	t          testing.TB
	Nodes      []*controlplane.Node
	transports []*raft.InmemTransport
}

// New starts n servers that bootstrap together and returns once they
// have a leader. Everything is shut down when the test ends.
func New(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	var peers []controlplane.Peer
	for i := 0; i < n; i++ {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("s%d", i)))
		c.transports = append(c.transports, tr)
		peers = append(peers, controlplane.Peer{ID: fmt.Sprintf("s%d", i), Raft: string(addr)})
	}
	for i, a := range c.transports {
		for j, b := range c.transports {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
	for i := 0; i < n; i++ {
		node, err := controlplane.Start(controlplane.Config{
			NodeID: peers[i].ID, DataDir: t.TempDir(), Transport: c.transports[i],
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), RaftLog: io.Discard,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Shutdown() })
		if err := node.Bootstrap(peers); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, node)
	}
	c.WaitLeader(nil)
	return c
}

// Leader returns the index of a node that believes it leads, among those
// not excluded, or -1.
func (c *Cluster) Leader(exclude map[int]bool) int {
	for i, n := range c.Nodes {
		if !exclude[i] && n.IsLeader() {
			return i
		}
	}
	return -1
}

// WaitLeader polls until some node outside exclude leads, and returns it.
func (c *Cluster) WaitLeader(exclude map[int]bool) int {
	c.t.Helper()
	var leader int
	c.WaitFor(10*time.Second, "a leader is elected", func() bool {
		leader = c.Leader(exclude)
		return leader >= 0
	})
	return leader
}

// Isolate cuts node i off from every other node, both ways.
func (c *Cluster) Isolate(i int) {
	for j, tr := range c.transports {
		if j != i {
			tr.Disconnect(c.transports[i].LocalAddr())
			c.transports[i].Disconnect(tr.LocalAddr())
		}
	}
}

// Heal reconnects every pair of nodes.
func (c *Cluster) Heal() {
	for i, a := range c.transports {
		for j, b := range c.transports {
			if i != j {
				a.Connect(b.LocalAddr(), b)
			}
		}
	}
}

// WaitFor polls cond until it holds or timeout passes.
func (c *Cluster) WaitFor(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting until %s", timeout, what)
		}
		<-tick.C
	}
}

// Context returns a context that ends after d or with the test.
func (c *Cluster) Context(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	c.t.Cleanup(cancel)
	return ctx
}
