package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"nimbus/internal/rpc/rpcpb"
)

// ConsistentRead makes this node's state reflect every write committed
// before the call: when it returns nil, a read of Store() is linearizable.
// The leader confirms its leadership with a quorum; a follower asks the
// leader for its commit index over the Control RPC and waits until its
// state store reflects that index. Like a write it waits a few seconds for a leader, then
// answers ErrNotLeader; it also answers ErrNotLeader when this node cannot
// catch up before ctx ends (an isolated follower).
func (n *Node) ConsistentRead(ctx context.Context) error {
	return n.ConsistentReadVia(ctx, rpcLeader{n})
}

// ConsistentReadVia is ConsistentRead reaching the leader through leader
// when this node is a follower.
func (n *Node) ConsistentReadVia(ctx context.Context, leader Leader) error {
	deadline := time.Now().Add(leaderWait)
	for {
		index, err := n.readIndexOnce(ctx, leader)
		if err == nil {
			return n.waitAppliedIndex(ctx, index)
		}
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (consistent read: %v)", ErrNotLeader, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *Node) readIndexOnce(ctx context.Context, leader Leader) (uint64, error) {
	if n.IsLeader() {
		return n.ReadIndex(ctx)
	}
	_, leaderID := n.raft.LeaderWithID()
	if leaderID == "" {
		return 0, ErrNotLeader
	}
	index, err := leader.ReadIndex(ctx, string(leaderID))
	if err != nil && !errors.Is(err, ErrNotLeader) {
		return 0, fmt.Errorf("%w (asking leader %s for its read index: %v)", ErrNotLeader, leaderID, err)
	}
	return index, err
}

// ReadIndex serves a consistent read on the leader: it returns an index
// such that every write acknowledged before the call has an index no
// greater, having confirmed with a quorum that this node still leads
// (Raft's read-index protocol). It returns ErrNotLeader on a follower or
// when leadership is lost meanwhile.
func (n *Node) ReadIndex(ctx context.Context) (uint64, error) {
	if !n.IsLeader() {
		return 0, ErrNotLeader
	}
	// A new leader's commit index may lag what its predecessor
	// acknowledged until it has committed an entry of its own term; a
	// barrier commits one (and applies everything before it).
	if !n.committedInTerm() {
		if err := n.raft.Barrier(time.Until(deadline(ctx))).Error(); err != nil {
			return 0, leadershipErr(err)
		}
	}
	index := n.raft.CommitIndex()
	if err := waitFuture(ctx, n.raft.VerifyLeader()); err != nil {
		return 0, leadershipErr(err)
	}
	return index, nil
}

// committedInTerm reports whether the entry at the commit index belongs to
// the current term.
func (n *Node) committedInTerm() bool {
	var l raft.Log
	if err := n.logStore.GetLog(n.raft.CommitIndex(), &l); err != nil {
		return false
	}
	return l.Term == n.raft.CurrentTerm()
}

func leadershipErr(err error) error {
	if isLeadershipError(err) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w (%v)", ErrNotLeader, err)
	}
	return err
}

// waitFuture waits for f, or until ctx ends.
func waitFuture(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitAppliedIndex waits until this node's state store reflects every
// entry up to index, up to leaderWait or until ctx ends, and answers
// ErrNotLeader if it does not.
//
// raft.AppliedIndex is not enough: Raft counts an entry applied once it
// has queued it for the FSM. So once Raft has reached index, this waits
// until the FSM has applied the last command at or below it (entries of
// other types never reach the FSM).
func (n *Node) waitAppliedIndex(ctx context.Context, index uint64) error {
	ctx, cancel := context.WithTimeout(ctx, leaderWait)
	defer cancel()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var cmd uint64
	found := false
	for {
		if !found && n.raft.AppliedIndex() >= index {
			cmd, found = n.lastCommand(index)
			if !found {
				return nil
			}
		}
		if found && n.applied.covers(cmd, n.snapshotIndex) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (this server has applied %d of %d for a consistent read)", ErrNotLeader, n.raft.AppliedIndex(), index)
		case <-tick.C:
		}
	}
}

// lastCommand returns the index of the last command entry at or below
// index in this node's log, and false when there is none in the log
// (those before were compacted into a snapshot, which the FSM holds).
func (n *Node) lastCommand(index uint64) (uint64, bool) {
	first, err := n.logStore.FirstIndex()
	if err != nil {
		return 0, false
	}
	for i := index; i >= first && i > 0; i-- {
		var l raft.Log
		if err := n.logStore.GetLog(i, &l); err != nil {
			return 0, false
		}
		if l.Type == raft.LogCommand {
			return i, true
		}
	}
	return 0, false
}

func (n *Node) snapshotIndex() uint64 { return parseUint(n.raft.Stats()["last_snapshot_index"]) }

// appliedFSM wraps the FSM to record the index of the last command it
// applied.
type appliedFSM struct {
	raft.FSM
	last     atomic.Uint64
	restored atomic.Bool // a snapshot was restored and nothing applied since
	budget   *logBudget  // told of each snapshot, and its size
	// restoreTook is how long the last Restore took, in nanoseconds.
	restoreTook atomic.Int64
}

// Snapshot starts a snapshot: the log stored from here on counts
// towards the next one, and its size, once persisted, sizes the log.
func (a *appliedFSM) Snapshot() (raft.FSMSnapshot, error) {
	s, err := a.FSM.Snapshot()
	if err != nil {
		return nil, err
	}
	a.budget.sinceSnapshot.Store(0)
	return countedSnapshot{FSMSnapshot: s, budget: a.budget}, nil
}

func (a *appliedFSM) Apply(l *raft.Log) any {
	res := a.FSM.Apply(l)
	a.last.Store(l.Index)
	a.restored.Store(false)
	return res
}

func (a *appliedFSM) Restore(r io.ReadCloser) error {
	began := time.Now()
	err := a.FSM.Restore(r)
	a.restoreTook.Store(int64(time.Since(began)))
	a.restored.Store(true)
	return err
}

// covers reports whether the FSM's state includes the command at index.
// Right after a restore it asks snapshotIndex which index the restored
// snapshot holds.
func (a *appliedFSM) covers(index uint64, snapshotIndex func() uint64) bool {
	if a.last.Load() >= index {
		return true
	}
	return a.restored.Load() && snapshotIndex() >= index
}

// rpcLeader reaches the leader over the Control RPC (Config.RPC), finding
// its internal address (its Raft address) in the Raft configuration.
type rpcLeader struct{ n *Node }

func (l rpcLeader) control(leaderID string) (rpcpb.ControlClient, error) {
	if l.n.rpc == nil {
		return nil, ErrNotLeader
	}
	addr := l.n.InternalAddr(leaderID)
	if addr == "" {
		return nil, fmt.Errorf("%w (leader %s is not in this server's configuration)", ErrNotLeader, leaderID)
	}
	return l.n.rpc.Control(addr)
}

func (l rpcLeader) Apply(ctx context.Context, leaderID string, req *rpcpb.ApplyRequest) (*rpcpb.ApplyResponse, error) {
	c, err := l.control(leaderID)
	if err != nil {
		return nil, err
	}
	return c.Apply(ctx, req)
}

func (l rpcLeader) ReadIndex(ctx context.Context, leaderID string) (uint64, error) {
	c, err := l.control(leaderID)
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, leaderWait)
	defer cancel()
	resp, err := c.ReadIndex(cctx, &rpcpb.ReadIndexRequest{})
	if status.Code(err) == codes.FailedPrecondition {
		return 0, fmt.Errorf("%w (%s)", ErrNotLeader, status.Convert(err).Message())
	}
	if err != nil {
		return 0, err
	}
	return resp.Index, nil
}
