package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"nimbus/bench/internal/stats"
)

// leaderPoll is how often each survivor is asked who leads.
const leaderPoll = 10 * time.Millisecond

// bench runs the rounds against one cluster, from one goroutine.
type bench struct {
	c   *cluster
	api *api
}

// round kills the leader, measures new_leader and first_write from the
// kill, restarts the killed server and waits until the cluster has
// settled again (catch_up, from the restart).
func (b *bench) round(ctx context.Context) (r Round, newLeader, firstWrite, catchUp time.Duration, err error) {
	leader, err := b.settle(ctx, nil, 90*time.Second)
	if err != nil {
		return r, 0, 0, 0, err
	}
	killed := b.c.servers[leader]
	var survivors []*proc
	for i, s := range b.c.servers {
		if i != leader {
			survivors = append(survivors, s)
		}
	}
	r.Killed = killed.id

	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	type seen struct {
		at, sent    time.Duration // sent: when the successful write was sent
		leader, via string
	}
	leaderc, writec := make(chan seen, len(survivors)), make(chan seen, len(survivors))
	var (
		wg          sync.WaitGroup
		mu          sync.Mutex
		failed      int
		lastFailure string
	)
	if err := b.c.kill(killed); err != nil {
		return r, 0, 0, 0, fmt.Errorf("kill %s: %w", killed.id, err)
	}
	t0 := time.Now()
	lctx, lcancel := context.WithCancel(rctx)
	wctx, wcancel := context.WithCancel(rctx)
	defer lcancel()
	defer wcancel()
	for _, s := range survivors {
		wg.Add(2)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(leaderPoll)
			defer tick.Stop()
			for {
				if cl, err := b.api.view(lctx, s.api); err == nil {
					ls := leaders(cl)
					if slices.Contains(ls, killed.id) && len(ls) > 1 {
						mu.Lock()
						r.DeadStillLeader = true
						mu.Unlock()
					}
					for _, l := range ls {
						if l != killed.id {
							leaderc <- seen{at: time.Since(t0), leader: l, via: s.id}
							return
						}
					}
				}
				select {
				case <-lctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
		go func() {
			defer wg.Done()
			for wctx.Err() == nil {
				sent := time.Since(t0)
				ok, why := b.api.write(wctx, s.api)
				if ok {
					writec <- seen{at: time.Since(t0), sent: sent, via: s.id}
					return
				}
				if wctx.Err() == nil {
					mu.Lock()
					failed++
					lastFailure = s.id + ": " + why
					mu.Unlock()
				}
			}
		}()
	}
	var gotLeader, gotWrite bool
	for !gotLeader || !gotWrite {
		select {
		case l := <-leaderc:
			if !gotLeader {
				gotLeader = true
				lcancel()
				newLeader, r.NewLeader, r.SeenBy = l.at, l.leader, l.via
			}
		case w := <-writec:
			if !gotWrite {
				gotWrite = true
				wcancel()
				firstWrite, r.WriteVia, r.FirstWriteSentMS = w.at, w.via, stats.MS(w.sent)
			}
		case <-rctx.Done():
			cancel()
			wg.Wait()
			return r, 0, 0, 0, fmt.Errorf("after killing %s: new leader seen %v, write succeeded %v, within 60s (last failed write: %s): %w",
				killed.id, gotLeader, gotWrite, lastFailure, rctx.Err())
		}
	}
	wg.Wait()
	r.NewLeaderMS, r.FirstWriteMS = stats.MS(newLeader), stats.MS(firstWrite)
	r.FailedWrites, r.LastFailure = failed, lastFailure

	if err := b.c.reaped(killed); err != nil {
		return r, 0, 0, 0, err
	}
	if err := b.c.start(killed); err != nil {
		return r, 0, 0, 0, err
	}
	t1 := time.Now()
	if _, err := b.settle(ctx, killed, 120*time.Second); err != nil {
		return r, 0, 0, 0, fmt.Errorf("%s restarted but the cluster did not settle: %w", killed.id, err)
	}
	catchUp = time.Since(t1)
	r.CatchUpMS = stats.MS(catchUp)
	return r, newLeader, firstWrite, catchUp, nil
}

// settle polls until the cluster is whole and steady, and returns the
// index of the leader: every server answers GET /v1/cluster, all name the
// same one leader, every view has all three servers and one worker healthy,
// and every server's own last index has reached the leader's (read from
// the leader before the others). restarted, if not nil, must not have
// been reaped since its start.
func (b *bench) settle(ctx context.Context, restarted *proc, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	why := "not asked yet"
	for {
		if restarted != nil && !b.c.alive(restarted) {
			return -1, fmt.Errorf("%s exited after its restart", restarted.id)
		}
		leader, reason := b.settledOnce(ctx)
		if leader >= 0 {
			return leader, nil
		}
		why = reason
		if time.Now().After(deadline) {
			return -1, fmt.Errorf("not settled within %v: %s", limit, why)
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(leaderPoll):
		}
	}
}

// settledOnce asks each server once; it returns the leader's index, or
// -1 and what is missing.
func (b *bench) settledOnce(ctx context.Context) (int, string) {
	leaderID := ""
	for _, s := range b.c.servers {
		cl, err := b.api.view(ctx, s.api)
		if err != nil {
			return -1, err.Error()
		}
		ls := leaders(cl)
		if len(ls) != 1 {
			return -1, fmt.Sprintf("%s names %d leaders %v", s.id, len(ls), ls)
		}
		l := ls[0]
		switch {
		case leaderID != "" && l != leaderID:
			return -1, fmt.Sprintf("%s names %s as leader, another server %s", s.id, l, leaderID)
		case len(cl.Servers) != len(b.c.servers):
			return -1, fmt.Sprintf("%s sees %d servers", s.id, len(cl.Servers))
		case healthyWorkers(cl) < 1:
			return -1, s.id + " sees no healthy worker"
		}
		for _, o := range cl.Servers {
			if !o.Healthy {
				return -1, fmt.Sprintf("%s sees %s unhealthy", s.id, o.ID)
			}
		}
		leaderID = l
	}
	leader := -1
	for i, s := range b.c.servers {
		if s.id == leaderID {
			leader = i
		}
	}
	if leader < 0 {
		return -1, "the leader " + leaderID + " is not one of the servers started"
	}
	cl, err := b.api.view(ctx, b.c.servers[leader].api)
	if err != nil {
		return -1, err.Error()
	}
	me, _ := self(cl, leaderID)
	for _, s := range b.c.servers {
		if s.id == leaderID {
			continue
		}
		cl, err := b.api.view(ctx, s.api)
		if err != nil {
			return -1, err.Error()
		}
		if o, _ := self(cl, s.id); o.LastIndex < me.LastIndex {
			return -1, fmt.Sprintf("%s is at index %d, the leader at %d", s.id, o.LastIndex, me.LastIndex)
		}
	}
	return leader, ""
}
