package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"nimbus/internal/controlplane"
	"nimbus/internal/placement"
	"nimbus/internal/rpc"
	"nimbus/internal/rpc/rpcpb"
	"nimbus/internal/state"
)

// membership carries out `nimbus cluster join|remove` and
// `nimbus worker drain` on a server: membership changes go to the
// leader, drains to the worker.
type membership struct {
	cp       *controlplane.Node
	pool     *rpc.Pool
	registry *placement.Registry
	// discoveryTLS reads other servers' /healthz over an API served
	// with TLS; nil for plain HTTP.
	discoveryTLS *tls.Config
}

// leader returns a Control client of the current leader.
func (m *membership) leader() (rpcpb.ControlClient, error) {
	addr := m.cp.InternalAddr(m.cp.LeaderID())
	if addr == "" {
		return nil, controlplane.ErrNotLeader
	}
	return m.pool.Control(addr)
}

// JoinServer adds the server answering at addr, as a voter or not.
func (m *membership) JoinServer(ctx context.Context, addr string, voter bool) (string, error) {
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	h, err := discover(ictx, addr, m.discoveryTLS)
	if err != nil {
		return "", fmt.Errorf("no Nimbus server answers at %s: %w", addr, err)
	}
	// The new server must already hold a certificate of this cluster's CA
	// (it enrols with a join token or the bootstrap key): ServerInfo over
	// mutual TLS checks that before it is added.
	c, err := m.pool.Control(h.Internal)
	if err != nil {
		return "", err
	}
	info, err := c.ServerInfo(ictx, &rpcpb.ServerInfoRequest{})
	if err != nil {
		return "", fmt.Errorf("server at %s is not reachable over this cluster's mutual TLS (has it enrolled?): %w", addr, err)
	}
	l, err := m.leader()
	if err != nil {
		return "", err
	}
	_, err = l.Join(ctx, &rpcpb.JoinRequest{Id: info.Id, RaftAddress: info.RaftAddress, ApiAddress: info.ApiAddress, Nonvoter: !voter})
	return info.Id, err
}

// RemoveServer removes a server from the Raft configuration.
func (m *membership) RemoveServer(ctx context.Context, id string) error {
	if !m.cp.InConfiguration(id) {
		return fmt.Errorf("server %q is not in the cluster: %w", id, state.ErrNotFound)
	}
	l, err := m.leader()
	if err != nil {
		return err
	}
	_, err = l.Leave(ctx, &rpcpb.LeaveRequest{Id: id})
	return err
}

// DrainWorker tells a worker to stop taking new work.
func (m *membership) DrainWorker(ctx context.Context, id string) error {
	return m.registry.Drain(ctx, id)
}

// UndrainWorker tells a drained worker to take new work again.
func (m *membership) UndrainWorker(ctx context.Context, id string) error {
	return m.registry.Undrain(ctx, id)
}
