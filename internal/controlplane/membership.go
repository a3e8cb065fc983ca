package controlplane

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// Peer is a server as needed to bootstrap or join a cluster.
type Peer struct {
	ID   string
	Raft string
}

// ID returns this node's server ID.
func (n *Node) ID() string { return n.id }

// RaftAddr returns this node's Raft address.
func (n *Node) RaftAddr() string { return string(n.transport.LocalAddr()) }

// LeaderID returns the current leader's ID, or "" when there is none.
func (n *Node) LeaderID() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// HasState reports whether this node has ever been part of a cluster
// (bootstrapped, joined, or restored from a snapshot).
func (n *Node) HasState() bool {
	return n.raft.LastIndex() > 0
}

// InConfiguration reports whether id is in the Raft configuration this
// node knows.
func (n *Node) InConfiguration(id string) bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return true
		}
	}
	return false
}

// Bootstrap makes the given servers (this one among them) the first
// configuration. Every server of a new cluster may call it with the same
// list; it is a no-op on a node that has state.
func (n *Node) Bootstrap(peers []Peer) error {
	var servers []raft.Server
	for _, p := range peers {
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Raft)})
	}
	err := n.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	if err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap: %w", err)
	}
	return nil
}

// AddServer adds a server to the configuration, as a voter or a
// non-voter. Leader only.
func (n *Node) AddServer(p Peer, voter bool) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	var f raft.IndexFuture
	if voter {
		f = n.raft.AddVoter(raft.ServerID(p.ID), raft.ServerAddress(p.Raft), 0, 10*time.Second)
	} else {
		f = n.raft.AddNonvoter(raft.ServerID(p.ID), raft.ServerAddress(p.Raft), 0, 10*time.Second)
	}
	if err := f.Error(); err != nil {
		if isLeadershipError(err) {
			return fmt.Errorf("%w (%v)", ErrNotLeader, err)
		}
		return err
	}
	return nil
}

// RemoveServer removes a server from the configuration. Leader only.
func (n *Node) RemoveServer(id string) error {
	if !n.IsLeader() {
		return ErrNotLeader
	}
	return n.raft.RemoveServer(raft.ServerID(id), 0, 10*time.Second).Error()
}

// LeaderCh reports leadership changes of this node (true: it became
// leader). See raft.Raft.LeaderCh for its delivery contract.
func (n *Node) LeaderCh() <-chan bool { return n.raft.LeaderCh() }

// Barrier waits until everything committed before it is applied.
func (n *Node) Barrier(timeout time.Duration) error { return n.raft.Barrier(timeout).Error() }

// ErrNotMember is returned for requests to a server that is not a member
// of the cluster (it was removed by autopilot or `nimbus cluster remove`
// while it was away): its state is stale and it refuses to serve it.
var ErrNotMember = errors.New("this server is not a member of the cluster")

// Member is a server in this node's Raft configuration: its ID and its
// internal (Raft and RPC) address.
type Member struct{ ID, Addr string }

// MemberAddrs lists the servers in this node's Raft configuration with
// their internal addresses. Unlike the servers' announced information in
// the state, it is complete from the moment a server joins.
func (n *Node) MemberAddrs() []Member {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return nil
	}
	var out []Member
	for _, s := range f.Configuration().Servers {
		out = append(out, Member{ID: string(s.ID), Addr: string(s.Address)})
	}
	return out
}

// Members lists the server IDs in this node's Raft configuration.
func (n *Node) Members() []string {
	var ids []string
	for _, m := range n.MemberAddrs() {
		ids = append(ids, m.ID)
	}
	return ids
}

// NotMember says why this node is not a member of the cluster, or ""
// when it is (or cannot tell: a node that has never joined is waiting
// to). A node with state is not a member when its own configuration
// leaves it out, when its Raft stopped on its removal, or when a peer
// that leads (heard from within the last few seconds) has a
// configuration without it: the case of a server removed while it was
// down and then restarted, whose own log still lists it.
func (p *Prober) NotMember() string {
	n := p.node
	if !n.HasState() {
		return ""
	}
	if n.raft.State() == raft.Shutdown {
		return "its Raft has stopped (it was removed from the cluster)"
	}
	if f := n.raft.GetConfiguration(); f.Error() == nil && !n.InConfiguration(n.id) {
		return "its own Raft configuration no longer includes it (it was removed)"
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, pr := range p.seen {
		if time.Since(pr.at) > 5*time.Second || pr.info.Role != "leader" || len(pr.info.Members) == 0 ||
			slices.Contains(pr.info.Members, n.id) {
			continue
		}
		return fmt.Sprintf("the leader %s (term %d) counts only %s: this server was removed "+
			"(by autopilot or `nimbus cluster remove`) while it was away; add it back with "+
			"`nimbus cluster join THIS_SERVERS_API_ADDRESS` against a member",
			id, pr.info.Term, strings.Join(pr.info.Members, ", "))
	}
	return ""
}

// ConfiguredSelf returns what the Raft configuration this node knows
// says of it: the address the cluster reaches it at, whether it votes,
// and the other servers' addresses. ok is false when the configuration
// cannot be read or does not list this node.
func (n *Node) ConfiguredSelf() (addr string, voter bool, others []string, ok bool) {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return "", false, nil, false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == n.id {
			addr, voter, ok = string(s.Address), s.Suffrage == raft.Voter, true
		} else {
			others = append(others, string(s.Address))
		}
	}
	return addr, voter, others, ok
}
