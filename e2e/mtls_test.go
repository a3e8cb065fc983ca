package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"nimbus/internal/pki"
	"nimbus/internal/rpc/rpcpb"
	"nimbus/pkg/client"
)

// TestMTLSClusterSharesOneCAAndAJoinTokenWorkerRuns: three servers that
// bootstrap together end up with one cluster CA; a worker that presents
// a join token gets a certificate of it (and no CA key), registers with
// every server over mutual TLS and runs an invocation.
func TestMTLSClusterSharesOneCAAndAJoinTokenWorkerRuns(t *testing.T) {
	parallel(t)
	c := startCluster(t, 3, 0)
	var fingerprint string
	for _, s := range c.servers {
		id, err := pki.Load(filepath.Join(c.dir, s.id, "pki"))
		if err != nil {
			t.Fatal(err)
		}
		role, name := id.Name()
		if !id.Ready() || role != pki.RoleServer || name != s.id || id.CA().Key == nil {
			t.Fatalf("%s: certificate of %s %s (ready %v, CA key %v)", s.id, role, name, id.Ready(), id.CA() != nil && id.CA().Key != nil)
		}
		if fingerprint == "" {
			fingerprint = id.CA().Fingerprint()
		} else if id.CA().Fingerprint() != fingerprint {
			t.Fatalf("%s has CA %s, another server %s: the cluster must share one", s.id, id.CA().Fingerprint(), fingerprint)
		}
	}

	r := c.mustCLI(0, 0, "cluster", "token", "create", "--role", "worker", "--ttl", "10m")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	token := lines[len(lines)-1]
	w := c.addNamedWorker("wj", "--join-token", token)
	for i := range c.servers {
		waitFor(t, 30*time.Second, c.servers[i].id+" sees the joined worker healthy", func() bool {
			cl, err := c.clusterView(i)
			return err == nil && healthyWorkers(cl) == 1
		})
	}
	id, err := pki.Load(filepath.Join(c.dir, "wj", "pki"))
	if err != nil {
		t.Fatal(err)
	}
	if role, name := id.Name(); role != pki.RoleWorker || name != "wj" || id.CA().Fingerprint() != fingerprint || id.CA().Key != nil {
		t.Errorf("worker certificate: %s %s, CA %s (key %v)", role, name, id.CA().Fingerprint(), id.CA().Key != nil)
	}
	if _, err := os.Stat(filepath.Join(c.dir, "wj", "pki", "ca-key.pem")); err == nil {
		t.Error("the worker holds the CA key")
	}

	fnDir := writeFunction(t, t.TempDir(), "secure", quickHandler)
	c.mustCLI(1, 0, "deploy", fnDir)
	for i := range c.servers {
		r := c.mustCLI(i, 0, "invoke", "secure", "--data", fmt.Sprintf(`{"v": %d}`, 40+i))
		if !strings.Contains(r.stdout, fmt.Sprintf(`"v": %d`, 40+i)) {
			t.Errorf("invoke through %s answered %q", c.servers[i].id, r.stdout)
		}
	}

	// Restarted without any credential, the worker uses the certificate it
	// kept.
	c.kill(c.workers[w])
	c.workers[w].args = c.workerArgs("wj")
	c.start(c.workers[w], workerRPCLine)
	c.mu.Lock()
	newAddr := c.workers[w].addr
	c.mu.Unlock()
	waitFor(t, 30*time.Second, "s3 sees the restarted worker", func() bool {
		cl, err := c.clusterView(2)
		if err != nil {
			return false
		}
		for _, wk := range cl.Workers {
			if wk.ID == "wj" && wk.Healthy && wk.Address == newAddr {
				return true
			}
		}
		return false
	})
	c.mustCLI(2, 0, "invoke", "secure", "--data", `{"v": 99}`)
}

// TestMTLSRefusesUnknownAndExpiredJoinTokens: a worker that presents a
// token the cluster never made, or one past its time, is refused its
// certificate and exits saying why.
func TestMTLSRefusesUnknownAndExpiredJoinTokens(t *testing.T) {
	parallel(t)
	c := startCluster(t, 1, 0)
	r := c.failingWorker("wu", "--join-token", newClusterToken(t))
	if r.code != 3 || !strings.Contains(r.stderr, "unknown join token") {
		t.Errorf("unknown token: exit %d, want 3 naming an unknown join token\n%s", r.code, r.stderr)
	}

	r = c.mustCLI(0, 0, "cluster", "token", "create", "--ttl", "1s", "-o", "json")
	var k client.Key
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil || k.Secret == "" || k.Role != "join-worker" {
		t.Fatalf("token create -o json: %q (%v)", r.stdout, err)
	}
	waitFor(t, 10*time.Second, "the token expires", func() bool { return time.Now().After(k.ExpiresAt) })
	r = c.failingWorker("we", "--join-token", k.Secret)
	if r.code != 3 || !strings.Contains(r.stderr, "expired") {
		t.Errorf("expired token: exit %d, want 3 saying it expired\n%s", r.code, r.stderr)
	}

	// A worker join token does not make a server.
	r = c.mustCLI(0, 0, "cluster", "token", "create", "--role", "worker")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r := c.cli(0, 20*time.Second, "keys", "ls"); !strings.Contains(r.stdout, "join-worker") {
		t.Errorf("keys ls does not list the join tokens:\n%s", r.stdout)
	}
	// A join token opens no API route.
	if r := c.cliWithKey(0, lines[len(lines)-1], 20*time.Second, "ls"); r.code != 3 {
		t.Errorf("ls with a join token: exit %d, want 3", r.code)
	}
	cl, err := c.clusterView(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Workers) != 0 {
		t.Errorf("refused workers are in the cluster: %+v", cl.Workers)
	}
}

// TestMTLSWorkerOfAnotherCAIsRefused: a worker whose certificate was
// signed by a CA that is not the cluster's gets no further than the TLS
// handshake, and says so in its log.
func TestMTLSWorkerOfAnotherCAIsRefused(t *testing.T) {
	parallel(t)
	c := startCluster(t, 1, 0)
	foreign, err := pki.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	id, err := pki.Load(filepath.Join(c.dir, "wf", "pki"))
	if err != nil {
		t.Fatal(err)
	}
	if err := id.IssueSelf(foreign, pki.RoleWorker, "wf", []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	w := c.addNamedWorker("wf") // no credential: it has a certificate
	waitFor(t, 30*time.Second, "the worker logs the refused handshake", func() bool {
		out := c.output(c.workers[w])
		return strings.Contains(out, "heartbeat failed") && strings.Contains(out, "certificate")
	})
	waitFor(t, 30*time.Second, "the server logs the refused connection", func() bool {
		return strings.Contains(c.output(c.servers[0]), "internal connection refused")
	})
	cl, err := c.clusterView(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, wk := range cl.Workers {
		if wk.ID == "wf" {
			t.Errorf("the worker of another CA registered: %+v", wk)
		}
	}
}

// TestMTLSInternalPortRefusesPlainClients: the internal port (Raft, the
// Control service) takes only mutual TLS with a certificate of the
// cluster CA, and the API port no longer serves the internal RPC.
func TestMTLSInternalPortRefusesPlainClients(t *testing.T) {
	parallel(t)
	c := startCluster(t, 1, 0)
	internal := c.internalAddr(0)
	heartbeat := func(addr string, creds credentials.TransportCredentials) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = rpcpb.NewControlClient(conn).Heartbeat(ctx, &rpcpb.WorkerHeartbeat{WorkerId: "intruder", Address: "127.0.0.1:1", Slots: 4})
		return err
	}
	if err := heartbeat(internal, insecure.NewCredentials()); err == nil {
		t.Error("a cleartext heartbeat to the internal port was accepted")
	}
	if err := heartbeat(internal, credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})); err == nil {
		t.Error("a heartbeat over TLS without a client certificate was accepted")
	}
	if err := heartbeat(c.servers[0].addr, insecure.NewCredentials()); err == nil {
		t.Error("the API port served the internal RPC")
	}
	// Raft's protocol without a certificate.
	if conn, err := tls.Dial("tcp", internal, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{pki.ProtoRaft}}); err == nil {
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write([]byte{0})
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
		if err == nil {
			t.Error("a Raft connection without a certificate was answered")
		}
	}
	// Plain HTTP.
	conn, err := net.DialTimeout("tcp", internal, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	b, _ := io.ReadAll(conn)
	conn.Close()
	if strings.Contains(string(b), "200 OK") {
		t.Errorf("the internal port answered plain HTTP: %q", b)
	}
	cl, err := c.clusterView(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(cl.Workers) != 0 {
		t.Errorf("an intruder registered: %+v", cl.Workers)
	}
}

// internalAddr reads server i's internal address from its /healthz.
func (c *testCluster) internalAddr(i int) string {
	c.t.Helper()
	resp, err := shortHTTP.Get("http://" + c.servers[i].addr + "/healthz")
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct {
		Server struct {
			Internal string `json:"internal"`
		} `json:"server"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.Server.Internal == "" {
		c.t.Fatalf("healthz of %s names no internal address (%v)", c.servers[i].id, err)
	}
	return h.Server.Internal
}

// output is what process p has printed so far.
func (c *testCluster) output(p *clusterProc) string {
	c.mu.Lock()
	out := p.out
	c.mu.Unlock()
	return out.String()
}

// TestMTLSServerJoinsWithAServerToken: a new server with a server join
// token (and no bootstrap key) gets its certificate and the CA's key from
// a member, joins the Raft group over mutual TLS and serves the API.
func TestMTLSServerJoinsWithAServerToken(t *testing.T) {
	parallel(t)
	c := startCluster(t, 1, 0)
	r := c.mustCLI(0, 0, "cluster", "token", "create", "--role", "server", "--ttl", "10m")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	api := freePort(t)
	s := &clusterProc{id: "s2", args: []string{"server", "--node-id", "s2", "--data", filepath.Join(c.dir, "s2"),
		"--listen", api, "--raft", freePort(t), "--join", c.servers[0].addr, "--join-token", lines[len(lines)-1]}}
	c.mu.Lock()
	c.servers = append(c.servers, s)
	c.mu.Unlock()
	c.start(s, apiLine)
	c.waitHealthy(1)
	waitFor(t, 30*time.Second, "both servers see two healthy servers", func() bool {
		for i := range c.servers {
			cl, err := c.clusterView(i)
			if err != nil || len(cl.Servers) != 2 {
				return false
			}
			for _, s := range cl.Servers {
				if !s.Healthy {
					return false
				}
			}
		}
		return true
	})
	var fps []string
	for _, id := range []string{"s1", "s2"} {
		ident, err := pki.Load(filepath.Join(c.dir, id, "pki"))
		if err != nil || ident.CA() == nil || ident.CA().Key == nil {
			t.Fatalf("%s: no CA with its key (%v)", id, err)
		}
		fps = append(fps, ident.CA().Fingerprint())
	}
	if fps[0] != fps[1] {
		t.Errorf("the servers have two CAs: %v", fps)
	}
	// A write through the new server is forwarded to the leader over
	// mutual TLS.
	c.mustCLI(1, 0, "keys", "create", "--role", "viewer", "--note", "made-through-s2")
	waitFor(t, patience, "the key made through s2 is on s1", func() bool {
		r := c.cli(0, 20*time.Second, "keys", "ls")
		return strings.Contains(r.stdout, "made-through-s2")
	})
}
