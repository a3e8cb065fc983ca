package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/internal/waitfor"
	"nimbus/pkg/client"
)

// submitHTTP is the client for submissions: long enough for a commit that
// waits out an election, short enough that a dead server cannot stall the
// test.
var submitHTTP = &http.Client{Timeout: 10 * time.Second}

// api sends a request with the cluster's key to server i. A dead server
// gives an error, not a test failure.
func (c *testCluster) api(i int, hc *http.Client, method, path string, body io.Reader, header http.Header) (int, []byte, error) {
	status, _, b, err := c.apiHeader(i, hc, method, path, body, header)
	return status, b, err
}

// apiHeader is api that also returns the answer's header.
func (c *testCluster) apiHeader(i int, hc *http.Client, method, path string, body io.Reader, header http.Header) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, "http://"+c.servers[i].addr+path, body)
	if err != nil {
		return 0, nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b, err
}

// invocationsOn lists function fn's records as server i holds them.
func (c *testCluster) invocationsOn(i int, fn string) ([]client.Invocation, error) {
	status, b, err := c.api(i, shortHTTP, "GET", "/v1/invocations?limit=10000&function="+fn, nil, nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Invocations []client.Invocation `json:"invocations"`
	}
	if status != 200 {
		return nil, fmt.Errorf("GET /v1/invocations: %d %s", status, b)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out.Invocations, nil
}

// meteredOnceOn waits until server i's usage of function fn over the
// last day (from the replicated metric history) is what its terminal
// records add up to: one request each, billed ms × memory MB each. A
// retried, re-run or re-recorded invocation metered twice, or one never
// metered, shows as a difference.
func (c *testCluster) meteredOnceOn(t *testing.T, i int, fn string) {
	t.Helper()
	since := time.Now().Add(-24 * time.Hour).UTC().Format(time.RFC3339)
	var got, want client.UsageRow
	ok := waitfor.Poll(patience, func() bool {
		recs, err := c.invocationsOn(i, fn)
		if err != nil {
			return false
		}
		want = client.UsageRow{}
		for _, r := range recs {
			if r.Status == client.StatusSuccess || r.Status == client.StatusFailed || r.Status == client.StatusDeadLetter {
				want.Requests++
				want.MBMS += r.BilledMS * int64(r.MemoryMB)
			}
		}
		status, b, err := c.api(i, shortHTTP, "GET", "/v1/usage?function="+fn+"&since="+since, nil, nil)
		var u client.Usage
		if err != nil || status != 200 || json.Unmarshal(b, &u) != nil || len(u.Rows) != 1 {
			return false
		}
		got = u.Rows[0]
		return got.Requests == want.Requests && got.MBMS == want.MBMS
	})
	if !ok {
		t.Errorf("%s: usage of %s is %d requests and %d MB·ms; its terminal records add up to %d and %d",
			c.servers[i].id, fn, got.Requests, got.MBMS, want.Requests, want.MBMS)
	}
}

// scheduleOn is GET /v1/schedules/{name} on server i.
func (c *testCluster) scheduleOn(i int, name string) (client.Schedule, error) {
	var sc client.Schedule
	status, b, err := c.api(i, shortHTTP, "GET", "/v1/schedules/"+name, nil, nil)
	if err != nil {
		return sc, err
	}
	if status != 200 {
		return sc, fmt.Errorf("GET /v1/schedules/%s: %d %s", name, status, b)
	}
	return sc, json.Unmarshal(b, &sc)
}

// deployQuick deploys quickHandler as fn with a 1 s retry delay and waits
// until every server has it.
func (c *testCluster) deployQuick(fn string) {
	c.t.Helper()
	c.deployEverywhere(fn, quickHandler, "retry_delay: 1s\n")
}

// deployEverywhere deploys code (main.py) as fn with manifest (nimbus.yaml)
// and waits until every server has it.
func (c *testCluster) deployEverywhere(fn, code, manifest string) {
	c.t.Helper()
	dir := writeFunction(c.t, c.t.TempDir(), fn, code)
	if err := os.WriteFile(filepath.Join(dir, "nimbus.yaml"), []byte(manifest), 0o644); err != nil {
		c.t.Fatal(err)
	}
	c.mustCLI(0, 0, "deploy", dir)
	for i := range c.servers {
		waitFor(c.t, patience, c.servers[i].id+" has "+fn, func() bool {
			status, _, err := c.api(i, shortHTTP, "GET", "/v1/functions/"+fn, nil, nil)
			return err == nil && status == 200
		})
	}
}

// killLeader kills the leader with SIGKILL, waits until the survivors
// agree on a new one, restarts the old one, and returns when the
// leaderless window began and ended.
func (c *testCluster) killLeader() (killedAt, newLeaderAt time.Time) {
	c.t.Helper()
	var l int
	waitFor(c.t, 30*time.Second, "the cluster has a leader", func() bool { l = c.leader(); return l >= 0 })
	killedAt = time.Now()
	c.killServer(l)
	waitFor(c.t, 30*time.Second, "the survivors elect a new leader", func() bool { return c.leader() >= 0 })
	newLeaderAt = time.Now()
	c.t.Logf("killed leader %s; a new leader after %v", c.servers[l].id, newLeaderAt.Sub(killedAt).Round(time.Millisecond))
	c.restartServer(l)
	return killedAt, newLeaderAt
}

func TestAsyncClusterLosesNoAcknowledgedEventAcrossLeaderKills(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 2)
	c.deployQuick("quick")

	const total = 300
	var (
		mu        sync.Mutex
		acked     = map[string]bool{}
		refused   = map[string]int{} // reason → count
		submitted int
	)
	work := make(chan int)
	var wg sync.WaitGroup
	for g := 0; g < 6; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				s := rand.IntN(len(c.servers))
				hdr := http.Header{client.HeaderInvocationType: {"async"}, "Content-Type": {"application/json"}}
				status, b, err := c.api(s, submitHTTP, "POST", "/v1/functions/quick/invoke", strings.NewReader(fmt.Sprintf(`{"v": %d}`, i)), hdr)
				var ack struct {
					RequestID string `json:"request_id"`
				}
				mu.Lock()
				submitted++
				switch {
				case err != nil:
					refused["transport error"]++
				case status != http.StatusAccepted:
					refused[fmt.Sprintf("HTTP %d", status)]++
				case json.Unmarshal(b, &ack) != nil || ack.RequestID == "":
					t.Errorf("202 without a request id: %s", b)
				default:
					acked[ack.RequestID] = true
				}
				mu.Unlock()
			}
		}()
	}
	// Submissions are paced so that the kills land in the middle of them.
	go func() {
		defer close(work)
		tick := time.NewTicker(40 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < total; i++ {
			<-tick.C
			work <- i
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return submitted }
	start := time.Now()
	waitFor(t, 30*time.Second, "60 submissions", func() bool { return count() >= 60 })
	c.killLeader()
	waitFor(t, 40*time.Second, "180 submissions", func() bool { return count() >= 180 })
	c.killLeader()
	wg.Wait()
	mu.Lock()
	nAcked, nRefused := len(acked), total-len(acked)
	t.Logf("%d submitted in %v: %d acknowledged, %d refused %v", total, time.Since(start).Round(time.Millisecond), nAcked, nRefused, refused)
	mu.Unlock()
	if nAcked < total/2 {
		t.Fatalf("only %d of %d submissions were acknowledged", nAcked, total)
	}

	// Every acknowledged event reaches exactly one success record, on every server.
	var last []client.Invocation
	pending := func(recs []client.Invocation) []string {
		byID := map[string]client.Invocation{}
		for _, r := range recs {
			byID[r.ID] = r
		}
		var out []string
		for id := range acked {
			if r, ok := byID[id]; !ok || r.Status != client.StatusSuccess {
				out = append(out, fmt.Sprintf("%s=%s/%d", id, r.Status, r.Attempts))
			}
		}
		slices.Sort(out)
		return out
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		l := c.leader()
		if l >= 0 {
			if recs, err := c.invocationsOn(l, "quick"); err == nil {
				last = recs
				if len(pending(recs)) == 0 {
					break
				}
			}
		}
		if time.Now().After(deadline) {
			p := pending(last)
			t.Fatalf("%d of %d acknowledged events have no success record after 60 s (id=status/attempts): %v", len(p), nAcked, p[:min(len(p), 20)])
		}
		waitFor(t, time.Second, "a poll interval", elapsed(100*time.Millisecond))
	}
	t.Logf("every acknowledged event succeeded %v after the first submission", time.Since(start).Round(time.Millisecond))

	seen := map[string]int{}
	again, unacked := 0, 0
	for _, r := range last {
		seen[r.ID]++
		if r.Attempts > 1 {
			again++
		}
		if !acked[r.ID] {
			unacked++
		}
	}
	for id, k := range seen {
		if k > 1 {
			t.Errorf("request %s has %d records", id, k)
		}
	}
	t.Logf("%d records: %d acknowledged events ran more than once (attempts > 1); %d records are of submissions answered with an error (committed before the answer was lost)", len(last), again, unacked)

	for i := range c.servers {
		waitFor(t, patience, c.servers[i].id+" holds every success record", func() bool {
			recs, err := c.invocationsOn(i, "quick")
			return err == nil && len(pending(recs)) == 0
		})
		// Each invocation is metered once, the retried ones included.
		c.meteredOnceOn(t, i, "quick")
	}
	l := c.leader()
	if l >= 0 {
		status, b, err := c.api(l, shortHTTP, "GET", "/v1/deadletters?function=quick", nil, nil)
		var dl struct {
			DeadLetters []client.DeadLetter `json:"dead_letters"`
		}
		if err != nil || status != 200 || json.Unmarshal(b, &dl) != nil || len(dl.DeadLetters) != 0 {
			t.Errorf("dead letters after the run: %d %s %v", status, b, err)
		}
	}
}

func TestScheduleClusterFiresEachSlotOnceAcrossLeaderKills(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 1)
	c.deployQuick("tick")
	c.mustCLI(0, 0, "schedules", "create", "beat", "--function", "tick", "--expression", "@every 1s")

	fires := func() int64 {
		l := c.leader()
		if l < 0 {
			return -1
		}
		sc, err := c.scheduleOn(l, "beat")
		if err != nil {
			return -1
		}
		return sc.Fires
	}
	waitFor(t, patience, "3 fires", func() bool { return fires() >= 3 })
	type window struct{ from, to time.Time }
	var windows []window
	for k := 0; k < 2; k++ {
		killedAt, backAt := c.killLeader()
		windows = append(windows, window{killedAt, backAt})
		var f int64
		waitFor(t, 30*time.Second, "the leader answers with the fire count", func() bool { f = fires(); return f >= 0 })
		waitFor(t, 30*time.Second, "3 more fires under the new leader", func() bool { return fires() >= f+3 })
	}
	l := -1
	waitFor(t, patience, "a leader", func() bool { l = c.leader(); return l >= 0 })
	c.mustCLI(l, 0, "schedules", "disable", "beat")

	// Once no fire is in flight, the schedule's count equals the records.
	var sc client.Schedule
	var slots map[int64]client.Invocation
	waitFor(t, patience, "the fire count matches the fire records", func() bool {
		l := c.leader()
		if l < 0 {
			return false
		}
		s1, err1 := c.scheduleOn(l, "beat")
		recs, err2 := c.invocationsOn(l, "tick")
		s2, err3 := c.scheduleOn(l, "beat")
		if err1 != nil || err2 != nil || err3 != nil || s1.Fires != s2.Fires {
			return false
		}
		sc, slots = s1, fireRecords(t, "beat", recs)
		return int64(len(slots)) == sc.Fires
	})
	var keys []int64
	for s := range slots {
		keys = append(keys, s)
	}
	slices.Sort(keys)
	var gaps []int64
	for s := keys[0]; s <= keys[len(keys)-1]; s++ {
		if _, ok := slots[s]; !ok {
			gaps = append(gaps, s)
		}
	}
	t.Logf("schedule beat: %d fires, %d missed, %d slots from %d to %d, %d slots without a fire %v", sc.Fires, sc.Missed, len(slots), keys[0], keys[len(keys)-1], len(gaps), gaps)
	for _, g := range gaps {
		in := false
		for _, w := range windows {
			if g >= w.from.Unix()-1 && g <= w.to.Unix()+2 {
				in = true
			}
		}
		if !in {
			t.Errorf("slot %d has no fire but lies outside every leaderless window %v", g, windows)
		}
	}
	if sc.Missed != int64(len(gaps)) {
		t.Errorf("the schedule counts %d missed slots, but %d slots between the first and the last fire have no record", sc.Missed, len(gaps))
	}
}
