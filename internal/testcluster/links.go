package testcluster

import (
	"context"
	"fmt"

	"nimbus/internal/controlplane"
	"nimbus/internal/rpc/rpcpb"
)

// errUnreachable is what a link answers when the test has cut it: the
// call never left, as when a connection is refused.
var errUnreachable = fmt.Errorf("%w (testcluster: the leader is unreachable from this node)", controlplane.ErrNotLeader)

// LeaderLink returns how node from reaches the leader's Control service:
// a direct call to the leader's Node, as the Control RPC would make it,
// for Node.Via and Node.ConsistentReadVia. reachable, when not nil,
// says whether from can reach node to at the time of a call (the API
// network, which a test may cut apart from the Raft network); nil means
// always.
func (c *Cluster) LeaderLink(from int, reachable func(from, to int) bool) controlplane.Leader {
	return link{c: c, from: from, reachable: reachable}
}

type link struct {
	c         *Cluster
	from      int
	reachable func(from, to int) bool
}

func (l link) node(leaderID string) (*controlplane.Node, error) {
	for i, n := range l.c.Nodes {
		if n.ID() != leaderID {
			continue
		}
		if l.reachable != nil && !l.reachable(l.from, i) {
			return nil, errUnreachable
		}
		return n, nil
	}
	return nil, fmt.Errorf("testcluster: no node %q", leaderID)
}

func (l link) Apply(ctx context.Context, leaderID string, req *rpcpb.ApplyRequest) (*rpcpb.ApplyResponse, error) {
	n, err := l.node(leaderID)
	if err != nil {
		return nil, err
	}
	return n.ApplyForwarded(ctx, req), nil
}

func (l link) ReadIndex(ctx context.Context, leaderID string) (uint64, error) {
	n, err := l.node(leaderID)
	if err != nil {
		return 0, err
	}
	return n.ReadIndex(ctx)
}
