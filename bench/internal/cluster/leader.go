package cluster

import (
	"context"
	"fmt"
	"time"

	"nimbus/pkg/client"
)

// View asks the server whose API is at addr for GET /v1/cluster.
type View func(ctx context.Context, addr string) (client.Cluster, error)

// Agreed asks every server for its view once, in order, and returns the
// index in c.Servers of the leader if every server answers, names the
// same single leader, sees all three servers and every worker started
// healthy. Otherwise it returns -1 and what is missing. views are the
// answers, one per server, when the leader is found.
func (c *Cluster) Agreed(ctx context.Context, view View) (leader int, views []client.Cluster, why string) {
	leaderID := ""
	for _, s := range c.Servers {
		cl, err := view(ctx, s.API)
		if err != nil {
			return -1, nil, err.Error()
		}
		ls := Leaders(cl)
		switch {
		case len(ls) != 1:
			return -1, nil, fmt.Sprintf("%s names %d leaders %v", s.ID, len(ls), ls)
		case leaderID != "" && ls[0] != leaderID:
			return -1, nil, fmt.Sprintf("%s names %s as leader, another server %s", s.ID, ls[0], leaderID)
		case len(cl.Servers) != len(c.Servers):
			return -1, nil, fmt.Sprintf("%s sees %d servers", s.ID, len(cl.Servers))
		case healthyWorkers(cl) < len(c.Workers):
			return -1, nil, fmt.Sprintf("%s sees %d healthy workers of %d", s.ID, healthyWorkers(cl), len(c.Workers))
		}
		leaderID = ls[0]
		views = append(views, cl)
	}
	for i, s := range c.Servers {
		if s.ID == leaderID {
			return i, views, ""
		}
	}
	return -1, nil, "the leader " + leaderID + " is not one of the servers started"
}

// Settle calls try every interval until it returns a leader index (>= 0),
// an error, or limit has passed; why is what try last found missing.
func Settle(ctx context.Context, limit, interval time.Duration, try func(context.Context) (leader int, why string, err error)) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		leader, why, err := try(ctx)
		if err != nil {
			return -1, err
		}
		if leader >= 0 {
			return leader, nil
		}
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("not settled within %v: %s", limit, why)
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// Leaders returns the IDs of the servers a view names as leader. A view
// may name two for a few seconds after a leader dies: the server answering
// knows the new leader, and still shows the dead one in the role it last
// reported of itself.
func Leaders(cl client.Cluster) []string {
	var out []string
	for _, s := range cl.Servers {
		if s.Role == "leader" {
			out = append(out, s.ID)
		}
	}
	return out
}

func healthyWorkers(cl client.Cluster) int {
	n := 0
	for _, w := range cl.Workers {
		if w.Healthy {
			n++
		}
	}
	return n
}
