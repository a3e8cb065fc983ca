package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/rpc/rpcpb"
	"nimbus/internal/state"
)

// leaderWait bounds how long a write waits for a leader (elections take
// a second or two) before it answers ErrNotLeader.
const leaderWait = 5 * time.Second

// Error kinds carried by a forwarded Apply's answer.
const (
	kindNotFound  = "not_found"
	kindNotLeader = "not_leader"
	kindOther     = "other"
)

// Apply commits a command through Raft and returns what the FSM returned
// for it; an FSM result that is an error is returned as the error. On a
// follower the command is forwarded to the leader. With no leader within
// a few seconds it returns ErrNotLeader.
func (n *Node) Apply(ctx context.Context, t fsm.CommandType, cmd any) (any, error) {
	data, err := fsm.Encode(t, cmd)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(leaderWait)
	for {
		res, err := n.applyOnce(ctx, t, data)
		if !errors.Is(err, ErrNotLeader) || time.Now().After(deadline) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (n *Node) applyOnce(ctx context.Context, t fsm.CommandType, data []byte) (any, error) {
	if n.IsLeader() {
		return n.applyLocal(ctx, t, data)
	}
	_, leaderID := n.raft.LeaderWithID()
	if leaderID == "" || n.rpc == nil {
		return nil, ErrNotLeader
	}
	info, ok := n.store.ServerInfo(string(leaderID))
	if !ok {
		return nil, fmt.Errorf("%w (leader %s has not registered its address yet)", ErrNotLeader, leaderID)
	}
	c, err := n.rpc.Control(info.APIAddr)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	resp, err := c.Apply(cctx, &rpcpb.ApplyRequest{Type: uint32(t), Command: data[1:]})
	if err != nil {
		return nil, fmt.Errorf("%w (forwarding to leader %s: %v)", ErrNotLeader, leaderID, err)
	}
	switch resp.ErrorKind {
	case "":
		n.waitApplied(ctx, resp.Index)
		return fsm.DecodeResult(t, resp.Result)
	case kindNotFound:
		n.waitApplied(ctx, resp.Index)
		return nil, fmt.Errorf("%s: %w", resp.ErrorMessage, state.ErrNotFound)
	case kindNotLeader:
		return nil, fmt.Errorf("%w (%s)", ErrNotLeader, resp.ErrorMessage)
	}
	return nil, errors.New(resp.ErrorMessage)
}

// waitApplied waits (briefly) until this node has applied index, so that
// what a client just wrote through it is visible in its next read here.
func (n *Node) waitApplied(ctx context.Context, index uint64) {
	deadline := time.Now().Add(5 * time.Second)
	for n.raft.AppliedIndex() < index && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond)
	}
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
		if isLeadershipError(err) {
			return nil, 0, fmt.Errorf("%w (%v)", ErrNotLeader, err)
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
	res, index, err := n.applyLocalIndex(ctx, t, append([]byte{byte(t)}, req.Command...))
	switch {
	case errors.Is(err, state.ErrNotFound):
		return &rpcpb.ApplyResponse{ErrorKind: kindNotFound, ErrorMessage: err.Error(), Index: index}
	case errors.Is(err, ErrNotLeader):
		return &rpcpb.ApplyResponse{ErrorKind: kindNotLeader, ErrorMessage: err.Error()}
	case err != nil:
		return &rpcpb.ApplyResponse{ErrorKind: kindOther, ErrorMessage: err.Error()}
	}
	b, err := json.Marshal(res)
	if err != nil {
		return &rpcpb.ApplyResponse{ErrorKind: kindOther, ErrorMessage: err.Error()}
	}
	return &rpcpb.ApplyResponse{Result: b, Index: index}
}
