package controlplane

import (
	"context"
	"log/slog"
	"time"

	"github.com/hashicorp/raft"
)

// LastSeen returns when a peer last answered a probe, if ever.
func (p *Prober) LastSeen(id string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.seen[id]
	return pr.at, ok
}

// Autopilot runs on the leader: when a voter has not answered for
// promoteAfter and a non-voter (a standby) answers, it promotes the
// standby and removes the dead voter, so the cluster heals back to its
// voter count.
func Autopilot(ctx context.Context, n *Node, p *Prober, promoteAfter time.Duration, log *slog.Logger) {
	started := time.Now()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !n.IsLeader() {
			started = time.Now()
			continue
		}
		f := n.raft.GetConfiguration()
		if f.Error() != nil {
			continue
		}
		var dead, standby []raft.Server
		for _, s := range f.Configuration().Servers {
			if string(s.ID) == n.id {
				continue
			}
			seen, ok := p.LastSeen(string(s.ID))
			if !ok {
				seen = started // give a peer the same grace from our start
			}
			alive := time.Since(seen) < promoteAfter
			switch {
			case s.Suffrage == raft.Voter && !alive:
				dead = append(dead, s)
			case s.Suffrage == raft.Nonvoter && time.Since(seen) < 3*time.Second:
				standby = append(standby, s)
			}
		}
		for i := 0; i < len(dead) && i < len(standby); i++ {
			d, s := dead[i], standby[i]
			log.Warn("promoting a standby in place of a dead voter", "dead", d.ID, "standby", s.ID)
			if err := n.raft.AddVoter(s.ID, s.Address, 0, 10*time.Second).Error(); err != nil {
				log.Error("promote standby", "standby", s.ID, "err", err)
				continue
			}
			if err := n.raft.RemoveServer(d.ID, 0, 10*time.Second).Error(); err != nil {
				log.Error("remove dead voter", "server", d.ID, "err", err)
			}
		}
	}
}
