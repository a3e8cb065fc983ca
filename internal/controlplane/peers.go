package controlplane

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"nimbus/internal/rpc/rpcpb"
	"nimbus/pkg/client"
)

// Self describes this node for ServerInfo answers.
func (n *Node) Self() (role string, term, lastIndex uint64) {
	stats := n.raft.Stats()
	switch n.raft.State() {
	case raft.Leader:
		role = "leader"
	case raft.Candidate:
		role = "candidate"
	default:
		role = "follower"
		if !n.isVoter(n.id) {
			role = "nonvoter"
		}
	}
	return role, parseUint(stats["term"]), parseUint(stats["last_log_index"])
}

// InternalAddr is the internal address (Raft, internal RPC and
// enrolment share it) of server id in the Raft configuration, "" if it
// is not there.
func (n *Node) InternalAddr(id string) string {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return ""
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return string(s.Address)
		}
	}
	return ""
}

func (n *Node) isVoter(id string) bool {
	f := n.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return s.Suffrage == raft.Voter
		}
	}
	return false
}

// Prober asks every other server for its ServerInfo once a second, so
// that the cluster view shows each server's own role, term and index and
// whether it answers.
type Prober struct {
	node *Node

	mu   sync.Mutex
	seen map[string]probe
	// notMember is the last NotMember answer, to log its changes.
	notMember       string
	notMemberLogged time.Time
}

// logMembership logs when this node finds it is not a member of the
// cluster (at ERROR, again every minute while it lasts) and when it is
// one again.
func (p *Prober) logMembership() {
	why := p.NotMember()
	p.mu.Lock()
	was := p.notMember
	p.notMember = why
	logNow := why != "" && (was == "" || time.Since(p.notMemberLogged) > time.Minute)
	if logNow {
		p.notMemberLogged = time.Now()
	}
	p.mu.Unlock()
	if p.node.log == nil {
		return
	}
	switch {
	case logNow:
		p.node.log.Error("this server is not a member of the cluster: it refuses API requests until it is one again",
			"server", p.node.id, "reason", why)
	case why == "" && was != "":
		p.node.log.Info("this server is a member of the cluster again", "server", p.node.id)
	}
}

type probe struct {
	at   time.Time
	info *rpcpb.ServerInfoResponse
}

// NewProber returns a prober for node's peers.
func NewProber(node *Node) *Prober { return &Prober{node: node, seen: map[string]probe{}} }

// peers lists the servers to probe: those that registered their
// addresses in the state, and those of this node's Raft configuration. A
// restarted server knows the configuration from its log at once, before
// it has applied any of it (it learns the commit index from a leader),
// so that it can find out from them that it was removed.
func (p *Prober) peers() []Peer {
	seen := map[string]bool{}
	var out []Peer
	for _, s := range p.node.store.ServerInfos() {
		seen[s.ID] = true
		out = append(out, Peer{ID: s.ID, Raft: s.Raft})
	}
	f := p.node.raft.GetConfiguration()
	if f.Error() != nil {
		return out
	}
	for _, s := range f.Configuration().Servers {
		if !seen[string(s.ID)] {
			out = append(out, Peer{ID: string(s.ID), Raft: string(s.Address)})
		}
	}
	return out
}

// Run probes until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		for _, s := range p.peers() {
			if s.ID == p.node.id || p.node.rpc == nil {
				continue
			}
			c, err := p.node.rpc.Control(s.Raft)
			if err != nil {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 800*time.Millisecond)
			info, err := c.ServerInfo(pctx, &rpcpb.ServerInfoRequest{})
			cancel()
			if err == nil {
				p.mu.Lock()
				p.seen[s.ID] = probe{at: time.Now(), info: info}
				p.mu.Unlock()
			}
		}
		p.logMembership()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Overlay fills in, for servers other than this one, what they last said
// of themselves; a server not heard from in 2.5 seconds is unhealthy.
func (p *Prober) Overlay(servers []client.Server) []client.Server {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range servers {
		s := &servers[i]
		if s.ID == p.node.id {
			continue
		}
		pr, ok := p.seen[s.ID]
		s.Healthy = ok && time.Since(pr.at) < 2500*time.Millisecond
		if ok && s.Healthy {
			s.Term, s.LastIndex = pr.info.Term, pr.info.LastIndex
			// Who leads is this node's Raft view's to say: a peer's stale
			// claim to lead (it may have died since) never makes a second
			// leader in the view.
			if pr.info.Role != "" && pr.info.Role != "leader" && s.Role != "leader" {
				s.Role = pr.info.Role
			}
		}
	}
	return servers
}
