package e2e

import (
	"encoding/json"
	"fmt"
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

// leasedEvents is how many events the leader has running when it is
// killed or paused; recoveryWorkerSlots the slots of the one worker, so
// that all of them run at once.
const (
	leasedEvents        = 20
	recoveryWorkerSlots = 24
)

// startRecoveryCluster starts three servers and one worker with room
// for every event, and deploys the slow function on all of them.
func startRecoveryCluster(t *testing.T) *testCluster {
	t.Helper()
	c := startCluster(t, 3, 0)
	c.addWorkerArgs("--token", c.token, "--slots", fmt.Sprint(recoveryWorkerSlots))
	for i := range c.servers {
		waitFor(t, patience, c.servers[i].id+" sees the worker", func() bool {
			cl, err := c.clusterView(i)
			return err == nil && healthyWorkers(cl) == 1
		})
	}
	c.deployEverywhere("slow", recoverHandler, recoverManifest)
	return c
}

// enqueueLeased queues leasedEvents events of the slow function through
// the leader and returns the leader and their request IDs.
func (c *testCluster) enqueueLeased() (int, []string) {
	c.t.Helper()
	var l int
	waitFor(c.t, patience, "the cluster has a leader", func() bool { l = c.leader(); return l >= 0 })
	var ids []string
	for range leasedEvents {
		ids = append(ids, c.enqueueOn(l, "slow"))
	}
	return l, ids
}

// waitAllRunningOnTheWorker waits until every event of ids is running,
// as server i's records say, and the worker counts as many busy slots,
// as follower f sees it (every invocation has reached the worker).
func (c *testCluster) waitAllRunningOnTheWorker(i, f int, fn string, ids []string) {
	c.t.Helper()
	waitFor(c.t, patience, fmt.Sprintf("%d events running on the worker", len(ids)), func() bool {
		for _, id := range ids {
			if r, ok := c.recordOn(i, fn, id); !ok || r.Status != client.StatusRunning {
				return false
			}
		}
		cl, err := c.clusterView(f)
		return err == nil && len(cl.Workers) == 1 && cl.Workers[0].InUse == len(ids)
	})
}

// waitAllSucceeded waits until every event of ids has succeeded, as
// server i's records say, and returns their records.
func (c *testCluster) waitAllSucceeded(i int, fn string, ids []string) map[string]client.Invocation {
	c.t.Helper()
	out := map[string]client.Invocation{}
	waitFor(c.t, patience, fmt.Sprintf("%d events to succeed", len(ids)), func() bool {
		for _, id := range ids {
			r, ok := c.recordOn(i, fn, id)
			if !ok || r.Status != client.StatusSuccess {
				return false
			}
			out[id] = r
		}
		return true
	})
	return out
}

// TestAsyncLeaderKillRunsTheLostEventsAgainAtOnce: the leader dies with
// 20 events' runs in flight; the worker cuts them off as the leader's
// RPC streams die, so no worker reports them, and the new leader runs
// them again at once. Before, they waited for their leases: 10 minutes
// and 10 s, far past this test's deadlines, which only the recovery can
// meet. None is lost: each succeeds, on its second attempt.
func TestAsyncLeaderKillRunsTheLostEventsAgainAtOnce(t *testing.T) {
	parallel(t)
	c := startRecoveryCluster(t)
	l, ids := c.enqueueLeased()
	c.waitAllRunningOnTheWorker(l, (l+1)%3, "slow", ids)

	killedAt := time.Now()
	c.killServer(l)
	var nl int
	waitFor(t, patience, "the survivors elect a new leader", func() bool { nl = c.leader(); return nl >= 0 })
	recs := c.waitAllSucceeded(nl, "slow", ids)
	t.Logf("%d events succeeded %v after the leader was killed", len(ids), time.Since(killedAt).Round(time.Second))
	for id, r := range recs {
		if r.Attempts != 2 {
			t.Errorf("%s: %d attempts; want 2 (the run lost with the leader, then the run again)", id, r.Attempts)
		}
	}
	if !regexp.MustCompile(fmt.Sprintf(`earlier terms' leases.* adopted=0 lost=%d `, leasedEvents)).MatchString(c.servers[nl].out.String()) {
		t.Errorf("the new leader %s did not log the lost leases", c.servers[nl].id)
	}
}

// TestAsyncDeposedLeadersRunningEventsAreAdopted: the leader is paused
// (SIGSTOP) while its 20 events run: its connections to the worker stay
// open, so the runs go on and the worker reports them. The new leader
// adopts the leases rather than running the events again; once the old
// leader resumes and finds itself deposed, its term ends after the runs,
// whose outcomes it commits through the new leader: one attempt each,
// none run twice.
func TestAsyncDeposedLeadersRunningEventsAreAdopted(t *testing.T) {
	parallel(t)
	c := startRecoveryCluster(t)
	l, ids := c.enqueueLeased()
	others := slices.DeleteFunc([]int{0, 1, 2}, func(i int) bool { return i == l })
	c.waitAllRunningOnTheWorker(l, others[0], "slow", ids)

	c.pauseServer(l)
	var nl int
	waitFor(t, patience, "the others elect a new leader", func() bool { nl = c.leaderAmong(others); return nl >= 0 && nl != l })
	adopted := regexp.MustCompile(fmt.Sprintf(`earlier terms' leases.* adopted=%d lost=0 `, leasedEvents))
	waitFor(t, patience, "the new leader to adopt the leases", func() bool { return adopted.MatchString(c.servers[nl].out.String()) })
	c.resumeServer(l)

	for id, r := range c.waitAllSucceeded(nl, "slow", ids) {
		if r.Attempts != 1 {
			t.Errorf("%s: %d attempts; want 1 (adopted, never run again)", id, r.Attempts)
		}
	}
}
