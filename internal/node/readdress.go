package node

import (
	"context"
	"log/slog"
	"time"

	"nimbus/internal/controlplane"
	"nimbus/internal/rpc"
)

// reannounceEvery is how often a server compares the address the Raft
// configuration holds for it with the one it advertises.
const reannounceEvery = 2 * time.Second

// reannounce asks the leader to record this server's internal address
// whenever the Raft configuration holds another one for it: a server
// that restarted with its state on a new IP (a rescheduled Kubernetes
// pod, a replaced VM keeping its disk) is otherwise unreachable for the
// other servers, which keep sending to the old address, and it never
// rejoins. The leader's Join updates the address of a server it knows in
// place (hashicorp/raft's AddVoter and AddNonvoter), keeping its
// suffrage; registerSelf then records the new address in the state.
func reannounce(ctx context.Context, cp *controlplane.Node, pool *rpc.Pool, apiAddr string, log *slog.Logger) {
	t := time.NewTicker(reannounceEvery)
	defer t.Stop()
	announced := ""
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		old, voter, others, ok := cp.ConfiguredSelf()
		if !ok || old == cp.RaftAddr() || len(others) == 0 {
			continue
		}
		if announced != old {
			announced = old
			log.Warn("the cluster knows this server at another internal address: asking the leader to record this one",
				"configured", old, "advertised", cp.RaftAddr())
		}
		askToJoin(ctx, pool, others, cp, apiAddr, !voter, log)
	}
}
