package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"syscall"
	"testing"

	"nimbus/pkg/client"
)

// A restarted server answers a valid key, from the moment its port opens,
// with 200 or with 503 and Retry-After while it catches up with the
// cluster: never with 401 (which clients take as final) for a key it has
// not loaded yet. The other servers are paused while it starts, so that
// for a while it knows no leader and cannot catch up; then they go on.
func TestARestartedServerNeverRefusesAValidKey(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 0)
	ctx := context.Background()
	leader := c.leader()
	if leader < 0 {
		t.Fatal("no leader")
	}
	admin := client.New("http://"+c.servers[leader].addr, c.token)
	newKey := func() string {
		t.Helper()
		k, err := admin.CreateKey(ctx, client.KeyRequest{Role: "viewer", Note: "catch-up test"})
		if err != nil {
			t.Fatal(err)
		}
		return k.Secret
	}
	// One key the restarted server has in its log, one made while it is
	// down: both exist only in the log (no snapshot yet), so it knows
	// neither until it has applied the entries the leader says are
	// committed.
	before := newKey()
	follower := (leader + 1) % len(c.servers)
	get := func(key string) (int, string, error) {
		req, _ := http.NewRequest("GET", "http://"+c.servers[follower].addr+"/v1/functions", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := shortHTTP.Do(req)
		if err != nil {
			return 0, "", err
		}
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Retry-After"), nil
	}
	waitFor(t, patience, "the follower knows the first key", func() bool {
		code, _, err := get(before)
		return err == nil && code == 200
	})
	c.killServer(follower)
	during := newKey()

	var (
		mu       sync.Mutex
		statuses = map[string]int{} // "200", "503", "503 without Retry-After", ...
		ok       int                // 200s in a row at the end
	)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			key := before
			if i%2 == 1 {
				key = during
			}
			code, retryAfter, err := get(key)
			if err != nil {
				continue // the port is not open yet
			}
			what := fmt.Sprint(code)
			if code == http.StatusServiceUnavailable && retryAfter == "" {
				what += " without Retry-After"
			}
			mu.Lock()
			statuses[what]++
			if code == 200 {
				ok++
			} else {
				ok = 0
			}
			mu.Unlock()
		}
	}()
	var others []int
	for i := range c.servers {
		if i != follower {
			others = append(others, i)
		}
	}
	for _, i := range others {
		c.pauseServer(i)
	}
	c.restartServer(follower)
	answered := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, k := range statuses {
			n += k
		}
		return n
	}
	waitFor(t, patience, "the restarted server answers 20 requests while it knows no leader", func() bool { return answered() >= 20 })
	mu.Lock()
	if statuses["200"] > 0 {
		t.Errorf("the restarted server answered 200 while the other servers were paused: %v", statuses)
	}
	mu.Unlock()
	for _, i := range others {
		c.resumeServer(i)
	}
	waitFor(t, patience, "the restarted server answers both keys", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return ok >= 20
	})
	close(stop)
	<-done
	t.Logf("answers of the restarted server: %v", statuses)
	for what, n := range statuses {
		if what != "200" && what != "503" {
			t.Errorf("the restarted server answered a valid key %d times with %s, want only 200 or 503 with Retry-After", n, what)
		}
	}
}

// pauseServer stops server i with SIGSTOP until resumeServer (or the end
// of the test) continues it.
func (c *testCluster) pauseServer(i int) {
	c.t.Helper()
	p := c.signalServer(i, syscall.SIGSTOP)
	c.t.Cleanup(func() { p.Signal(syscall.SIGCONT) })
}

// resumeServer continues server i after pauseServer.
func (c *testCluster) resumeServer(i int) {
	c.t.Helper()
	c.signalServer(i, syscall.SIGCONT)
}

func (c *testCluster) signalServer(i int, sig syscall.Signal) *os.Process {
	c.t.Helper()
	c.mu.Lock()
	p := c.servers[i].cmd.Process
	c.mu.Unlock()
	if err := p.Signal(sig); err != nil {
		c.t.Fatalf("%v to %s: %v", sig, c.servers[i].id, err)
	}
	return p
}
