package node

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/controlplane"
	"nimbus/internal/gateway"
	"nimbus/internal/waitfor"
)

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b
}

// A server's API answers from just after it listens, before its state is
// loaded: "starting" until the gateway is handed over, then the
// gateway's answers.
func TestTheAPIAnswersWhileTheStateLoads(t *testing.T) {
	p := newParts(Options{DataDir: t.TempDir(), Listen: "127.0.0.1:0"}, quiet)
	open, handOver := p.serveAPIEarly(true)
	addr := make(chan string, 1)
	loading := make(chan struct{})
	state := step{
		// Stands for the Raft state's loading: it waits until the test
		// lets it go, then starts a one-node control plane and its gateway.
		start: func(context.Context) error {
			addr <- p.addr
			<-loading
			cp, err := controlplane.Start(controlplane.Config{NodeID: "n1", DataDir: p.opts.DataDir, Bootstrap: true, SingleNode: true, Log: quiet, RaftLog: io.Discard})
			if err != nil {
				return err
			}
			p.cp = cp
			p.gw = gateway.New(gateway.Config{Control: cp, Registry: prometheus.NewRegistry(), Log: quiet, APIAddr: p.addr, Disk: cp.Disk()})
			return nil
		},
		stop: func(context.Context) error {
			p.gw.Close()
			return p.cp.Shutdown()
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.l.run(ctx, quiet, p.apiListener(), open, state, handOver) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the node ended with %v", err)
		}
	}()
	base := "http://" + <-addr

	code, body := get(t, base+"/readyz")
	var ready struct {
		Status  string   `json:"status"`
		Reasons []string `json:"reasons"`
	}
	if err := json.Unmarshal(body, &ready); err != nil || code != http.StatusServiceUnavailable || len(ready.Reasons) != 1 ||
		ready.Reasons[0] != gateway.ErrStarting.Error() {
		t.Errorf("/readyz while the state loads = %d %s, want 503 starting", code, body)
	}
	var health struct {
		Status string `json:"status"`
	}
	code, body = get(t, base+"/healthz")
	if err := json.Unmarshal(body, &health); err != nil || code != http.StatusServiceUnavailable || health.Status != "starting" {
		t.Errorf("/healthz while the state loads = %d %s, want 503 starting", code, body)
	}
	// A node looking for the cluster's servers is told to come back.
	if _, err := discover(context.Background(), strings.TrimPrefix(base, "http://"), nil); err == nil || !strings.Contains(err.Error(), "is starting") {
		t.Errorf("discover of a starting server: %v, want it is starting", err)
	}

	close(loading)
	waitfor.Until(t, 30*time.Second, "/readyz 200 once the state is loaded", func() bool {
		code, _ := get(t, base+"/readyz")
		return code == http.StatusOK
	})
	code, body = get(t, base+"/healthz")
	if err := json.Unmarshal(body, &health); err != nil || code != http.StatusOK || health.Status != "ok" {
		t.Errorf("/healthz once the state is loaded = %d %s, want the gateway's 200 ok", code, body)
	}
}
