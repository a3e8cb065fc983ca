package node

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"nimbus/internal/fsm"
	"nimbus/internal/model"
	"nimbus/internal/notify"
	"nimbus/internal/placement"
	"nimbus/internal/runtime/python"
	"nimbus/internal/testcluster"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// slowWorker is a worker shared by every server that takes a while to
// answer, so that runs are in flight whenever leadership moves.
type slowWorker struct {
	mu   sync.Mutex
	runs map[string]int // request ID -> runs
}

func (w *slowWorker) Invoke(ctx context.Context, req worker.Request) (worker.Result, error) {
	w.mu.Lock()
	w.runs[req.RequestID]++
	w.mu.Unlock()
	d := time.Duration(rand.IntN(1000)) * time.Millisecond
	if rand.IntN(10) == 0 {
		d += 2 * time.Second // outlives its term
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return worker.Result{}, ctx.Err()
	}
	return worker.Result{Response: python.Response{Payload: []byte(`{"ok":true}`)}, WorkerID: "slow", Start: time.Now()}, nil
}
func (w *slowWorker) Retire(string) {}
func (w *slowWorker) Status() client.Worker {
	return client.Worker{ID: "slow", Slots: 256, Healthy: true, State: placement.StateReady}
}
func (w *slowWorker) HasWarm(string, int64) bool { return false }
func (w *slowWorker) Runtimes() []string         { return []string{"python3.12"} }

// terminal counts, per server and request ID, the records that reached
// a terminal status as the server applied them.
type terminal struct {
	mu sync.Mutex
	n  []map[string]int
}

func (x *terminal) observe(node int) func(model.Invocation) {
	return func(r model.Invocation) {
		switch r.Status {
		case model.StatusSuccess, model.StatusFailed, model.StatusDeadLetter:
			x.mu.Lock()
			x.n[node][r.ID]++
			x.mu.Unlock()
		}
	}
}

// TestLeadershipMovesUnderAsyncLoad moves leadership around a
// three-server cluster (each server running the leader services as a
// node does) while events are enqueued, until a server has lost and
// regained leadership three times. Every acknowledged event must reach
// exactly one accepted, successful outcome, and nothing may race.
func TestLeadershipMovesUnderAsyncLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("moves leadership around a cluster for tens of seconds")
	}
	c := testcluster.New(t, 3)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	leader := c.WaitLeader(nil)
	// Some runs outlive the term that leased them by seconds (see
	// slowWorker); a lost outcome is retried after its lease (timeout +
	// 10 s) without delay.
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: "f", Timeout: model.Duration(3 * time.Second), RetryDelay: model.Duration(time.Millisecond)}}
	if _, err := fsm.Apply(c.Context(10*time.Second), c.Nodes[leader], fsm.UpsertFunction{Function: fn, Now: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}

	w := &slowWorker{runs: map[string]int{}}
	placer := placement.New(nil, w)
	term := &terminal{}
	parts := make([]*asyncParts, len(c.Nodes))
	stops := make([]func(), len(c.Nodes))
	for i, cp := range c.Nodes {
		term.n = append(term.n, map[string]int{})
		cp.Store().ObserveRecordOutcomes(term.observe(i))
		a := newAsyncParts(cp, placer, notify.SMTP{}, nil, log)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			runLeadership(ctx, cp, log, func(ctx context.Context) { a.term(ctx, nil) })
			close(done)
		}()
		stops[i] = func() { cancel(); <-done; a.close() }
		parts[i] = a
	}

	// Load: two clients enqueue through whichever server leads, each
	// about 50 events a second.
	var (
		mu    sync.Mutex
		acked []string
		seq   int
	)
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var load sync.WaitGroup
	for range 2 {
		load.Add(1)
		go func() {
			defer load.Done()
			pace := time.NewTicker(20 * time.Millisecond)
			defer pace.Stop()
			for loadCtx.Err() == nil {
				<-pace.C
				l := c.Leader(nil)
				if l < 0 {
					continue
				}
				mu.Lock()
				seq++
				id := fmt.Sprintf("ev-%05d", seq)
				mu.Unlock()
				ctx, cancel := context.WithTimeout(loadCtx, 3*time.Second)
				err := parts[l].enqueuer.Enqueue(ctx, model.QueueItem{RequestID: id, Function: "f", Event: json.RawMessage(`{}`), Trigger: "async", EnqueuedAt: time.Now().UTC()})
				cancel()
				if err == nil {
					mu.Lock()
					acked = append(acked, id)
					mu.Unlock()
				}
			}
		}()
	}
	ackedCount := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }

	// Move leadership: isolate the leader until another leads, heal,
	// repeat, until servers have regained leadership three times.
	led := map[int]bool{leader: true}
	regained := 0
	for cycle := 0; regained < 3; cycle++ {
		if cycle == 20 {
			t.Fatalf("leadership regained only %d times in %d moves", regained, cycle)
		}
		before := ackedCount()
		c.WaitFor(20*time.Second, "events are acknowledged under this leader", func() bool { return ackedCount() >= before+20 })
		c.Isolate(leader)
		next := c.WaitLeader(map[int]bool{leader: true})
		c.WaitFor(10*time.Second, "the isolated leader steps down", func() bool { return !c.Nodes[leader].IsLeader() })
		c.Heal()
		if led[next] {
			regained++
		}
		led[next] = true
		leader = next
	}
	before := ackedCount()
	c.WaitFor(20*time.Second, "events are acknowledged after the last move", func() bool { return ackedCount() >= before+20 })
	stopLoad()
	load.Wait()

	mu.Lock()
	all := append([]string(nil), acked...)
	mu.Unlock()
	c.WaitFor(90*time.Second, "every acknowledged event has a successful record on every server", func() bool {
		for _, n := range c.Nodes {
			for _, id := range all {
				rec, err := n.Store().Record(id)
				if err != nil || rec.Status != model.StatusSuccess {
					return false
				}
			}
		}
		return true
	})
	for _, stop := range stops {
		stop()
	}
	term.mu.Lock()
	defer term.mu.Unlock()
	for _, id := range all {
		for i := range c.Nodes {
			if n := term.n[i][id]; n != 1 {
				t.Errorf("event %s reached a terminal record %d times on server %d; want exactly once", id, n, i)
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	reruns := 0
	for _, id := range all {
		if w.runs[id] == 0 {
			t.Errorf("event %s never ran", id)
		}
		reruns += w.runs[id] - 1
	}
	t.Logf("%d events acknowledged, %d of their runs again after a lost outcome; leadership regained %d times", len(all), reruns, regained)
}
