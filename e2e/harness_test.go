// Package e2e tests Nimbus as a user meets it: the real binary, started as
// `nimbus dev` on a free port with a fresh data directory, driven through
// the CLI and the REST API.
//
// # Tests run side by side
//
// A test that shares nothing with the others calls parallel(t) as its
// first statement; go test then runs it beside the other such tests
// (scripts/test sets how many at once with -parallel). A test shares
// nothing when:
//
//   - it starts its own nodes (startDev, sandboxNode, startCluster) on
//     :0 or freePort ports with t.TempDir() data: each node's sandboxes,
//     cgroups and shells are named after its data directory and worker
//     pid, so nodes never sweep or count each other's;
//   - it looks only at its own node's processes and sandboxes
//     (sandboxesOf(n), newSandboxes, n.idleShell), never at host-wide
//     counts (every process of a uid, every cgroup), and counts nothing
//     that its node's pool refills in the background (newSandboxes
//     leaves unassigned pre-started sandboxes out);
//   - it waits with waitFor and a generous deadline (patience) instead
//     of fixed sleeps, since its processes share the cores.
//
// A test stays serial (no parallel(t)) when it changes the process
// environment (t.Setenv, which go test refuses in parallel tests), when
// it deliberately exhausts the machine (the resource bombs), or when
// what it checks depends on prompt scheduling (a schedule firing every
// second, a worker declared dead after 2 s without heartbeats). Serial
// tests run first, alone; the parallel ones then run together.
//
// NIMBUS_E2E_SERIAL=1 makes parallel(t) do nothing, to run every test
// alone when chasing a failure.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"nimbus/internal/nodeproc"
	"nimbus/internal/waitfor"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var nimbusBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nimbus-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	nimbusBin = filepath.Join(dir, "nimbus")
	build := exec.Command("go", "build", "-o", nimbusBin, "../cmd/nimbus")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building nimbus:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// parallel marks t as one that shares nothing with the other tests (see
// the package comment) so that it runs beside them, unless
// NIMBUS_E2E_SERIAL is set. Call it first, before starting anything.
func parallel(t *testing.T) {
	if os.Getenv("NIMBUS_E2E_SERIAL") == "" {
		t.Parallel()
	}
}

// devNode is a running `nimbus dev` process.
type devNode struct {
	t     *testing.T
	data  string
	url   string
	token string
	cmd   *exec.Cmd
	out   *syncBuffer // stdout and stderr of the process
	done  chan struct{}
	http  *http.Client // the harness's own requests (health polling, do)
	proc  *nodeproc.Proc
}

// startDev starts `nimbus dev` on a free port with data in dir and waits
// until it answers. The process is stopped when the test ends.
func startDev(t *testing.T, data string, extra ...string) *devNode {
	t.Helper()
	return startDevWith(t, http.DefaultClient, data, extra...)
}

// startDevWith is startDev with the HTTP client the harness itself uses
// to reach the node (a TLS test's client trusts its certificate; tests
// run side by side, so none changes http.DefaultTransport).
func startDevWith(t *testing.T, hc *http.Client, data string, extra ...string) *devNode {
	t.Helper()
	d, err := nodeproc.StartDev(nimbusBin, data, extra...)
	if err != nil {
		t.Fatal(err)
	}
	n := &devNode{t: t, data: data, url: d.URL, token: d.Token, cmd: d.Cmd, out: d.Out, done: d.Done, http: hc, proc: d.Proc}
	t.Cleanup(func() { n.stop() })
	waitFor(t, 30*time.Second, "healthz answers", func() bool {
		resp, err := n.http.Get(n.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return n
}

// stop interrupts the process as Ctrl-C does and waits for it to exit.
func (n *devNode) stop() {
	if err := n.proc.Stop(30 * time.Second); err != nil {
		n.t.Error(err)
	}
}

// result is what one CLI run produced.
type result struct {
	code           int
	stdout, stderr string
}

// cli runs the nimbus CLI against the node.
func (n *devNode) cli(stdin string, args ...string) result {
	n.t.Helper()
	return n.cliIn("", stdin, args...)
}

// cliIn runs the nimbus CLI in directory dir ("" for the test's own).
func (n *devNode) cliIn(dir, stdin string, args ...string) result {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nimbusBin, args...)
	cmd.Env = append(os.Environ(), "NIMBUS_URL="+n.url, "NIMBUS_TOKEN="+n.token)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		n.t.Fatalf("nimbus %v: %v", args, err)
	}
	return result{code, so.String(), se.String()}
}

// mustCLI runs the CLI and fails the test unless it exits with want.
func (n *devNode) mustCLI(want int, args ...string) result {
	n.t.Helper()
	r := n.cli("", args...)
	if r.code != want {
		n.t.Fatalf("nimbus %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

// do sends an API request with the admin token and returns status and body.
func (n *devNode) do(method, path, contentType string, body io.Reader) (int, http.Header, []byte) {
	n.t.Helper()
	req, err := http.NewRequest(method, n.url+path, body)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+n.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := n.http.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// patience is the deadline of a wait for something that starts, stops or
// runs processes: a node, a sandbox, a cold start, an invocation, a
// retry. On a busy 2-core machine running tests side by side these take
// seconds; the deadline only bounds how long a test that fails takes, so
// it is generous. (Waits that poll until some time has passed use their
// own, shorter bound.)
const patience = 2 * time.Minute

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	waitfor.Until(t, timeout, what, cond)
}

// syncBuffer is a buffer that several goroutines may write.
type syncBuffer = nodeproc.Buffer
