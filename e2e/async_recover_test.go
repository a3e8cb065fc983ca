package e2e

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// recoverHandler runs for 15 s and returns: long enough for a leader to
// die or be deposed while it runs.
const recoverHandler = "import time\n" +
	"def handler(event, context):\n" +
	"    time.sleep(15)\n" +
	"    return {'ok': True}\n"

// recoverManifest gives the function a 10-minute timeout, so a lease of
// 10 minutes and 10 s, and an hour's retry delay: within the tests'
// deadlines, only a new leader's recovery of the lost lease can run an
// event again.
const recoverManifest = "timeout: 10m\nretry_delay: 1h\n"

// enqueueOn queues an async invocation of fn through server i and
// returns its request ID.
func (c *testCluster) enqueueOn(i int, fn string) string {
	c.t.Helper()
	hdr := http.Header{client.HeaderInvocationType: {"async"}, "Content-Type": {"application/json"}}
	status, b, err := c.api(i, submitHTTP, "POST", "/v1/functions/"+fn+"/invoke", strings.NewReader(`{}`), hdr)
	var ack struct {
		RequestID string `json:"request_id"`
	}
	if err != nil || status != http.StatusAccepted || json.Unmarshal(b, &ack) != nil || ack.RequestID == "" {
		c.t.Fatalf("async invoke of %s: %d %s %v", fn, status, b, err)
	}
	return ack.RequestID
}

// recordOn returns request id's record of function fn as server i holds
// it.
func (c *testCluster) recordOn(i int, fn, id string) (client.Invocation, bool) {
	recs, err := c.invocationsOn(i, fn)
	if err != nil {
		return client.Invocation{}, false
	}
	for _, r := range recs {
		if r.ID == id {
			return r, true
		}
	}
	return client.Invocation{}, false
}

// waitRunningOnTheWorker waits until request id's record is running on
// server i and the one worker counts a busy slot, as follower f sees it
// (the invocation has reached the worker).
func (c *testCluster) waitRunningOnTheWorker(i, f int, fn, id string) {
	c.t.Helper()
	waitFor(c.t, patience, id+" running on the worker", func() bool {
		r, ok := c.recordOn(i, fn, id)
		if !ok || r.Status != client.StatusRunning {
			return false
		}
		cl, err := c.clusterView(f)
		return err == nil && len(cl.Workers) == 1 && cl.Workers[0].InUse == 1
	})
}

// TestAsyncLeaderKillRunsTheLostEventAgainAtOnce: the leader dies with an
// event's run in flight; the worker cuts the run off as the leader's RPC
// stream dies, so no worker reports it, and the new leader runs it again
// at once. Before, it waited for its lease: 10 minutes and 10 s, far past
// this test's 2-minute deadline, which only the recovery can meet.
func TestAsyncLeaderKillRunsTheLostEventAgainAtOnce(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 1)
	c.deployEverywhere("slow", recoverHandler, recoverManifest)
	var l int
	waitFor(t, patience, "the cluster has a leader", func() bool { l = c.leader(); return l >= 0 })
	id := c.enqueueOn(l, "slow")
	c.waitRunningOnTheWorker(l, (l+1)%3, "slow", id)

	killedAt := time.Now()
	c.killServer(l)
	var nl int
	waitFor(t, patience, "the survivors elect a new leader", func() bool { nl = c.leader(); return nl >= 0 })
	var r client.Invocation
	waitFor(t, patience, id+" to succeed", func() bool {
		var ok bool
		r, ok = c.recordOn(nl, "slow", id)
		return ok && r.Status == client.StatusSuccess
	})
	t.Logf("%s succeeded %v after the leader was killed", id, time.Since(killedAt).Round(time.Second))
	if r.Attempts != 2 {
		t.Errorf("%s: %d attempts; want 2 (the run lost with the leader, then the run again)", id, r.Attempts)
	}
	if !regexp.MustCompile(`earlier terms' leases.* adopted=0 lost=1 `).MatchString(c.servers[nl].out.String()) {
		t.Errorf("the new leader %s did not log the lost lease", c.servers[nl].id)
	}
}

// TestAsyncDeposedLeadersRunningEventIsAdopted: the leader is paused
// (SIGSTOP) while its event runs: its connection to the worker stays
// open, so the run goes on and the worker reports it. The new leader
// adopts the lease rather than running the event again; once the old
// leader resumes and finds itself deposed, its term ends after the run,
// whose outcome it commits through the new leader: one attempt.
func TestAsyncDeposedLeadersRunningEventIsAdopted(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 1)
	c.deployEverywhere("slow", recoverHandler, recoverManifest)
	var l int
	waitFor(t, patience, "the cluster has a leader", func() bool { l = c.leader(); return l >= 0 })
	id := c.enqueueOn(l, "slow")
	others := slices.DeleteFunc([]int{0, 1, 2}, func(i int) bool { return i == l })
	c.waitRunningOnTheWorker(l, others[0], "slow", id)

	c.pauseServer(l)
	var nl int
	waitFor(t, patience, "the others elect a new leader", func() bool { nl = c.leaderAmong(others); return nl >= 0 && nl != l })
	adopted := regexp.MustCompile(`earlier terms' leases.* adopted=1 lost=0 `)
	waitFor(t, patience, "the new leader to adopt the lease", func() bool { return adopted.MatchString(c.servers[nl].out.String()) })
	c.resumeServer(l)

	var r client.Invocation
	waitFor(t, patience, id+" to succeed", func() bool {
		var ok bool
		r, ok = c.recordOn(nl, "slow", id)
		return ok && r.Status == client.StatusSuccess
	})
	if r.Attempts != 1 {
		t.Errorf("%s: %d attempts; want 1 (adopted, never run again)", id, r.Attempts)
	}
}
