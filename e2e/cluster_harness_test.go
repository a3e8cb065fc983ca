package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"nimbus/internal/nodeproc"
	"nimbus/pkg/client"
)

// testCluster is a set of `nimbus server` and `nimbus worker` processes on
// 127.0.0.1 that share one key. Every process it starts is stopped by
// t.Cleanup. Its methods may be called from several goroutines.
type testCluster struct {
	t       *testing.T
	dir     string
	token   string
	bin     string // the binary new processes run ("" for the one under test)
	join    string // the servers' API addresses, comma-separated
	extra   []string
	mu      sync.Mutex
	servers []*clusterProc
	workers []*clusterProc
}

// clusterProc is one process of a testCluster, with what it needs to be
// started again on the same data and ports.
type clusterProc struct {
	id   string
	bin  string // the nimbus binary it runs; "" for the one under test
	args []string
	addr string // API address of a server, RPC address of a worker
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

var (
	apiLine       = nodeproc.APILine
	workerRPCLine = nodeproc.RPCLine
)

// newClusterToken makes a key of the form nimbus_<12 hex>_<64 hex>.
func newClusterToken(t *testing.T) string {
	t.Helper()
	id, secret := make([]byte, 6), make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		t.Fatal(err)
	}
	rand.Read(secret)
	return "nimbus_" + hex.EncodeToString(id) + "_" + hex.EncodeToString(secret)
}

// freePort returns an address on 127.0.0.1 whose port was free a moment
// ago and that no other test of this process was given. It picks ports
// below the kernel's ephemeral range: a port from that range (what
// listening on port 0 gives) may be taken meanwhile as the source port
// of any outgoing connection on this busy machine, before the node the
// test starts binds it ("address already in use").
func freePort(t *testing.T) string {
	t.Helper()
	portsMu.Lock()
	defer portsMu.Unlock()
	if low, high := portsBelowEphemeral(); high > low {
		for range 1000 {
			p := low + mrand.IntN(high-low)
			if portsGiven[p] {
				continue
			}
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				continue
			}
			ln.Close()
			portsGiven[p] = true
			return ln.Addr().String()
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{} // by freePort
)

// portsBelowEphemeral is the range of ports freePort picks from: up to
// 20,000 ports below the start of the kernel's ephemeral range, not
// under 1,024; empty when that range cannot be read.
func portsBelowEphemeral() (low, high int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0
	}
	start, err := strconv.Atoi(f[0])
	if err != nil {
		return 0, 0
	}
	return max(1024, start-20000), start
}

// startCluster starts nServers servers with --bootstrap-expect nServers,
// waits until they have a leader, then starts nWorkers workers and waits
// until every server sees them healthy. serverFlags are added to every
// server's command line.
func startCluster(t *testing.T, nServers, nWorkers int, serverFlags ...string) *testCluster {
	t.Helper()
	return startClusterOf(t, "", nServers, nWorkers, serverFlags...)
}

// startClusterOf is startCluster running binary bin ("" for the one
// under test) for every server and worker it starts.
func startClusterOf(t *testing.T, bin string, nServers, nWorkers int, serverFlags ...string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, dir: t.TempDir(), token: newClusterToken(t), extra: serverFlags, bin: bin}
	c.dumpLogsOnFailure()
	tokenFile := filepath.Join(c.dir, "token")
	if err := os.WriteFile(tokenFile, []byte(c.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var apis []string
	for i := 0; i < nServers; i++ {
		apis = append(apis, freePort(t))
	}
	c.join = strings.Join(apis, ",")
	for i := 0; i < nServers; i++ {
		id := fmt.Sprintf("s%d", i+1)
		args := []string{"server", "--node-id", id, "--data", filepath.Join(c.dir, id),
			"--listen", apis[i], "--raft", freePort(t), "--bootstrap-expect", fmt.Sprint(nServers),
			"--join", c.join, "--bootstrap-token-file", tokenFile}
		c.servers = append(c.servers, &clusterProc{id: id, bin: bin, args: append(args, serverFlags...), addr: apis[i]})
	}
	for _, s := range c.servers {
		c.start(s, apiLine)
	}
	for i := range c.servers {
		c.waitHealthy(i)
	}
	waitFor(t, 30*time.Second, "the servers elect a leader", func() bool { return c.leader() >= 0 })
	for i := 0; i < nWorkers; i++ {
		c.addWorker()
	}
	if nWorkers > 0 {
		for i := range c.servers {
			waitFor(t, 30*time.Second, fmt.Sprintf("%s sees %d healthy workers", c.servers[i].id, nWorkers), func() bool {
				cl, err := c.clusterView(i)
				return err == nil && healthyWorkers(cl) == nWorkers
			})
		}
	}
	return c
}

// addWorker starts one more worker with the cluster's key and returns its
// index. It does not wait for the servers to see it.
func (c *testCluster) addWorker() int {
	c.t.Helper()
	return c.addWorkerWithKey(c.token)
}

// addWorkerWithKey starts a worker that presents key (to get its
// certificate).
func (c *testCluster) addWorkerWithKey(key string) int {
	c.t.Helper()
	return c.addWorkerArgs("--token", key)
}

// addWorkerArgs starts a worker with extra arguments (its credential)
// and returns its index.
func (c *testCluster) addWorkerArgs(extra ...string) int {
	c.t.Helper()
	c.mu.Lock()
	i := len(c.workers)
	id := fmt.Sprintf("w%d", i+1)
	c.mu.Unlock()
	return c.addNamedWorker(id, extra...)
}

// addNamedWorker starts worker id (data in DIR/id) with extra arguments.
func (c *testCluster) addNamedWorker(id string, extra ...string) int {
	c.t.Helper()
	c.mu.Lock()
	i := len(c.workers)
	w := &clusterProc{id: id, bin: c.bin, args: append(c.workerArgs(id), extra...)}
	c.workers = append(c.workers, w)
	c.mu.Unlock()
	c.start(w, workerRPCLine)
	return i
}

func (c *testCluster) workerArgs(id string) []string {
	args := []string{"worker", "--servers", c.join, "--data", filepath.Join(c.dir, id), "--id", id, "--slots", "2"}
	if os.Geteuid() != 0 {
		args = append(args, "--insecure-no-sandbox")
	}
	return args
}

// failingWorker runs a worker that is expected to exit (refused), and
// returns how it ended; a worker still running after a minute is killed
// and reported with code -1.
func (c *testCluster) failingWorker(id string, extra ...string) result {
	c.t.Helper()
	return c.runBounded(time.Minute, nil, "", append(c.workerArgs(id), extra...)...)
}

// runBounded runs the binary with args (env added to the test's own, in
// dir when not ""), killing it at timeout; a killed run reports code -1.
func (c *testCluster) runBounded(timeout time.Duration, env []string, dir string, args ...string) result {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nimbusBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
		if ctx.Err() != nil {
			code = -1 // killed at the deadline
			se.WriteString(fmt.Sprintf("\n(cut off after %v)", timeout))
		}
	} else if err != nil {
		c.t.Errorf("nimbus %v: %v", args, err)
		code = -1
	}
	return result{code, so.String(), se.String()}
}

// start runs p and waits until it prints the line matching ready, whose
// first group is its address.
func (c *testCluster) start(p *clusterProc, ready *regexp.Regexp) {
	c.t.Helper()
	bin := p.bin
	if bin == "" {
		bin = nimbusBin
	}
	np, err := nodeproc.Start(exec.Command(bin, p.args...), ready, 60*time.Second)
	if err != nil {
		c.t.Fatalf("%s: %v", p.id, err)
	}
	c.mu.Lock()
	p.cmd, p.out, p.done, p.addr = np.Cmd, np.Out, np.Done, strings.TrimPrefix(np.Addr, "http://")
	c.mu.Unlock()
	c.t.Cleanup(func() {
		if err := np.Stop(30 * time.Second); err != nil {
			c.t.Errorf("%s: %v", p.id, err)
		}
	})
}

// waitHealthy waits until server i answers GET /healthz.
func (c *testCluster) waitHealthy(i int) {
	c.t.Helper()
	url := "http://" + c.servers[i].addr + "/healthz"
	waitFor(c.t, 30*time.Second, c.servers[i].id+" answers /healthz", func() bool {
		resp, err := shortHTTP.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// alive reports whether server i's process is running.
func (c *testCluster) alive(i int) bool {
	c.mu.Lock()
	done := c.servers[i].done
	c.mu.Unlock()
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// liveServers lists the indexes of the servers whose process runs.
func (c *testCluster) liveServers() []int {
	var out []int
	for i := range c.servers {
		if c.alive(i) {
			out = append(out, i)
		}
	}
	return out
}

// killServer kills server i with SIGKILL and waits until it is gone.
func (c *testCluster) killServer(i int) { c.kill(c.servers[i]) }

// killWorker kills worker i with SIGKILL and waits until it is gone.
func (c *testCluster) killWorker(i int) { c.kill(c.workers[i]) }

func (c *testCluster) kill(p *clusterProc) { c.stopWith(p, syscall.SIGKILL) }

// terminate stops p as a service manager does (SIGTERM) and waits until
// it has exited.
func (c *testCluster) terminate(p *clusterProc) { c.stopWith(p, syscall.SIGTERM) }

// stopWith sends p sig and waits until it has exited.
func (c *testCluster) stopWith(p *clusterProc, sig syscall.Signal) {
	c.t.Helper()
	c.mu.Lock()
	cmd, done := p.cmd, p.done
	c.mu.Unlock()
	cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(patience):
		c.t.Fatalf("%s still runs %v after %v", p.id, patience, sig)
	}
}

// restartServer starts server i again on the same data and ports and
// waits until it answers /healthz.
func (c *testCluster) restartServer(i int) {
	c.t.Helper()
	if c.alive(i) {
		c.t.Fatalf("restartServer: %s still runs", c.servers[i].id)
	}
	c.start(c.servers[i], apiLine)
	c.waitHealthy(i)
}

// restartWorker starts worker i again with the same ID, data and
// arguments after killWorker. It does not wait for the servers to see it.
func (c *testCluster) restartWorker(i int) {
	c.t.Helper()
	c.start(c.workers[i], workerRPCLine)
}

// serverIndex maps a server ID to its index, -1 if unknown.
func (c *testCluster) serverIndex(id string) int {
	for i, s := range c.servers {
		if s.id == id {
			return i
		}
	}
	return -1
}

// leader asks every live server for its view of the cluster and returns
// the index of the leader when all that answer name the same live server
// as leader, else -1.
func (c *testCluster) leader() int { return c.leaderAmong(c.liveServers()) }

// leaderAmong is leader asking only servers idx (a paused server would
// stall every poll until its HTTP timeout).
func (c *testCluster) leaderAmong(idx []int) int {
	leader := -1
	for _, i := range idx {
		cl, err := c.clusterView(i)
		if err != nil {
			return -1
		}
		l := -1
		for _, s := range cl.Servers {
			if s.Role == "leader" {
				l = c.serverIndex(s.ID)
			}
		}
		if l < 0 || !c.alive(l) || (leader >= 0 && l != leader) {
			return -1
		}
		leader = l
	}
	return leader
}

// shortHTTP is the client for polling: a dead server must not stall a poll.
var shortHTTP = &http.Client{Timeout: 3 * time.Second}

// clusterView is GET /v1/cluster on server i (what `nimbus cluster -o
// json` prints), without the cost of a CLI process per poll.
func (c *testCluster) clusterView(i int) (client.Cluster, error) {
	var cl client.Cluster
	req, err := http.NewRequest("GET", "http://"+c.servers[i].addr+"/v1/cluster", nil)
	if err != nil {
		return cl, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := shortHTTP.Do(req)
	if err != nil {
		return cl, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return cl, fmt.Errorf("GET /v1/cluster on %s: %s", c.servers[i].id, resp.Status)
	}
	return cl, json.NewDecoder(resp.Body).Decode(&cl)
}

func healthyWorkers(cl client.Cluster) int {
	n := 0
	for _, w := range cl.Workers {
		if w.Healthy {
			n++
		}
	}
	return n
}

// cli runs the nimbus CLI against server i with the cluster's key; the
// run is cut off after timeout.
func (c *testCluster) cli(i int, timeout time.Duration, args ...string) result {
	c.t.Helper()
	return c.cliWithKey(i, c.token, timeout, args...)
}

func (c *testCluster) cliWithKey(i int, key string, timeout time.Duration, args ...string) result {
	c.t.Helper()
	return c.runBounded(timeout, []string{"NIMBUS_URL=http://" + c.servers[i].addr, "NIMBUS_TOKEN=" + key}, c.dir, args...)
}

// mustCLI runs the CLI against server i and fails the test unless it
// exits with want.
func (c *testCluster) mustCLI(i, want int, args ...string) result {
	c.t.Helper()
	r := c.cli(i, time.Minute, args...)
	if r.code != want {
		c.t.Fatalf("nimbus %s on %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), c.servers[i].id, r.code, want, r.stdout, r.stderr)
	}
	return r
}

// getFunction is `nimbus get NAME -o json` on server i.
func (c *testCluster) getFunction(i int, name string) (client.Function, bool) {
	c.t.Helper()
	var fn client.Function
	r := c.cli(i, 20*time.Second, "get", name, "-o", "json")
	return fn, r.code == 0 && json.Unmarshal([]byte(r.stdout), &fn) == nil
}

// listFunctions is `nimbus ls -o json` on server i, as name → revision.
func (c *testCluster) listFunctions(i int) (map[string]int64, bool) {
	c.t.Helper()
	var fns []client.Function
	r := c.cli(i, 20*time.Second, "ls", "-o", "json")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &fns) != nil {
		return nil, false
	}
	out := map[string]int64{}
	for _, f := range fns {
		out[f.Name] = f.Revision
	}
	return out, true
}

// logs returns every process's output, for a failure message.
func (c *testCluster) logs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	for _, p := range append(append([]*clusterProc{}, c.servers...), c.workers...) {
		if p.out != nil {
			fmt.Fprintf(&b, "==== %s ====\n%s\n", p.id, p.out.String())
		}
	}
	return b.String()
}

// dumpLogsOnFailure prints every process's output if the test failed.
func (c *testCluster) dumpLogsOnFailure() {
	c.t.Cleanup(func() {
		if c.t.Failed() {
			c.t.Log(c.logs())
		}
	})
}

// writeFunction writes a function directory with main.py and returns it.
func writeFunction(t *testing.T, dir, name, code string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "main.py"), []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
