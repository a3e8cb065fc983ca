package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// chaosHandler prints the line the chaos test counts runs by: the event's
// payload id and the request id of the run. It runs for 50 ms, so that a
// kill is likely to find runs in flight.
const chaosHandler = "import time\n" +
	"def handler(event, context):\n" +
	"    print('run %s %s' % (event.get('id'), context.aws_request_id))\n" +
	"    time.sleep(0.05)\n" +
	"    return {'id': event.get('id')}\n"

// runLine matches chaosHandler's line in a log.
var runLine = regexp.MustCompile(`(?m)^run (\S+) (\S+)$`)

// chaosLoad is what the load of the chaos test sent and was answered.
// Safe for concurrent use.
type chaosLoad struct {
	mu       sync.Mutex
	acked    map[string]string // request id of each 202 → its payload id
	answers  map[string]int    // "async 202", "sync 503", "sync no answer", ...
	syncOK   map[string]bool   // payload ids of the sync invocations answered 200
	refusals []string          // the first answers that refused the valid key
	refused  int               // 401, 403 and 404 answers (every function exists throughout)
	samples  map[string]string // the first body of each kind of answer but 200 and 202
}

func newChaosLoad() *chaosLoad {
	return &chaosLoad{acked: map[string]string{}, answers: map[string]int{}, syncOK: map[string]bool{}, samples: map[string]string{}}
}

// answer counts one answer (err when there was none) to a request of kind
// ("async" or "sync") sent to server.
func (l *chaosLoad) answer(kind, server, payload string, status int, hdr http.Header, body []byte, err error) {
	what := fmt.Sprintf("%s %d", kind, status)
	switch {
	case err != nil:
		what = kind + " no answer"
	case status == http.StatusServiceUnavailable && hdr.Get("Retry-After") == "":
		what += " without Retry-After"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answers[what]++
	if _, seen := l.samples[what]; !seen && err == nil && status != http.StatusOK && status != http.StatusAccepted {
		l.samples[what] = string(body)
	}
	switch {
	case err != nil:
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusNotFound:
		l.refused++
		if len(l.refusals) < 10 {
			l.refusals = append(l.refusals, fmt.Sprintf("%s %s on %s at %s: %d %s", kind, payload, server, time.Now().Format("15:04:05.000"), status, body))
		}
	case kind == "sync" && status == http.StatusOK:
		l.syncOK[payload] = true
	}
}

// ack records an acknowledged async event.
func (l *chaosLoad) ack(requestID, payload string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.acked[requestID] = payload
}

// drive calls send with 0, 1, 2, … once every period, from senders
// goroutines (a send that blocks on a paused server delays the later ones
// once every sender waits), until stop is closed.
func drive(stop <-chan struct{}, period time.Duration, senders int, send func(n int)) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range work {
				send(n)
			}
		}()
	}
	defer wg.Wait()
	defer close(work)
	tick := time.NewTicker(period)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		select {
		case <-stop:
			return
		case work <- n:
		}
	}
}

// invokeLoad sends invocations of fns (async or sync) to random running
// servers (paused ones included) with payload ids prefix0, prefix1, …
func (c *testCluster) invokeLoad(stop <-chan struct{}, load *chaosLoad, async bool, period time.Duration, senders int, fns []string) {
	kind, prefix := "sync", "s"
	if async {
		kind, prefix = "async", "a"
	}
	drive(stop, period, senders, func(n int) {
		live := c.liveServers()
		if len(live) == 0 {
			return
		}
		s := live[rand.IntN(len(live))]
		payload := fmt.Sprintf("%s%d", prefix, n)
		hdr := http.Header{"Content-Type": {"application/json"}}
		if async {
			hdr.Set(client.HeaderInvocationType, "async")
		}
		status, rh, b, err := c.apiHeader(s, submitHTTP, "POST", "/v1/functions/"+fns[n%len(fns)]+"/invoke", strings.NewReader(`{"id": "`+payload+`"}`), hdr)
		load.answer(kind, c.servers[s].id, payload, status, rh, b, err)
		if async && err == nil && status == http.StatusAccepted {
			var ack struct {
				RequestID string `json:"request_id"`
			}
			if json.Unmarshal(b, &ack) != nil || ack.RequestID == "" {
				c.t.Errorf("202 without a request id: %s", b)
				return
			}
			load.ack(ack.RequestID, payload)
		}
	})
}

// recordsOn returns the records of fns as server i holds them, by request
// id.
func (c *testCluster) recordsOn(i int, fns []string) (map[string]client.Invocation, error) {
	out := map[string]client.Invocation{}
	for _, fn := range fns {
		recs, err := c.invocationsOn(i, fn)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			out[r.ID] = r
		}
	}
	return out, nil
}

// unfinished lists the acknowledged events without a terminal record in
// recs, as id=status/attempts, sorted.
func unfinished(acked map[string]string, recs map[string]client.Invocation) []string {
	var out []string
	for id := range acked {
		r, ok := recs[id]
		switch {
		case !ok:
			out = append(out, id+"=no record")
		case r.Status != client.StatusSuccess && r.Status != client.StatusFailed && r.Status != client.StatusDeadLetter:
			out = append(out, fmt.Sprintf("%s=%s/%d", id, r.Status, r.Attempts))
		}
	}
	slices.Sort(out)
	return out
}

// chaosRuns is what the logs of every server say ran: for each request
// id, the distinct starts of its runs; for each payload id, the request
// ids that ran it.
type chaosRuns struct {
	starts   map[string]map[int64]bool
	requests map[string]map[string]bool
}

// runsInLogs reads the logs of fns on every server. A run is known by its
// request id and start: a server lists the log its own dispatcher stored
// for the attempt it ran, or else the last attempt's (the record's tail),
// so an event run twice under two leaders shows two starts.
func (c *testCluster) runsInLogs(fns []string) (chaosRuns, error) {
	runs := chaosRuns{starts: map[string]map[int64]bool{}, requests: map[string]map[string]bool{}}
	for i := range c.servers {
		for _, fn := range fns {
			status, b, err := c.api(i, submitHTTP, "GET", "/v1/functions/"+fn+"/logs?limit=10000", nil, nil)
			if err != nil || status != 200 {
				return runs, fmt.Errorf("logs of %s on %s: %d %s %v", fn, c.servers[i].id, status, b, err)
			}
			var out struct {
				Logs []client.LogEntry `json:"logs"`
			}
			if err := json.Unmarshal(b, &out); err != nil {
				return runs, err
			}
			for _, e := range out.Logs {
				for _, m := range runLine.FindAllStringSubmatch(e.Log, -1) {
					payload, id := m[1], m[2]
					if runs.starts[id] == nil {
						runs.starts[id] = map[int64]bool{}
					}
					runs.starts[id][e.Time.UnixNano()] = true
					if runs.requests[payload] == nil {
						runs.requests[payload] = map[string]bool{}
					}
					runs.requests[payload][id] = true
				}
			}
		}
	}
	return runs, nil
}

// TestChaosMixedLoadThroughKillsAndAPause runs async, sync and scheduled
// invocations on three servers and two workers while the leader is
// killed, a worker is killed and a server is paused, one after the
// other. Nothing acknowledged is lost, nothing runs twice but what was
// retried, no slot fires twice, and no answer refuses the valid key.
// Rates and times are logged, never asserted.
func TestChaosMixedLoadThroughKillsAndAPause(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 2, "--records-per-function", "100000")
	fns := []string{"chaos1", "chaos2", "chaos3", "chaos4", "chaos5"}
	for _, fn := range fns {
		// A busy machine may take seconds over a cold start: a timeout
		// would retry the event, which the test allows but need not see.
		c.deployEverywhere(fn, chaosHandler, "timeout: 10s\nretry_delay: 1s\n")
	}
	c.mustCLI(0, 0, "schedules", "create", "beat", "--function", fns[0], "--expression", "@every 1s", "--event", `{"id": "beat"}`)

	load := newChaosLoad()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.invokeLoad(stop, load, true, 50*time.Millisecond, 8, fns) }()
	go func() { defer wg.Done(); c.invokeLoad(stop, load, false, 200*time.Millisecond, 4, fns) }()
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad) // before the cluster stops
	start := time.Now()
	calm := func(what string) { waitFor(t, time.Minute, what, elapsed(15*time.Second)) }

	calm("15 s of load before the first fault")
	c.killLeader()
	waitFor(t, patience, "every server agrees on a leader after the kill", func() bool { return c.leader() >= 0 })

	calm("15 s of load before the worker kill")
	// The worker killed is one the leader last heard running something.
	w := -1
	waitFor(t, patience, "a worker reports runs in flight", func() bool {
		l := c.leader()
		if l < 0 {
			return false
		}
		cl, err := c.clusterView(l)
		if err != nil {
			return false
		}
		for _, wk := range cl.Workers {
			for i, p := range c.workers {
				if wk.ID == p.id && wk.Healthy && wk.InUse > 0 {
					w = i
				}
			}
		}
		return w >= 0
	})
	c.killWorker(w)
	killedWorkerAt := time.Now()
	waitFor(t, patience, "the leader sees the killed worker dead", func() bool {
		l := c.leader()
		if l < 0 {
			return false
		}
		cl, err := c.clusterView(l)
		return err == nil && healthyWorkers(cl) == len(c.workers)-1
	})
	c.restartWorker(w)
	for i := range c.servers {
		waitFor(t, patience, c.servers[i].id+" sees every worker healthy again", func() bool {
			cl, err := c.clusterView(i)
			return err == nil && healthyWorkers(cl) == len(c.workers)
		})
	}
	t.Logf("killed worker %s; healthy again after %v", c.workers[w].id, time.Since(killedWorkerAt).Round(time.Millisecond))

	calm("15 s of load before the pause")
	var paused int
	waitFor(t, patience, "a leader to pause", func() bool { paused = c.leader(); return paused >= 0 })
	var others []int
	for i := range c.servers {
		if i != paused {
			others = append(others, i)
		}
	}
	c.pauseServer(paused)
	pausedAt := time.Now()
	waitFor(t, patience, "the other servers elect a leader while "+c.servers[paused].id+" is paused for 5 s at least", func() bool {
		l := c.leaderAmong(others)
		return l >= 0 && l != paused && time.Since(pausedAt) >= 5*time.Second
	})
	c.resumeServer(paused)
	t.Logf("paused leader %s for %v", c.servers[paused].id, time.Since(pausedAt).Round(time.Millisecond))
	waitFor(t, patience, "every server agrees on a leader after the pause", func() bool { return c.leader() >= 0 })
	faultsEnd := time.Now()

	calm("15 s of load after the faults")
	stopLoad()
	loadEnd := time.Now()
	l := -1
	waitFor(t, patience, "a leader", func() bool { l = c.leader(); return l >= 0 })
	c.mustCLI(l, 0, "schedules", "disable", "beat")

	load.mu.Lock()
	acked := load.acked
	load.mu.Unlock()
	t.Logf("load ran %v (faults over %v after its start): %d async events acknowledged", loadEnd.Sub(start).Round(time.Second), faultsEnd.Sub(start).Round(time.Second), len(acked))
	if len(acked) == 0 {
		t.Fatal("no async event was acknowledged")
	}

	// Every acknowledged event reaches a terminal record.
	var recs map[string]client.Invocation
	const drainBound = 5 * time.Minute
	deadline := loadEnd.Add(drainBound)
	for {
		if l := c.leader(); l >= 0 {
			if r, err := c.recordsOn(l, fns); err == nil {
				recs = r
				if len(unfinished(acked, recs)) == 0 {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			p := unfinished(acked, recs)
			t.Fatalf("%d of %d acknowledged events have no terminal record %v after the load stopped (id=status/attempts): %v", len(p), len(acked), drainBound, p[:min(len(p), 20)])
		}
		waitFor(t, time.Second, "a poll interval", elapsed(500*time.Millisecond))
	}
	drained := time.Now()
	for i := range c.servers {
		waitFor(t, patience, c.servers[i].id+" holds every terminal record", func() bool {
			r, err := c.recordsOn(i, fns)
			return err == nil && len(unfinished(acked, r)) == 0
		})
	}

	// What the logs say ran: an event may run twice only when it was
	// leased twice (its worker or its leader died with it, or its lease
	// expired); a payload never runs under two request ids.
	var runs chaosRuns
	waitFor(t, patience, "every server lists its logs", func() bool {
		var err error
		runs, err = c.runsInLogs(fns)
		return err == nil
	})
	byStatus := map[string]int{}
	retried := 0
	for id := range acked {
		byStatus[recs[id].Status]++
		if recs[id].Attempts > 1 {
			retried++
		}
	}
	twice := 0
	for id, starts := range runs.starts {
		if len(starts) < 2 {
			continue
		}
		twice++
		if r, ok := recs[id]; !ok || r.Attempts < 2 {
			t.Errorf("request %s ran %d times (starts %v) but its record shows %d attempt(s) (status %q, error %q)", id, len(starts), slices.Sorted(maps.Keys(starts)), r.Attempts, r.Status, r.ErrorType)
		}
	}
	for payload, ids := range runs.requests {
		if payload != "beat" && len(ids) > 1 {
			t.Errorf("payload %s ran under %d request ids: %v", payload, len(ids), slices.Sorted(maps.Keys(ids)))
		}
	}
	notRun := 0
	for id, payload := range acked {
		if recs[id].Status == client.StatusSuccess && !runs.requests[payload][id] {
			notRun++
			if notRun <= 10 {
				t.Errorf("event %s (payload %s) succeeded but no log shows its run: %+v", id, payload, recs[id])
			}
		}
	}

	// No slot fired twice (fireRecords fails the test on two records of
	// one slot); a fire run twice was counted above.
	slots := fireRecords(t, "beat", slices.Collect(maps.Values(recs)))
	var sc client.Schedule
	waitFor(t, patience, "the leader answers with schedule beat", func() bool {
		l := c.leader()
		if l < 0 {
			return false
		}
		var err error
		sc, err = c.scheduleOn(l, "beat")
		return err == nil
	})

	load.mu.Lock()
	defer load.mu.Unlock()
	syncUnlogged := 0
	for payload := range load.syncOK {
		if len(runs.requests[payload]) == 0 {
			syncUnlogged++
		}
	}
	unavailable := 0
	for what, n := range load.answers {
		if strings.Contains(what, " 503") {
			unavailable += n
		}
	}
	t.Logf("async: %d acknowledged; terminal by status %v; %d leased more than once; %d request ids ran more than once by the logs", len(acked), byStatus, retried, twice)
	t.Logf("answers to the load: %v (%d × 503, %d refusals of the valid key)", load.answers, unavailable, load.refused)
	t.Logf("what the answers but 200 and 202 said, one of each: %v", load.samples)
	t.Logf("sync: %d answered 200, %d of them have no log on any server", len(load.syncOK), syncUnlogged)
	t.Logf("schedule beat: %d slots with a record, fires %d, missed %d", len(slots), sc.Fires, sc.Missed)
	t.Logf("every acknowledged event terminal %v after the load stopped, %v after the faults ended", drained.Sub(loadEnd).Round(time.Millisecond), drained.Sub(faultsEnd).Round(time.Millisecond))
	if load.refused > 0 {
		t.Errorf("%d answers refused the valid key (401/403) or a function that exists (404); the first: %v", load.refused, load.refusals)
	}
}
