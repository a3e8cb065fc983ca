package e2e

import (
	"encoding/json"
	"net"
	"strings"
	"testing"

	"nimbus/pkg/client"
)

// A server that restarts with its data on another IP (a rescheduled
// Kubernetes pod) asks the leader to record its new internal address:
// the other servers reach it there, it serves what the cluster writes,
// and the workers find it again.
func TestAServerRestartedOnANewAddressRejoinsThere(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 1)
	moved := (c.leader() + 1) % 3
	p := c.servers[moved]
	c.terminate(p)

	// 127.0.0.2 is loopback too, and another IP than 127.0.0.1.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no second loopback address here: %v", err)
	}
	newRaft := ln.Addr().String()
	ln.Close()
	for i, a := range p.args {
		if a == "--raft" {
			p.args[i+1] = newRaft
		}
	}
	c.restartServer(moved)

	waitFor(t, patience, "every server lists "+p.id+" at "+newRaft+", healthy", func() bool {
		for i := range c.servers {
			cl, err := c.clusterView(i)
			if err != nil {
				return false
			}
			found := false
			for _, s := range cl.Servers {
				if s.ID == p.id {
					found = s.Raft == newRaft && s.Healthy
				}
			}
			if !found {
				return false
			}
		}
		return true
	})
	// A write through the leader reaches the moved server.
	c.deployQuick("after-move")
	// The worker heartbeats to the moved server at its new address.
	waitFor(t, patience, p.id+" sees the worker healthy", func() bool {
		cl, err := c.clusterView(moved)
		return err == nil && healthyWorkers(cl) == 1
	})
	r := c.mustCLI(moved, 0, "invoke", "after-move", "--data", `{"v": 7}`)
	if !strings.Contains(r.stdout, `"v": 7`) {
		t.Fatalf("invoke through %s after its move: %q", p.id, r.stdout)
	}
	var cl client.Cluster
	if err := json.Unmarshal([]byte(c.mustCLI(c.leader(), 0, "cluster", "-o", "json").stdout), &cl); err != nil || len(cl.Servers) != 3 {
		t.Fatalf("cluster after the move: %+v %v", cl, err)
	}
}
