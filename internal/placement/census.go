package placement

import (
	"sort"
	"time"
)

// Census is what the workers reported, in heartbeats taken after a given
// moment, of the queued events they hold (worker.Worker.RunningQueued):
// what a leader that takes office needs to tell the events an earlier
// leader leased that still run from those that died with it.
type Census struct {
	// Running are the request IDs the workers that reported hold.
	Running map[string]bool
	// Pending lists the live workers (by ID) that have sent no heartbeat
	// taken after the moment yet.
	Pending []string
	// Listening is set while the registry has heard heartbeats for less
	// than a worker's dead-after time (its server just started): a live
	// worker it has not heard from yet may hold events.
	Listening bool
	// Partial is set when a worker's report is not the whole list (cut at
	// its bound, or a worker of an older release that reports none): any
	// event may be running somewhere.
	Partial bool
}

// runningReporter is a local target that reports its queued events (the
// worker in this process reports them as they are now).
type runningReporter interface {
	runningQueued() ([]string, bool)
}

// censusTaker is a Source that reports its workers' queued events
// (Registry).
type censusTaker interface {
	RunningQueued(since time.Time) Census
}

// RunningQueued takes the census of the queued events the workers hold,
// as reported after since (see Census). A worker in this process answers
// at once; a target or source that cannot report makes the census
// Partial.
func (p *Placer) RunningQueued(since time.Time) Census {
	c := Census{Running: map[string]bool{}}
	for _, t := range p.local {
		r, ok := t.(runningReporter)
		if !ok {
			c.Partial = true
			continue
		}
		ids, all := r.runningQueued()
		c.add(ids, all)
	}
	if p.remote != nil {
		ct, ok := p.remote.(censusTaker)
		if !ok {
			c.Partial = true
			return c
		}
		rc := ct.RunningQueued(since)
		for id := range rc.Running {
			c.Running[id] = true
		}
		c.Pending = append(c.Pending, rc.Pending...)
		c.Listening = rc.Listening
		c.Partial = c.Partial || rc.Partial
	}
	return c
}

func (c *Census) add(ids []string, all bool) {
	for _, id := range ids {
		c.Running[id] = true
	}
	c.Partial = c.Partial || !all
}

// RunningQueued takes the census of the queued events the live workers
// hold (see Census), from each one's first heartbeat taken after since.
// A heartbeat that arrives after since may have been taken before it;
// the next one to this server was taken after, since a worker sends its
// heartbeats to a server one after another, each after the last was
// answered. So a worker counts once it has sent two heartbeats since
// (about a second apart); the live ones that have not are Pending. Live
// means heard from within deadAfter: a worker silent that long is dead
// and runs nothing that could report. A registry younger than deadAfter
// is Listening.
func (r *Registry) RunningQueued(since time.Time) Census {
	c := Census{Running: map[string]bool{}, Listening: time.Since(r.started) < r.deadAfter}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, w := range r.workers {
		w.mu.Lock()
		hb, seen, prev := w.hb, w.seen, w.prevSeen
		w.mu.Unlock()
		switch {
		case time.Since(seen) >= r.deadAfter:
		case !prev.After(since):
			c.Pending = append(c.Pending, id)
		default:
			c.add(hb.GetRunning(), hb.GetRunningComplete())
		}
	}
	sort.Strings(c.Pending)
	return c
}
