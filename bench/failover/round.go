package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/bench/internal/stats"
)

// leaderPoll is how often each survivor is asked who leads.
const leaderPoll = 10 * time.Millisecond

// bench runs the rounds against one cluster, from one goroutine.
type bench struct {
	c   *cluster.Cluster
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
	killed := b.c.Servers[leader]
	var survivors []*cluster.Proc
	for i, s := range b.c.Servers {
		if i != leader {
			survivors = append(survivors, s)
		}
	}
	r.Killed = killed.ID

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
	if err := killed.Kill(); err != nil {
		return r, 0, 0, 0, fmt.Errorf("kill %s: %w", killed.ID, err)
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
				if cl, err := b.api.view(lctx, s.API); err == nil {
					ls := cluster.Leaders(cl)
					if slices.Contains(ls, killed.ID) && len(ls) > 1 {
						mu.Lock()
						r.DeadStillLeader = true
						mu.Unlock()
					}
					for _, l := range ls {
						if l != killed.ID {
							leaderc <- seen{at: time.Since(t0), leader: l, via: s.ID}
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
				ok, why := b.api.write(wctx, s.API)
				if ok {
					writec <- seen{at: time.Since(t0), sent: sent, via: s.ID}
					return
				}
				if wctx.Err() == nil {
					mu.Lock()
					failed++
					lastFailure = s.ID + ": " + why
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
				killed.ID, gotLeader, gotWrite, lastFailure, rctx.Err())
		}
	}
	wg.Wait()
	r.NewLeaderMS, r.FirstWriteMS = stats.MS(newLeader), stats.MS(firstWrite)
	r.FailedWrites, r.LastFailure = failed, lastFailure

	if err := killed.Reaped(); err != nil {
		return r, 0, 0, 0, err
	}
	if err := killed.Start(); err != nil {
		return r, 0, 0, 0, err
	}
	t1 := time.Now()
	if _, err := b.settle(ctx, killed, 120*time.Second); err != nil {
		return r, 0, 0, 0, fmt.Errorf("%s restarted but the cluster did not settle: %w", killed.ID, err)
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
func (b *bench) settle(ctx context.Context, restarted *cluster.Proc, limit time.Duration) (int, error) {
	return cluster.Settle(ctx, limit, leaderPoll, func(ctx context.Context) (int, string, error) {
		if restarted != nil && !restarted.Alive() {
			return -1, "", fmt.Errorf("%s exited after its restart", restarted.ID)
		}
		leader, why := b.settledOnce(ctx)
		return leader, why, nil
	})
}

// settledOnce asks each server once; it returns the leader's index, or
// -1 and what is missing.
func (b *bench) settledOnce(ctx context.Context) (int, string) {
	leader, views, why := b.c.Agreed(ctx, b.api.view)
	if leader < 0 {
		return -1, why
	}
	for i, cl := range views {
		for _, o := range cl.Servers {
			if !o.Healthy {
				return -1, fmt.Sprintf("%s sees %s unhealthy", b.c.Servers[i].ID, o.ID)
			}
		}
	}
	leaderID := b.c.Servers[leader].ID
	cl, err := b.api.view(ctx, b.c.Servers[leader].API)
	if err != nil {
		return -1, err.Error()
	}
	me, _ := self(cl, leaderID)
	for _, s := range b.c.Servers {
		if s.ID == leaderID {
			continue
		}
		cl, err := b.api.view(ctx, s.API)
		if err != nil {
			return -1, err.Error()
		}
		if o, _ := self(cl, s.ID); o.LastIndex < me.LastIndex {
			return -1, fmt.Sprintf("%s is at index %d, the leader at %d", s.ID, o.LastIndex, me.LastIndex)
		}
	}
	return leader, ""
}
