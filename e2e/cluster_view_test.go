package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// workerRow finds worker id's row in `nimbus cluster`'s table output and
// returns its fields, nil if it is not listed.
func workerRow(out, id string) []string {
	_, workers, ok := strings.Cut(out, "WORKERS\n")
	if !ok {
		return nil
	}
	for _, line := range strings.Split(workers, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == id {
			return f
		}
	}
	return nil
}

// workerView returns worker id as server 0 sees it.
func workerView(c *testCluster, id string) (client.Worker, bool) {
	cl, err := c.clusterView(0)
	if err != nil {
		return client.Worker{}, false
	}
	for _, w := range cl.Workers {
		if w.ID == id {
			return w, true
		}
	}
	return client.Worker{}, false
}

// A drained worker shows as draining (not merely unhealthy), `nimbus
// worker undrain` makes it take work again, and a dead worker shows as
// dead with nothing warm, then leaves the list after --worker-forget-after.
// Each worker reports its instance memory budget and its use.
func TestClusterViewShowsWorkerStatesUndrainAndForgetsTheDead(t *testing.T) {
	c := startCluster(t, 1, 2, "--worker-dead-after", "3s", "--worker-forget-after", "20s")
	c.mustCLI(0, 0, "deploy", writeFunction(t, t.TempDir(), "quick", quickHandler))

	// A cluster server without --smtp-addr takes an e-mail subscription
	// (another server may have a relay) but warns.
	if r := c.mustCLI(0, 0, "subscriptions", "create", "--on", "failure", "--email", "ops@example.com"); !strings.Contains(r.stderr, "warning") ||
		!strings.Contains(r.stderr, "--smtp-addr") {
		t.Errorf("e-mail subscription on a server without --smtp-addr: no warning in stderr %q", r.stderr)
	}

	// (A busy machine may delay a heartbeat past --worker-dead-after for
	// a moment: poll.)
	var r result
	waitFor(t, 30*time.Second, "nimbus cluster shows both workers ready in its STATE column", func() bool {
		r = c.cli(0, 20*time.Second, "cluster")
		w1, w2 := workerRow(r.stdout, "w1"), workerRow(r.stdout, "w2")
		return r.code == 0 && strings.Contains(r.stdout, "STATE") && w1 != nil && w2 != nil &&
			w1[len(w1)-1] == "ready" && w2[len(w2)-1] == "ready"
	})
	if row := strings.Join(workerRow(r.stdout, "w1"), " "); !instanceMemoryCell.MatchString(row) {
		t.Errorf("nimbus cluster's row of w1 %q shows no instance memory budget (\"USED of BUDGET\")", row)
	}

	c.mustCLI(0, 0, "worker", "drain", "w1")
	c.mustCLI(0, 0, "worker", "drain", "w2")
	waitFor(t, 30*time.Second, "both workers show as draining", func() bool {
		r := c.cli(0, 20*time.Second, "cluster")
		w1, w2 := workerRow(r.stdout, "w1"), workerRow(r.stdout, "w2")
		return r.code == 0 && w1 != nil && w2 != nil && w1[len(w1)-1] == "draining" && w2[len(w2)-1] == "draining"
	})
	if r := c.cli(0, time.Minute, "invoke", "quick"); r.code == 0 {
		t.Fatalf("invoke with every worker draining succeeded: %s", r.stdout)
	}

	r = c.mustCLI(0, 0, "worker", "undrain", "w1")
	if !strings.Contains(r.stdout, "w1") {
		t.Errorf("undrain said %q", r.stdout)
	}
	waitFor(t, 30*time.Second, "w1 shows as ready again, w2 still draining", func() bool {
		w1, ok1 := workerView(c, "w1")
		w2, ok2 := workerView(c, "w2")
		return ok1 && ok2 && w1.State == "ready" && w1.Healthy && w2.State == "draining" && !w2.Healthy
	})
	r = c.mustCLI(0, 0, "invoke", "quick", "--data", `{"v": 3}`)
	if !strings.Contains(r.stdout, `"v": 3`) {
		t.Errorf("invoke after undrain answered %q", r.stdout)
	}
	if r := c.cli(0, time.Minute, "worker", "undrain", "nosuch"); r.code == 0 || !strings.Contains(r.stderr, "nosuch") {
		t.Errorf("undrain of an unknown worker: exit %d, stderr %q; want a failure naming it", r.code, r.stderr)
	}

	// w1 ran the invocation (w2 drains), so it holds a warm instance.
	// Its instance counts against the memory budget it reports.
	var w1 client.Worker
	waitFor(t, 30*time.Second, "w1 reports a warm instance and the memory it counts at", func() bool {
		w, ok := workerView(c, "w1")
		w1 = w
		return ok && w.WarmInstances >= 1 && w.Instances >= 1 && w.InstanceMemoryUsed > 0
	})
	if w1.InstanceMemory <= 0 || w1.InstanceMemoryUsed > w1.InstanceMemory {
		t.Errorf("w1 reports %d bytes used of a budget of %d; want a budget, and the use within it", w1.InstanceMemoryUsed, w1.InstanceMemory)
	}
	c.killWorker(0)
	waitFor(t, 60*time.Second, "the killed w1 shows as dead with nothing warm", func() bool {
		w, ok := workerView(c, "w1")
		return ok && w.State == "dead" && !w.Healthy && w.WarmInstances == 0 && w.InUse == 0 && w.Instances == 0
	})
	if r := c.cli(0, time.Minute, "worker", "undrain", "w1"); r.code != 3 || !strings.Contains(r.stderr, "dead") || !strings.Contains(r.stderr, "409") {
		t.Errorf("undrain of the dead w1: exit %d, stderr %q; want 3 and a 409 saying it is dead", r.code, r.stderr)
	}
	waitFor(t, 120*time.Second, "the dead w1 leaves the cluster view", func() bool {
		cl, err := c.clusterView(0)
		if err != nil {
			return false
		}
		for _, w := range cl.Workers {
			if w.ID == "w1" {
				return false
			}
		}
		return len(cl.Workers) == 1
	})
	// The server forgets w1 at a heartbeat of w2's or a lookup, and logs
	// it then: its log reaches the harness a moment later.
	waitFor(t, 10*time.Second, "the server logs forgetting w1", func() bool {
		return strings.Contains(c.logs(), "worker forgotten")
	})
}

// instanceMemoryCell matches the INSTANCE MEMORY cell of `nimbus
// cluster`'s worker rows: "4.2 MB of 5.9 GB".
var instanceMemoryCell = regexp.MustCompile(`\d B of \d+(\.\d)? [KMGT]B|\d+\.\d [KMGT]B of \d+(\.\d)? [KMGT]B`)

// healthz is GET /healthz on server i: its status and body.
func healthz(c *testCluster, i int) (int, map[string]any) {
	resp, err := shortHTTP.Get("http://" + c.servers[i].addr + "/healthz")
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// apiGet is GET path on server i with the cluster's key.
func apiGet(c *testCluster, i int, path string) (int, string) {
	req, _ := http.NewRequest("GET", "http://"+c.servers[i].addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := shortHTTP.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A server removed while it was down and then restarted still lists
// itself in its own Raft log. It must not serve its stale state: its
// /healthz, the cluster view and its log say it is not a member, and the
// API refuses with 503, until it is joined again.
func TestRemovedServerSaysItIsNotAMemberAndRefusesReads(t *testing.T) {
	c := startCluster(t, 3, 1)
	leader := c.leader()
	victim := (leader + 1) % 3
	vid := c.servers[victim].id
	c.killServer(victim)
	// The two left may have to elect a leader again first.
	waitFor(t, 60*time.Second, vid+" is removed", func() bool {
		return c.cli(leader, time.Minute, "cluster", "remove", vid).code == 0
	})
	// A write the removed server never sees: its state is now stale.
	fresh := writeFunction(t, t.TempDir(), "fresh", quickHandler)
	waitFor(t, 60*time.Second, "a deploy through the members succeeds", func() bool {
		return c.cli(leader, time.Minute, "deploy", fresh).code == 0
	})

	c.start(c.servers[victim], apiLine)
	waitFor(t, 60*time.Second, vid+"'s /healthz says it is not a member", func() bool {
		code, body := healthz(c, victim)
		return code == http.StatusServiceUnavailable && body["not_member"] != nil
	})
	code, body := apiGet(c, victim, "/v1/functions")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not a member of the cluster") {
		t.Errorf("GET /v1/functions on the removed %s: %d %s; want 503 saying it is not a member", vid, code, body)
	}
	r := c.cli(victim, time.Minute, "ls")
	if r.code == 0 || !strings.Contains(r.stderr, "not a member") {
		t.Errorf("nimbus ls on the removed %s: exit %d\nstdout: %s\nstderr: %s", vid, r.code, r.stdout, r.stderr)
	}
	// Its cluster view shows its stale view under the warning when its
	// state knows the key; a restarted server without a snapshot has
	// applied nothing yet and refuses with the reason instead.
	r = c.cli(victim, time.Minute, "cluster")
	switch {
	case r.code == 0 && strings.Contains(r.stdout, "NOT A MEMBER"):
		var cl client.Cluster
		if r := c.mustCLI(victim, 0, "cluster", "-o", "json"); json.Unmarshal([]byte(r.stdout), &cl) != nil || cl.NotMember == "" {
			t.Errorf("nimbus cluster -o json on the removed %s: no not_member in %s", vid, r.stdout)
		}
	case r.code == 3 && strings.Contains(r.stderr, "not a member of the cluster"):
	default:
		t.Errorf("nimbus cluster on the removed %s does not say it is not a member: exit %d\nstdout: %s\nstderr: %s", vid, r.code, r.stdout, r.stderr)
	}
	logged := regexp.MustCompile(`not a member of the cluster`)
	waitFor(t, 30*time.Second, vid+" logs that it is not a member", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return logged.MatchString(c.servers[victim].out.String())
	})
	// The members still serve.
	if code, body := apiGet(c, leader, "/v1/functions"); code != http.StatusOK || !strings.Contains(body, "fresh") {
		t.Errorf("GET /v1/functions on the leader: %d %s", code, body)
	}

	// Joined again, it catches up and serves.
	// (The leader's connection to the victim's internal port may still be
	// in its reconnect backoff from while the victim was down.)
	waitFor(t, 120*time.Second, vid+" is joined again", func() bool {
		return c.cli(leader, time.Minute, "cluster", "join", c.servers[victim].addr).code == 0
	})
	waitFor(t, 90*time.Second, vid+" is a member again and serves the write it missed", func() bool {
		code, _ := healthz(c, victim)
		if code != http.StatusOK {
			return false
		}
		code, body := apiGet(c, victim, "/v1/functions")
		return code == http.StatusOK && strings.Contains(body, "fresh")
	})
}
