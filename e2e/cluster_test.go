package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/pkg/client"
)

const quickHandler = "def handler(event, context):\n    return {'ok': True, 'v': event.get('v')}\n"

func TestClusterFormsAndServesFromEveryServer(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 2)

	leader := c.leader()
	for i := range c.servers {
		var cl client.Cluster
		r := c.mustCLI(i, 0, "cluster", "-o", "json")
		if err := json.Unmarshal([]byte(r.stdout), &cl); err != nil {
			t.Fatalf("cluster on %s: %v\n%s", c.servers[i].id, err, r.stdout)
		}
		leaders := 0
		for _, s := range cl.Servers {
			if s.Role == "leader" {
				leaders++
			}
		}
		if len(cl.Servers) != 3 || leaders != 1 || len(cl.Workers) != 2 || healthyWorkers(cl) != 2 {
			t.Errorf("cluster on %s: want 3 servers (one leader) and 2 healthy workers, got %s", c.servers[i].id, r.stdout)
		}
	}

	follower := (leader + 1) % 3
	fnDir := writeFunction(t, t.TempDir(), "quick", quickHandler)
	r := c.mustCLI(follower, 0, "deploy", fnDir, "-o", "json")
	var deployed client.Function
	if err := json.Unmarshal([]byte(r.stdout), &deployed); err != nil || deployed.Revision < 1 {
		t.Fatalf("deploy through follower %s: %s (%v)", c.servers[follower].id, r.stdout, err)
	}
	for i := range c.servers {
		r := c.mustCLI(i, 0, "invoke", "quick", "--data", fmt.Sprintf(`{"v": %d}`, i))
		if !strings.Contains(r.stdout, fmt.Sprintf(`"v": %d`, i)) {
			t.Errorf("invoke through %s answered %q", c.servers[i].id, r.stdout)
		}
	}
	waitFor(t, patience, "the three invocations are recorded", func() bool {
		var recs []client.Invocation
		r := c.cli(leader, 20*time.Second, "invocations", "quick", "-o", "json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &recs) == nil && len(recs) == 3
	})
	// A short log travels in its record: every server shows the logs of
	// all three invocations, not only of the one it served.
	for i := range c.servers {
		waitFor(t, patience, fmt.Sprintf("%s shows the three logs", c.servers[i].id), func() bool {
			var entries []client.LogEntry
			r := c.cli(i, 20*time.Second, "logs", "quick", "-o", "json")
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &entries) != nil || len(entries) != 3 {
				return false
			}
			for _, e := range entries {
				if !strings.Contains(e.Log, "REPORT RequestId: "+e.RequestID) || e.Truncated {
					return false
				}
			}
			return true
		})
	}
	// A write the FSM refuses answers alike through every server: a
	// namespace that still holds a function is a conflict (409), not a
	// 409 on the leader and a 500 through a follower.
	c.mustCLI(follower, 0, "namespaces", "create", "busy") // the follower waits until it has applied its own write
	c.mustCLI(follower, 0, "--namespace", "busy", "deploy", fnDir)
	for i := range c.servers {
		req, _ := http.NewRequest("DELETE", "http://"+c.servers[i].addr+"/v1/namespaces/busy", nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("DELETE /v1/namespaces/busy through %s: %v", c.servers[i].id, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "Conflict") {
			t.Errorf("removing a namespace that holds a function through %s: %d %s, want 409 Conflict", c.servers[i].id, resp.StatusCode, body)
		}
	}
	waitFor(t, patience, "every server shows the deployed revision", func() bool {
		for i := range c.servers {
			fn, ok := c.getFunction(i, "quick")
			if !ok || fn.Revision != deployed.Revision || fn.CodeSHA256 != deployed.CodeSHA256 {
				return false
			}
		}
		return true
	})
}

// ack is one acknowledged deploy.
type ack struct {
	v        int
	revision int64
	at       time.Time
}

// attempt is one invoke of the stream.
type attempt struct {
	server int
	start  time.Time
	end    time.Time
	ok     bool
	out    string
}

func TestLeaderKillDuringDeploysAndInvokes(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 2)
	fnDir := writeFunction(t, t.TempDir(), "quick", quickHandler)
	c.mustCLI(0, 0, "deploy", fnDir)
	c.mustCLI(0, 0, "invoke", "quick")

	var (
		mu       sync.Mutex
		acks     []ack
		attempts []attempt
		dead     = -1
	)
	pick := func() int {
		mu.Lock()
		defer mu.Unlock()
		for {
			if i := rand.IntN(3); i != dead {
				return i
			}
		}
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	wg.Add(2)
	go func() { // deploys
		defer wg.Done()
		for v := 1; ctx.Err() == nil; v++ {
			r := c.cli(pick(), 20*time.Second, "deploy", fnDir, "--env", fmt.Sprintf("V=%d", v), "-o", "json")
			var fn client.Function
			if r.code == 0 && json.Unmarshal([]byte(r.stdout), &fn) == nil {
				mu.Lock()
				acks = append(acks, ack{v, fn.Revision, time.Now()})
				mu.Unlock()
			}
		}
	}()
	go func() { // invokes
		defer wg.Done()
		for ctx.Err() == nil {
			i := pick()
			start := time.Now()
			r := c.cli(i, 20*time.Second, "invoke", "quick", "--data", `{"v": 1}`)
			mu.Lock()
			attempts = append(attempts, attempt{i, start, time.Now(), r.code == 0 && strings.Contains(r.stdout, `"ok": true`), r.stdout + r.stderr})
			mu.Unlock()
		}
	}()
	countAcks := func() int { mu.Lock(); defer mu.Unlock(); return len(acks) }
	waitFor(t, 30*time.Second, "three deploys are acknowledged", func() bool { return countAcks() >= 3 })

	old := c.leader()
	if old < 0 {
		t.Fatal("no leader before the kill")
	}
	mu.Lock()
	dead = old
	mu.Unlock()
	killedAt := time.Now()
	c.killServer(old)
	t.Logf("killed the leader %s", c.servers[old].id)

	newLeader := -1
	waitFor(t, patience, "a new leader among the survivors", func() bool {
		newLeader = c.leader()
		return newLeader >= 0
	})
	electedAt := time.Now()
	waitFor(t, 30*time.Second, "a deploy is acknowledged after the kill", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acks) > 0 && acks[len(acks)-1].at.After(killedAt)
	})
	mu.Lock()
	var firstWrite time.Time
	for _, a := range acks {
		if a.at.After(killedAt) {
			firstWrite = a.at
			break
		}
	}
	mu.Unlock()
	t.Logf("failover: new leader %s after %v, first acknowledged deploy after %v",
		c.servers[newLeader].id, electedAt.Sub(killedAt).Round(time.Millisecond), firstWrite.Sub(killedAt).Round(time.Millisecond))

	const wantStreak = 10
	waitFor(t, 60*time.Second, fmt.Sprintf("%d consecutive invokes succeed after the new leader", wantStreak), func() bool {
		mu.Lock()
		defer mu.Unlock()
		streak := 0
		for _, a := range attempts {
			switch {
			case a.start.Before(electedAt):
			case a.ok:
				streak++
			default:
				streak = 0
			}
		}
		return streak >= wantStreak
	})
	stop()
	wg.Wait()

	// Failures are allowed around the kill only: not for an invoke that
	// ended before the kill or started well after the new leader took
	// office.
	var before, around, after int
	for _, a := range attempts {
		switch {
		case a.ok:
		case a.end.Before(killedAt):
			before++
			t.Errorf("invoke through %s failed before the kill: %s", c.servers[a.server].id, a.out)
		case a.start.Before(electedAt.Add(2 * time.Second)):
			around++
			t.Logf("invoke through %s at kill%+v failed (allowed): %s", c.servers[a.server].id, a.start.Sub(killedAt).Round(time.Millisecond), strings.TrimSpace(a.out))
		default:
			after++
			t.Errorf("invoke through %s at kill+%v failed: %s", c.servers[a.server].id, a.start.Sub(killedAt).Round(time.Millisecond), a.out)
		}
	}
	t.Logf("%d deploys acknowledged, %d invokes: %d failed before the kill, %d around it, %d after", len(acks), len(attempts), before, around, after)

	last := acks[len(acks)-1]
	for _, a := range acks {
		if a.revision > last.revision {
			last = a
		}
	}
	survivors := c.liveServers()
	var agreed client.Function
	waitFor(t, patience, "the survivors agree on a revision at least the last acknowledged one", func() bool {
		var fns []client.Function
		for _, i := range survivors {
			fn, ok := c.getFunction(i, "quick")
			if !ok {
				return false
			}
			fns = append(fns, fn)
		}
		for _, fn := range fns {
			if fn.Revision != fns[0].Revision || fn.Revision < last.revision {
				return false
			}
		}
		agreed = fns[0]
		return true
	})
	if agreed.Revision == last.revision && agreed.Env["V"] != fmt.Sprint(last.v) {
		t.Errorf("revision %d holds V=%q, but the deploy acknowledged as revision %d set V=%d", agreed.Revision, agreed.Env["V"], last.revision, last.v)
	}
	for k := 1; k < len(acks); k++ {
		if acks[k].revision <= acks[k-1].revision {
			t.Errorf("acknowledged revisions go backwards: V=%d got %d after V=%d got %d", acks[k].v, acks[k].revision, acks[k-1].v, acks[k-1].revision)
		}
	}

	c.restartServer(old)
	waitFor(t, 45*time.Second, "the restarted server catches up: all three list the same functions and revisions", func() bool {
		want, ok := c.listFunctions(survivors[0])
		if !ok || want["quick"] != agreed.Revision {
			return false
		}
		for i := range c.servers {
			got, ok := c.listFunctions(i)
			if !ok || len(got) != len(want) {
				return false
			}
			for name, rev := range want {
				if got[name] != rev {
					return false
				}
			}
		}
		return true
	})
	if fn, ok := c.getFunction(old, "quick"); !ok || fn.Env["V"] != agreed.Env["V"] || fn.CodeSHA256 != agreed.CodeSHA256 {
		t.Errorf("the restarted server holds %+v, the survivors %+v", fn, agreed)
	}
}

func TestWorkerKillMidInvocation(t *testing.T) {
	c := startCluster(t, 1, 2, "--worker-dead-after", "2s")
	dir := t.TempDir()
	c.mustCLI(0, 0, "deploy", writeFunction(t, dir, "slow", "import time\n\ndef handler(event, context):\n    with open('/proc/self/comm', 'w') as f:\n        f.write('nimbus-slow')\n    time.sleep(20)\n    return 'slept'\n"), "--timeout", "60s")
	c.mustCLI(0, 0, "deploy", writeFunction(t, dir, "quick", quickHandler))

	type outcome struct {
		r    result
		took time.Duration
	}
	done := make(chan outcome, 1)
	go func() {
		start := time.Now()
		r := c.cli(0, 80*time.Second, "invoke", "slow")
		done <- outcome{r, time.Since(start)}
	}()
	// The worker running the handler is the one whose sandbox holds the
	// process it renamed. (The cluster view cannot tell: a server counts
	// an invocation on a worker it tried first and could not reach.)
	busy := -1
	waitFor(t, 30*time.Second, "a worker runs the slow invocation", func() bool {
		for i, w := range c.workers {
			for _, pids := range sandboxesOfWorkers(append([]int{w.cmd.Process.Pid}, childrenOf(w.cmd.Process.Pid)...)) {
				for _, pid := range pids {
					if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(comm)) == "nimbus-slow" {
						busy = i
						return true
					}
				}
			}
		}
		return false
	})
	survivor := c.workers[1-busy].id
	killedAt := time.Now()
	c.killWorker(busy)
	t.Logf("killed %s while it ran the slow invocation", c.workers[busy].id)

	var o outcome
	select {
	case o = <-done:
	case <-time.After(patience):
		t.Fatalf("the invoke did not answer within %v of its worker's death", patience)
	}
	t.Logf("the invoke answered %v after the kill", time.Since(killedAt).Round(time.Millisecond))
	var fe struct{ ErrorType, ErrorMessage string }
	if o.r.code != 1 || json.Unmarshal([]byte(o.r.stdout), &fe) != nil || fe.ErrorType != "Sandbox.WorkerLost" {
		t.Errorf("invoke of the lost worker: exit %d, want 1 with errorType Sandbox.WorkerLost\nstdout: %s\nstderr: %s", o.r.code, o.r.stdout, o.r.stderr)
	}
	waitFor(t, patience, "the invocation is recorded as failed with Sandbox.WorkerLost", func() bool {
		var recs []client.Invocation
		r := c.cli(0, 20*time.Second, "invocations", "slow", "-o", "json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &recs) == nil && len(recs) == 1 &&
			recs[0].Status == client.StatusFailed && recs[0].ErrorType == "Sandbox.WorkerLost"
	})

	r := c.mustCLI(0, 0, "invoke", "quick", "--data", `{"v": 7}`)
	if !strings.Contains(r.stdout, `"v": 7`) {
		t.Errorf("quick answered %q", r.stdout)
	}
	waitFor(t, patience, "the quick invocation is recorded as run by the survivor", func() bool {
		var recs []client.Invocation
		r := c.cli(0, 20*time.Second, "invocations", "quick", "-o", "json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &recs) == nil && len(recs) == 1 &&
			recs[0].Status == client.StatusSuccess && (recs[0].Worker == "" || recs[0].Worker == survivor)
	})
	// The lost invocation and the survivor's are metered once each.
	c.meteredOnceOn(t, 0, "slow")
	c.meteredOnceOn(t, 0, "quick")
	waitFor(t, patience, "the dead worker shows unhealthy", func() bool {
		cl, err := c.clusterView(0)
		if err != nil {
			return false
		}
		for _, w := range cl.Workers {
			if w.ID == c.workers[busy].id {
				return !w.Healthy
			}
		}
		return true // forgotten altogether is fine too
	})
}

func TestNoLeaderMeansWritesAnswer503(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 1) // a deploy needs a worker to offer the runtime
	fnDir := writeFunction(t, t.TempDir(), "quick", quickHandler)
	r := c.mustCLI(0, 0, "deploy", fnDir, "-o", "json")
	var deployed client.Function
	if err := json.Unmarshal([]byte(r.stdout), &deployed); err != nil {
		t.Fatal(err)
	}
	survivor := 2
	waitFor(t, patience, "the survivor-to-be has the function", func() bool {
		fn, ok := c.getFunction(survivor, "quick")
		return ok && fn.Revision == deployed.Revision
	})
	c.killServer(0)
	c.killServer(1)

	start := time.Now()
	r = c.cli(survivor, 60*time.Second, "deploy", fnDir, "--env", "V=2")
	took := time.Since(start)
	t.Logf("the deploy without a leader answered in %v: exit %d, %s", took.Round(time.Millisecond), r.code, strings.TrimSpace(r.stderr))
	msg := strings.ToLower(r.stdout + r.stderr)
	if r.code != 3 || !(strings.Contains(msg, "503") || strings.Contains(msg, "no leader")) {
		t.Errorf("deploy without a leader: exit %d, want 3 with 503 or \"no leader\"\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if took > 30*time.Second {
		t.Errorf("the deploy without a leader took %v to answer", took)
	}

	// A write that carries no code goes to Raft alone: it must answer 503
	// too, not hang until the client gives up.
	start = time.Now()
	r = c.cli(survivor, 60*time.Second, "rm", "quick")
	took = time.Since(start)
	t.Logf("rm without a leader answered in %v: exit %d, %s", took.Round(time.Millisecond), r.code, strings.TrimSpace(r.stderr))
	msg = strings.ToLower(r.stdout + r.stderr)
	if r.code != 3 || !(strings.Contains(msg, "503") || strings.Contains(msg, "no leader")) {
		t.Errorf("rm without a leader: exit %d, want 3 with 503 or \"no leader\"\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if took > 30*time.Second {
		t.Errorf("rm without a leader took %v to answer", took)
	}

	// A sync invoke still runs without a leader. Its record cannot be
	// committed, but its log (short, so carried by the record alone) is
	// kept by the server that ran it.
	r = c.cli(survivor, 60*time.Second, "invoke", "quick", "--data", `{"v": 9}`, "--tail")
	i := strings.Index(r.stderr, "REPORT RequestId: ")
	if r.code != 0 || i < 0 {
		t.Fatalf("invoke without a leader: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	id := strings.Fields(r.stderr[i+len("REPORT RequestId: "):])[0]
	waitFor(t, 60*time.Second, "the survivor keeps the log of the invocation it could not record", func() bool {
		var entries []client.LogEntry
		r := c.cli(survivor, 20*time.Second, "logs", "quick", "--request", id, "-o", "json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &entries) == nil && len(entries) == 1 &&
			strings.Contains(entries[0].Log, "REPORT RequestId: "+id)
	})

	fns, ok := c.listFunctions(survivor)
	if !ok || fns["quick"] != deployed.Revision {
		t.Errorf("ls on the survivor: %v (ok %v), want quick at revision %d", fns, ok, deployed.Revision)
	}
	if fn, ok := c.getFunction(survivor, "quick"); !ok || fn.Revision != deployed.Revision {
		t.Errorf("get on the survivor: %+v (ok %v)", fn, ok)
	}
}

func TestServerRefusesAStrangerKey(t *testing.T) {
	parallel(t)
	c := startCluster(t, 1, 0)
	stranger := newClusterToken(t)

	r := c.cliWithKey(0, stranger, 20*time.Second, "ls")
	if r.code != 3 {
		t.Errorf("ls with a stranger's key: exit %d, want 3\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r := c.cliWithKey(0, c.token, 20*time.Second, "ls"); r.code != 0 {
		t.Errorf("ls with the cluster's key: exit %d\n%s", r.code, r.stderr)
	}

	// A worker started with a stranger's key is refused its certificate
	// and exits saying why, while one with the cluster's key is admitted.
	// (A heartbeat without a certificate of the cluster CA does not get
	// past TLS: see TestMTLSInternalPortRefusesPlainClients.)
	r = c.failingWorker("intruder", "--token", stranger)
	if r.code == 0 || !strings.Contains(r.stderr, "unknown join token") {
		t.Errorf("a worker with a stranger's key: exit %d, want a refusal naming an unknown join token\n%s", r.code, r.stderr)
	}
	c.addWorker()
	waitFor(t, patience, "the keyed worker is admitted", func() bool {
		cl, err := c.clusterView(0)
		return err == nil && healthyWorkers(cl) >= 1
	})
	cl, err := c.clusterView(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range cl.Workers {
		if w.ID == "intruder" {
			t.Errorf("a stranger is in the cluster: %+v", w)
		}
	}
}

// TestProvisionedInstancesSpreadOverTheClustersWorkers deploys a function
// with provisioned: 2 to a cluster of two workers: the leader asks each
// worker, over their mutual-TLS RPC, for one ready instance, and the
// first invocation is warm.
func TestProvisionedInstancesSpreadOverTheClustersWorkers(t *testing.T) {
	parallel(t)
	c := startCluster(t, 1, 2)
	c.mustCLI(0, 0, "deploy", writeFunction(t, t.TempDir(), "ready", quickHandler), "--provisioned", "2")
	waitFor(t, 60*time.Second, "each worker holds one ready instance", func() bool {
		cl, err := c.clusterView(0)
		if err != nil || len(cl.Workers) != 2 {
			return false
		}
		for _, w := range cl.Workers {
			if w.WarmInstances != 1 {
				return false
			}
		}
		return true
	})
	r := c.mustCLI(0, 0, "invoke", "ready", "--tail")
	if strings.Contains(r.stderr, "Init Duration") {
		t.Errorf("the first invocation of a provisioned function was a cold start:\n%s", r.stderr)
	}
}
