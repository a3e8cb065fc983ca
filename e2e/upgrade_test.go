package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"nimbus/pkg/client"
)

// previousRelease is the release the rolling upgrade starts from: the
// last commit landed before versions and aliases, the Lambda API,
// custom runtimes and backups (new FSM commands, binary records version
// 5, a log sized by bytes).
const previousRelease = "2a09a84"

// buildRelease builds nimbus as it was at commit rev, from the
// repository's history (git archive: the working tree is not touched).
func buildRelease(t *testing.T, rev string) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := exec.Command("git", "-C", "..", "archive", "--format=tar", rev)
	untar := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	untar.Stdin = pipe
	var aerr bytes.Buffer
	archive.Stderr = &aerr
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	if err := archive.Run(); err != nil {
		t.Fatalf("the upgrade starts from release %s, which this checkout's history lacks (%v: %s): clone the repository with its history", rev, err, aerr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "nimbus-"+rev)
	build := exec.Command("go", "build", "-o", bin, "./cmd/nimbus")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building release %s: %v\n%s", rev, err, out)
	}
	return bin
}

// A running three-server cluster of the previous release is upgraded
// one server at a time, followers first, then its worker, while writes
// go on through every server: every write that was acknowledged is
// there at the end on every server, every acknowledged asynchronous
// event ran, and the upgraded cluster does what the new release adds.
func TestARollingUpgradeFromThePreviousReleaseLosesNoAcknowledgedWrite(t *testing.T) {
	parallel(t)
	old := buildRelease(t, previousRelease)
	c := startClusterOf(t, old, 3, 1)
	dir := t.TempDir()
	c.mustCLI(c.leader(), 0, "deploy", writeFunction(t, dir, "steady", "def handler(event, context):\n    return event\n"))

	// The load: a key made and an async invocation per round, through
	// each server in turn; only what was acknowledged counts.
	type acked struct {
		events []string // the notes of the keys made
		async  []string // request ids
	}
	var (
		mu   sync.Mutex
		got  acked
		stop = make(chan struct{})
		wg   sync.WaitGroup
	)
	hc := &http.Client{Timeout: 10 * time.Second}
	send := func(server int, method, path, body string, header http.Header) (int, []byte) {
		req, _ := http.NewRequest(method, "http://"+c.servers[server].addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		return resp.StatusCode, b.Bytes()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			server := i % len(c.servers)
			name := fmt.Sprintf("upgrade-load-%d", i)
			if status, _ := send(server, "POST", "/v1/keys", `{"role":"viewer","note":"`+name+`"}`, nil); status == 201 {
				mu.Lock()
				got.events = append(got.events, name)
				mu.Unlock()
			}
			status, body := send(server, "POST", "/v1/functions/steady/invoke", fmt.Sprintf(`{"n":%d}`, i), http.Header{client.HeaderInvocationType: {"async"}})
			var ack struct {
				RequestID string `json:"request_id"`
			}
			if status == 202 && json.Unmarshal(body, &ack) == nil && ack.RequestID != "" {
				mu.Lock()
				got.async = append(got.async, ack.RequestID)
				mu.Unlock()
			}
		}
	}()
	writes := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(got.events)
	}
	waitFor(t, time.Minute, "writes are acknowledged before the upgrade", func() bool { return writes() >= 5 })

	// Followers first, the leader last: stop, replace the binary, start,
	// and wait until it is ready (caught up) before the next.
	leader := c.leader()
	order := []int{}
	for i := range c.servers {
		if i != leader {
			order = append(order, i)
		}
	}
	order = append(order, leader)
	for _, i := range order {
		before := writes()
		c.terminate(c.servers[i])
		c.servers[i].bin = ""
		c.restartServer(i)
		waitFor(t, time.Minute, c.servers[i].id+" is ready on the new release", func() bool {
			resp, err := shortHTTP.Get("http://" + c.servers[i].addr + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		})
		waitFor(t, time.Minute, "writes go on after "+c.servers[i].id+"'s upgrade", func() bool { return writes() >= before+5 })
	}
	c.terminate(c.workers[0])
	c.workers[0].bin = ""
	c.restartWorker(0)
	waitFor(t, time.Minute, "the upgraded worker is healthy", func() bool {
		cl, err := c.clusterView(c.leader())
		return err == nil && healthyWorkers(cl) == 1
	})
	before := writes()
	waitFor(t, time.Minute, "writes go on after the worker's upgrade", func() bool { return writes() >= before+5 })
	close(stop)
	wg.Wait()

	// Every acknowledged write is there, on every server.
	mu.Lock()
	final := got
	mu.Unlock()
	for i := range c.servers {
		waitFor(t, time.Minute, c.servers[i].id+" has every acknowledged key", func() bool {
			status, body := send(i, "GET", "/v1/keys?limit=10000", "", nil)
			if status != 200 {
				return false
			}
			var keys struct {
				Keys []client.Key `json:"keys"`
			}
			if json.Unmarshal(body, &keys) != nil {
				return false
			}
			notes := map[string]bool{}
			for _, k := range keys.Keys {
				notes[k.Note] = true
			}
			for _, name := range final.events {
				if !notes[name] {
					return false
				}
			}
			return true
		})
	}
	l := c.leader()
	for _, id := range final.async {
		waitFor(t, 2*time.Minute, "acknowledged event "+id+" succeeds", func() bool {
			status, body := send(l, "GET", "/v1/invocations/"+id, "", nil)
			var rec client.Invocation
			return status == 200 && json.Unmarshal(body, &rec) == nil && rec.Status == client.StatusSuccess
		})
	}
	// What the new release adds works on the upgraded cluster.
	c.mustCLI(l, 0, "publish", "steady")
	if out := c.mustCLI(l, 0, "invoke", "steady:1", "--data", `{"v":1}`).stdout; !strings.Contains(out, `"v": 1`) {
		t.Errorf("invoking the first version after the upgrade: %s", out)
	}
	t.Logf("%d keys and %d async events acknowledged across the upgrade", len(final.events), len(final.async))
}
