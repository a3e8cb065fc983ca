package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"nimbus/bench/internal/cluster"
	"nimbus/pkg/client"
)

type bench struct {
	c      *cluster.Cluster
	api    *cluster.API
	o      options
	leader int
}

// Sync is the synchronous phase: -clients clients invoke the functions in
// turn for -sync-for, client g through server g mod 3.
type Sync struct {
	Seconds   float64 `json:"seconds"`
	OK        int     `json:"ok"`
	Throttled int     `json:"throttled"` // 429
	Other     int     `json:"other"`     // any other answer or error
	LastOther string  `json:"last_other,omitempty"`
	PerS      float64 `json:"per_s"` // OK / Seconds
}

// Async is the asynchronous phase: as many events as the synchronous
// phase served (500 to 10,000), posted as fast as -posters clients can, over
// the functions in turn; completions/s runs from the first post to the
// end of the last run.
type Async struct {
	Events      int     `json:"events"`
	Acked       int     `json:"acked"`
	Refused     int     `json:"refused"`
	LastRefusal string  `json:"last_refusal,omitempty"`
	AckSeconds  float64 `json:"ack_seconds"`
	AckedPerS   float64 `json:"acked_per_s"`
	// CompleteSeconds runs from the first post to the latest end (start
	// + duration) of an acknowledged event's record.
	CompleteSeconds float64 `json:"complete_seconds"`
	PerS            float64 `json:"per_s"` // succeeded / CompleteSeconds
	Succeeded       int     `json:"succeeded"`
	Failed          int     `json:"failed"`
	Unfinished      int     `json:"unfinished"` // no terminal record when the wait ended
	RanTwice        int     `json:"ran_more_than_once"`
	// ColdStarts is what the servers' nimbus_cold_starts_total grew by
	// during the phase (no synchronous invoke runs meanwhile).
	ColdStarts int `json:"cold_starts"`
}

// Paced is the paced phase: events at a steady rate (half the
// synchronous rate) for -pace-for; a queue that keeps up ends its last
// run soon after the last event arrives.
type Paced struct {
	RatePerS float64 `json:"rate_per_s"`
	Acked    int     `json:"acked"`
	Refused  int     `json:"refused"`
	// TrailSeconds is the end of the last run minus the last
	// acknowledgement: how far completions trailed arrivals.
	TrailSeconds float64 `json:"trail_seconds"`
	Unfinished   int     `json:"unfinished"`
}

func (b *bench) round(ctx context.Context, r, n int) (Round, error) {
	round := Round{Round: r, Functions: n}
	// One invoke of each function first, unmeasured: the phases compare
	// the paths, not who paid the first cold starts.
	b.invokeAll(ctx, n, func(k int) bool { return k < n }, nil)
	round.Sync = b.syncPhase(ctx, n)
	events := min(max(round.Sync.OK, 500), 10000)
	a, err := b.asyncPhase(ctx, n, events)
	if err != nil {
		return round, err
	}
	round.Async = a
	if round.Sync.PerS > 0 {
		round.Ratio = a.PerS / round.Sync.PerS
	}
	bl, err := b.backlogPhase(ctx, n, events)
	if err != nil {
		return round, err
	}
	if round.Sync.PerS > 0 {
		bl.Ratio = bl.PerS / round.Sync.PerS
	}
	round.Backlog = &bl
	m, err := b.mixedPhase(ctx, n, events)
	if err != nil {
		return round, err
	}
	round.Mixed = &m
	if b.o.paceFor > 0 && round.Sync.PerS > 0 {
		p, err := b.pacedPhase(ctx, n, round.Sync.PerS/2)
		if err != nil {
			return round, err
		}
		round.Paced = &p
	}
	return round, nil
}

// invokeAll has the clients invoke function k mod n for k = 0, 1, ...
// while more(k), synchronously unless async, and reports each answer.
func (b *bench) invokeAll(ctx context.Context, n int, more func(k int) bool, answer func(k, status int, body []byte, err error)) {
	b.send(ctx, n, b.o.clients, nil, more, answer)
}

// post posts async events as invokeAll invokes, from the posters.
func (b *bench) post(ctx context.Context, n int, more func(k int) bool, answer func(k, status int, body []byte, err error)) {
	b.send(ctx, n, b.o.posters, asyncHeader, more, answer)
}

// send sends invokes of function k mod n for k = 0, 1, ... while
// more(k), from clients clients, client g to server g mod 3, with header
// h.
func (b *bench) send(ctx context.Context, n, clients int, h http.Header, more func(k int) bool, answer func(k, status int, body []byte, err error)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range clients {
		srv := b.c.Servers[g%len(b.c.Servers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if !more(k) {
					return
				}
				body := []byte(`{"k":` + strconv.Itoa(k) + `}`)
				status, resp, err := b.api.Do(ctx, http.MethodPost, srv.API, "/v1/functions/"+fnName(k%n)+"/invoke", body, h)
				if answer != nil {
					answer(k, status, resp, err)
				}
			}
		}()
	}
	wg.Wait()
}

func (b *bench) syncPhase(ctx context.Context, n int) Sync {
	var s Sync
	var mu sync.Mutex
	start := time.Now()
	end := start.Add(b.o.syncFor)
	b.invokeAll(ctx, n, func(int) bool { return time.Now().Before(end) }, func(_, status int, body []byte, err error) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err == nil && status == http.StatusOK:
			s.OK++
		case err == nil && status == http.StatusTooManyRequests:
			s.Throttled++
		default:
			s.Other++
			s.LastOther = fmt.Sprintf("%d %s %v", status, cluster.Short(body), err)
		}
	})
	s.Seconds = time.Since(start).Seconds()
	s.PerS = float64(s.OK) / s.Seconds
	return s
}

var asyncHeader = http.Header{client.HeaderInvocationType: {"async"}}

// acks collects the acknowledged request IDs of posted events.
type acks struct {
	mu      sync.Mutex
	ids     map[string]bool
	refused int
	last    string
	lastAck time.Time
}

func (a *acks) answer(_, status int, body []byte, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil && status == http.StatusAccepted {
		var out struct {
			RequestID string `json:"request_id"`
		}
		if jerr := json.Unmarshal(body, &out); jerr == nil && out.RequestID != "" {
			a.ids[out.RequestID] = true
			a.lastAck = time.Now()
			return
		}
	}
	a.refused++
	a.last = fmt.Sprintf("%d %s %v", status, cluster.Short(body), err)
}

func (b *bench) asyncPhase(ctx context.Context, n, events int) (Async, error) {
	a := Async{Events: events}
	cold0 := b.metric(ctx, "nimbus_cold_starts_total", "")
	runs0 := b.metric(ctx, "nimbus_invocations_total", asyncRuns)
	ack := &acks{ids: map[string]bool{}}
	t0 := time.Now()
	b.post(ctx, n, func(k int) bool { return k < events }, ack.answer)
	a.Acked, a.Refused, a.LastRefusal = len(ack.ids), ack.refused, ack.last
	a.AckSeconds = ack.lastAck.Sub(t0).Seconds()
	if a.AckSeconds > 0 {
		a.AckedPerS = float64(a.Acked) / a.AckSeconds
	}
	done, err := b.await(ctx, ack.ids, runs0, 10*time.Minute)
	if err != nil {
		return a, err
	}
	a.Succeeded, a.Failed, a.Unfinished, a.RanTwice = done.succeeded, done.failed, done.unfinished, done.ranTwice
	a.CompleteSeconds = done.lastEnd.Sub(t0).Seconds()
	if a.CompleteSeconds > 0 {
		a.PerS = float64(a.Succeeded) / a.CompleteSeconds
	}
	a.ColdStarts = int(b.metric(ctx, "nimbus_cold_starts_total", "") - cold0)
	return a, nil
}

func (b *bench) pacedPhase(ctx context.Context, n int, rate float64) (Paced, error) {
	p := Paced{RatePerS: rate}
	runs0 := b.metric(ctx, "nimbus_invocations_total", asyncRuns)
	ack := &acks{ids: map[string]bool{}}
	t0 := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	total := int(rate * b.o.paceFor.Seconds())
	b.post(ctx, n, func(k int) bool {
		if k >= total {
			return false
		}
		// Event k leaves at t0 + k x interval: a steady arrival rate,
		// whatever the answers' latency (the posters outnumber it).
		time.Sleep(time.Until(t0.Add(time.Duration(k) * interval)))
		return true
	}, ack.answer)
	p.Acked, p.Refused = len(ack.ids), ack.refused
	done, err := b.await(ctx, ack.ids, runs0, 5*time.Minute)
	if err != nil {
		return p, err
	}
	p.Unfinished = done.unfinished
	p.TrailSeconds = done.lastEnd.Sub(ack.lastAck).Seconds()
	return p, nil
}

// Backlog is the drain of a backlog that exists before any of it runs:
// the workers are drained (they take no work), the events posted, the
// workers undrained; the rate runs from the first run's start to the
// last run's end, so it measures the queue and the workers, not the
// posting.
type Backlog struct {
	Acked        int     `json:"acked"`
	Refused      int     `json:"refused"`
	Succeeded    int     `json:"succeeded"`
	Unfinished   int     `json:"unfinished"`
	DrainSeconds float64 `json:"drain_seconds"`
	PerS         float64 `json:"per_s"`
	Ratio        float64 `json:"drain_over_sync"`
}

func (b *bench) backlogPhase(ctx context.Context, n, events int) (Backlog, error) {
	var bl Backlog
	if err := b.drainWorkers(ctx, "drain"); err != nil {
		return bl, err
	}
	runs0 := b.metric(ctx, "nimbus_invocations_total", asyncRuns)
	ack := &acks{ids: map[string]bool{}}
	b.post(ctx, n, func(k int) bool { return k < events }, ack.answer)
	bl.Acked, bl.Refused = len(ack.ids), ack.refused
	if err := b.drainWorkers(ctx, "undrain"); err != nil {
		return bl, err
	}
	done, err := b.await(ctx, ack.ids, runs0, 10*time.Minute)
	if err != nil {
		return bl, err
	}
	bl.Succeeded, bl.Unfinished = done.succeeded, done.unfinished
	bl.DrainSeconds = done.lastEnd.Sub(done.firstStart).Seconds()
	if bl.DrainSeconds > 0 {
		bl.PerS = float64(bl.Succeeded) / bl.DrainSeconds
	}
	return bl, nil
}

// drainWorkers drains (how "drain") or undrains ("undrain") every worker
// through the leader, and waits until the leader sees them so.
func (b *bench) drainWorkers(ctx context.Context, how string) error {
	leader := b.c.Servers[b.leader].API
	for _, w := range b.c.Workers {
		status, body, err := b.api.Do(ctx, http.MethodPost, leader, "/v1/cluster/workers/"+w.ID+"/"+how, nil, nil)
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("%s %s: %d %s %v", how, w.ID, status, cluster.Short(body), err)
		}
	}
	want := "draining"
	if how == "undrain" {
		want = "ready"
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var cl client.Cluster
		if err := b.api.GetJSON(ctx, leader, "/v1/cluster", &cl); err != nil {
			return err
		}
		n := 0
		for _, w := range cl.Workers {
			if w.State == want {
				n++
			}
		}
		if n == len(b.c.Workers) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the leader sees %d of %d workers %s a minute after %s", n, len(b.c.Workers), want, how)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Mixed is the phase with both: a backlog of async events posted as fast
// as the posters can, and once half of it is acknowledged the sync phase
// again, meanwhile. Sync calls should not be refused while the workers
// have slots for them: a queued event never waits at a worker, where a
// sync call waiting for a slot goes first.
type Mixed struct {
	Sync Sync `json:"sync"`
	// ThrottledPct is the share of the sync calls answered 429.
	ThrottledPct float64 `json:"throttled_pct"`
	// BacklogAtEnd is how many acknowledged events had not run when the
	// sync calls stopped (0: the backlog was gone before they did).
	BacklogAtEnd int   `json:"backlog_at_end"`
	Async        Async `json:"async"`
}

func (b *bench) mixedPhase(ctx context.Context, n, events int) (Mixed, error) {
	var m Mixed
	runs0 := b.metric(ctx, "nimbus_invocations_total", asyncRuns)
	ack := &acks{ids: map[string]bool{}}
	half := make(chan struct{})
	var once sync.Once
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		b.post(ctx, n, func(k int) bool { return k < events }, func(k, status int, body []byte, err error) {
			ack.answer(k, status, body, err)
			if k >= events/2 {
				once.Do(func() { close(half) })
			}
		})
		once.Do(func() { close(half) })
	}()
	<-half
	m.Sync = b.syncPhase(ctx, n)
	ack.mu.Lock()
	acked := len(ack.ids)
	ack.mu.Unlock()
	m.BacklogAtEnd = max(acked-int(b.metric(ctx, "nimbus_invocations_total", asyncRuns)-runs0), 0)
	<-posted
	if total := m.Sync.OK + m.Sync.Throttled + m.Sync.Other; total > 0 {
		m.ThrottledPct = 100 * float64(m.Sync.Throttled) / float64(total)
	}
	m.Async.Acked, m.Async.Refused, m.Async.LastRefusal = len(ack.ids), ack.refused, ack.last
	// Only the count: the sync calls' records, interleaved with the
	// events', would push some of these out of a list of 10,000.
	ran, err := b.awaitRuns(ctx, runs0, len(ack.ids), time.Now().Add(10*time.Minute))
	m.Async.Unfinished = max(len(ack.ids)-ran, 0)
	return m, err
}

type completion struct {
	succeeded, failed, unfinished, ranTwice int
	firstStart, lastEnd                     time.Time
}

// asyncRuns matches the samples of nimbus_invocations_total that count
// asynchronous attempts.
const asyncRuns = `trigger="async"`

// await polls a follower's invocation records until every id has a
// terminal record or limit has passed. It first waits, more cheaply
// (reading a list of 10,000 records takes a server's CPU from the
// queue), for the servers' count of asynchronous attempts to grow from
// runs0 by len(ids).
func (b *bench) await(ctx context.Context, ids map[string]bool, runs0 float64, limit time.Duration) (completion, error) {
	deadline := time.Now().Add(limit)
	if _, err := b.awaitRuns(ctx, runs0, len(ids), deadline); err != nil {
		return completion{}, err
	}
	poll := b.c.Servers[(b.leader+1)%len(b.c.Servers)].API
	var c completion
	for {
		recs, err := b.api.Invocations(ctx, poll, "")
		if err != nil && ctx.Err() != nil {
			return c, err
		}
		c = completion{}
		seen := map[string]bool{}
		for _, r := range recs {
			if !ids[r.ID] || seen[r.ID] {
				continue
			}
			seen[r.ID] = true
			switch r.Status {
			case client.StatusSuccess:
				c.succeeded++
			case client.StatusFailed, "dead_letter":
				c.failed++
			default:
				continue
			}
			if r.Attempts > 1 {
				c.ranTwice++
			}
			if c.firstStart.IsZero() || r.Start.Before(c.firstStart) {
				c.firstStart = r.Start
			}
			if end := r.Start.Add(time.Duration(r.DurationMS * float64(time.Millisecond))); end.After(c.lastEnd) {
				c.lastEnd = end
			}
		}
		c.unfinished = len(ids) - c.succeeded - c.failed
		if c.unfinished == 0 || time.Now().After(deadline) {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// awaitRuns waits until the servers' count of asynchronous attempts has
// grown from runs0 by n, or deadline passes, and returns how far it grew.
func (b *bench) awaitRuns(ctx context.Context, runs0 float64, n int, deadline time.Time) (int, error) {
	for {
		ran := int(b.metric(ctx, "nimbus_invocations_total", asyncRuns) - runs0)
		if ran >= n || time.Now().After(deadline) {
			return ran, nil
		}
		select {
		case <-ctx.Done():
			return ran, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// metric sums the samples of a counter whose labels contain match over
// every server's /metrics.
func (b *bench) metric(ctx context.Context, name, match string) float64 {
	total := 0.0
	for _, s := range b.c.Servers {
		status, body, err := b.api.Do(ctx, http.MethodGet, s.API, "/metrics", nil, nil)
		if err != nil || status != http.StatusOK {
			fmt.Fprintf(os.Stderr, "metrics of %s: %d %v\n", s.ID, status, err)
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, match) {
				continue
			}
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
					total += v
				}
			}
		}
	}
	return total
}
