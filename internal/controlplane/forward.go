package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"nimbus/internal/datadir"
	"nimbus/internal/fsm"
	"nimbus/internal/rpc/rpcpb"
)

// leaderWait bounds how long a write waits for a leader (elections take
// a second or two) before it answers ErrNotLeader.
const leaderWait = 5 * time.Second

// ErrOutcomeUnknown marks a write that failed after it may have reached
// the log (leadership was lost while it was in flight, or the leader
// stopped answering): it may still be committed. Such a write is never
// retried, so that it cannot be applied twice; the error also wraps
// ErrNotLeader. A write that fails with ErrNotLeader alone was not
// committed.
var ErrOutcomeUnknown = errors.New("the write may or may not have been committed")

// Error kinds carried by a forwarded Apply's answer, besides the codes of
// the FSM's errors (fsm.ErrorCode).
const (
	kindNotLeader = "not_leader" // not committed
	kindUnknown   = "unknown_outcome"
	kindOther     = "other"
	kindDiskFull  = "disk_full" // the leader's data directory is full: not committed
)

func outcomeUnknown(err error) error {
	return fmt.Errorf("%w: %w (%v)", ErrNotLeader, ErrOutcomeUnknown, err)
}

// Leader reaches the leader's Control service from a follower: over the
// Control RPC in production (see Config.RPC), by direct calls in
// in-process test clusters. Any error other than a not-leader answer is
// taken to mean the leader could not be reached.
type Leader interface {
	// Apply is the leader's ApplyForwarded.
	Apply(ctx context.Context, leaderID string, req *rpcpb.ApplyRequest) (*rpcpb.ApplyResponse, error)
	// ReadIndex is the leader's ReadIndex.
	ReadIndex(ctx context.Context, leaderID string) (uint64, error)
}

// Write commits an encoded command (fsm.Encode) through Raft and returns
// what the FSM returned for it; an FSM result that is an error is
// returned as the error. It makes the node an fsm.Writer: callers use
// fsm.Apply, which is typed. On a follower the command is forwarded to
// the leader over the Control RPC, and the result or error comes back as
// the same type or sentinel. With no leader within a few seconds it
// returns ErrNotLeader; a write that may have been committed all the same
// fails with ErrOutcomeUnknown too, and is not retried.
func (n *Node) Write(ctx context.Context, t fsm.CommandType, data []byte) (any, error) {
	return n.writeVia(ctx, rpcLeader{n}, t, data)
}

// Via is the node as an fsm.Writer that forwards through leader when the
// node is a follower (in-process test clusters).
func (n *Node) Via(leader Leader) fsm.Writer { return viaWriter{n, leader} }

type viaWriter struct {
	n      *Node
	leader Leader
}

func (v viaWriter) Write(ctx context.Context, t fsm.CommandType, data []byte) (any, error) {
	return v.n.writeVia(ctx, v.leader, t, data)
}

func (n *Node) writeVia(ctx context.Context, leader Leader, t fsm.CommandType, data []byte) (any, error) {
	deadline := time.Now().Add(leaderWait)
	for {
		res, err := n.applyOnce(ctx, leader, t, data)
		if !errors.Is(err, ErrNotLeader) || errors.Is(err, ErrOutcomeUnknown) || time.Now().After(deadline) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (%v)", err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *Node) applyOnce(ctx context.Context, leader Leader, t fsm.CommandType, data []byte) (any, error) {
	if n.IsLeader() {
		return n.applyLocal(ctx, t, data)
	}
	_, leaderID := n.raft.LeaderWithID()
	if leaderID == "" {
		return nil, ErrNotLeader
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := leader.Apply(cctx, string(leaderID), &rpcpb.ApplyRequest{Type: uint32(t), Command: data[1:]})
	if errors.Is(err, ErrNotLeader) {
		return nil, err
	}
	if err != nil {
		return nil, outcomeUnknown(fmt.Errorf("forwarding to leader %s: %w", leaderID, err))
	}
	switch resp.ErrorKind {
	case "":
		n.waitApplied(ctx, resp.Index)
		return fsm.DecodeResult(t, resp.Result)
	case kindNotLeader:
		return nil, fmt.Errorf("%w (%s)", ErrNotLeader, resp.ErrorMessage)
	case kindUnknown:
		return nil, outcomeUnknown(errors.New(resp.ErrorMessage))
	case kindOther:
		return nil, errors.New(resp.ErrorMessage)
	case kindDiskFull:
		return nil, fmt.Errorf("on the leader %s: %w", leaderID, datadir.ErrFull)
	}
	// The apply returned an error the FSM names by a code: the entry is
	// applied, and the error is the same sentinel as on the leader.
	n.waitApplied(ctx, resp.Index)
	return nil, fsm.ErrorFromCode(resp.ErrorKind, resp.ErrorMessage)
}

// waitApplied waits (up to a few seconds) until this node's state
// reflects index, so that what a client just wrote through it is visible
// in its next read here.
func (n *Node) waitApplied(ctx context.Context, index uint64) {
	n.waitAppliedIndex(ctx, index)
}

func (n *Node) applyLocal(ctx context.Context, t fsm.CommandType, data []byte) (any, error) {
	res, _, err := n.applyLocalIndex(ctx, t, data)
	return res, err
}

func (n *Node) applyLocalIndex(ctx context.Context, t fsm.CommandType, data []byte) (any, uint64, error) {
	timeout := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	f := n.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrLeadershipLost) || errors.Is(err, raft.ErrRaftShutdown) {
			return nil, 0, outcomeUnknown(err)
		}
		if isLeadershipError(err) { // refused before it reached the log
			return nil, 0, fmt.Errorf("%w (%v)", ErrNotLeader, err)
		}
		if datadir.IsFull(err) {
			// The leader could not store the entry, so it was not
			// replicated either: not committed. (The leader steps down.)
			return nil, 0, n.disk.Classify(err, "raft apply "+t.String())
		}
		return nil, 0, fmt.Errorf("raft apply %s: %w", t, err)
	}
	resp := f.Response()
	if err, ok := resp.(error); ok {
		return nil, f.Index(), err
	}
	return resp, f.Index(), nil
}

// ApplyForwarded serves a forwarded Apply on the leader: it commits the
// command and answers with the result as JSON or the error's kind.
func (n *Node) ApplyForwarded(ctx context.Context, req *rpcpb.ApplyRequest) *rpcpb.ApplyResponse {
	t := fsm.CommandType(req.Type)
	if !n.IsLeader() {
		return &rpcpb.ApplyResponse{ErrorKind: kindNotLeader, ErrorMessage: "this server is not the leader"}
	}
	if !fsm.Known(t) {
		return &rpcpb.ApplyResponse{ErrorKind: kindOther, ErrorMessage: fmt.Sprintf("the leader does not know command type %d", t)}
	}
	res, index, err := n.applyLocalIndex(ctx, t, append([]byte{byte(t)}, req.Command...))
	switch {
	case fsm.ErrorCode(err) != "":
		return &rpcpb.ApplyResponse{ErrorKind: fsm.ErrorCode(err), ErrorMessage: err.Error(), Index: index}
	case errors.Is(err, ErrOutcomeUnknown):
		return &rpcpb.ApplyResponse{ErrorKind: kindUnknown, ErrorMessage: err.Error()}
	case errors.Is(err, ErrNotLeader):
		return &rpcpb.ApplyResponse{ErrorKind: kindNotLeader, ErrorMessage: err.Error()}
	case errors.Is(err, datadir.ErrFull):
		return &rpcpb.ApplyResponse{ErrorKind: kindDiskFull, ErrorMessage: err.Error()}
	case err != nil:
		return &rpcpb.ApplyResponse{ErrorKind: kindOther, ErrorMessage: err.Error()}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return &rpcpb.ApplyResponse{ErrorKind: kindOther, ErrorMessage: err.Error()}
	}
	return &rpcpb.ApplyResponse{Result: b, Index: index}
}
