package controlplane

import (
	"context"
	"errors"
	"time"
)

// ErrCatchingUp is the answer of a server whose state has not yet been
// current since it started (see Node.CaughtUp): what it lacks (a key, a
// function) it cannot tell from what does not exist.
var ErrCatchingUp = errors.New("this server is catching up with the cluster; retry shortly")

// CaughtUp reports whether this node's state has been current at least
// once since it started: it has applied every entry that the cluster had
// committed when, after the start, it first reached a leader (the leader's
// read index, as in ConsistentRead). A restarted node holds its snapshot
// but applies the entries after it only once a leader tells it they are
// committed, and until then it would answer for keys and functions made
// since as if they did not exist. Once true it stays true: afterwards the
// node trails the leader by the replication delay only.
//
// While it is false, each call starts an attempt to catch up in the
// background (one at a time, bounded by a few seconds), so a caller
// polls it; it never blocks. A leader that has committed an entry of its
// term is caught up at once (WaitLeader marks it so).
func (n *Node) CaughtUp() bool {
	if n.caughtUp.Load() {
		return true
	}
	if n.catchingUp.CompareAndSwap(false, true) {
		go func() {
			defer n.catchingUp.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), leaderWait)
			defer cancel()
			if n.ConsistentRead(ctx) == nil {
				if !n.caughtUp.Swap(true) {
					n.log.Info("caught up with the cluster", "after_start", time.Since(n.began).Round(time.Millisecond))
				}
			}
		}()
	}
	return false
}
