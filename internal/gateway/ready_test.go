package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/auth"
	"nimbus/internal/controlplane"
	"nimbus/internal/waitfor"
	"nimbus/pkg/client"
)

// nodeAPI is a gateway over a real one-node control plane (Raft on disk,
// in-memory transport).
type nodeAPI struct {
	t     *testing.T
	g     *Gateway
	cp    *controlplane.Node
	reg   *prometheus.Registry
	admin string // an admin key, when the node has a leader
}

// newNodeAPI starts a control plane in dir and a gateway over it. With
// bootstrap the node elects itself and an admin key is made; without, it
// never has a leader.
func newNodeAPI(t *testing.T, dir string, bootstrap bool) *nodeAPI {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cp, err := controlplane.Start(controlplane.Config{NodeID: "n1", DataDir: dir, Bootstrap: bootstrap, SingleNode: true, Log: log, RaftLog: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.Shutdown() })
	reg := prometheus.NewRegistry()
	g := New(Config{Control: cp, Registry: reg, Log: log, APIAddr: "test", Disk: cp.Disk()})
	t.Cleanup(g.Close)
	a := &nodeAPI{t: t, g: g, cp: cp, reg: reg}
	if bootstrap {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cp.WaitLeader(ctx); err != nil {
			t.Fatal(err)
		}
		if a.admin, err = auth.CreateKey(ctx, cp, auth.RoleAdmin, "test"); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func (a *nodeAPI) do(method, path, body string) *httptest.ResponseRecorder {
	hr := httptest.NewRequest(method, path, strings.NewReader(body))
	if a.admin != "" {
		hr.Header.Set("Authorization", "Bearer "+a.admin)
	}
	if body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	a.g.ServeHTTP(w, hr)
	return w
}

// readyz returns /readyz's status and reasons.
func (a *nodeAPI) readyz() (int, []string) {
	a.t.Helper()
	w := a.do("GET", "/readyz", "")
	var body readiness
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		a.t.Fatalf("/readyz: %d %q is not JSON", w.Code, w.Body.String())
	}
	return w.Code, body.Reasons
}

// smallTmpfs mounts a tmpfs of size (mount's size=) on a new directory
// and unmounts it when the test ends. It skips the test when not root.
func smallTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until its file system is full.
func fill(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return
		}
	}
}

func TestReadyzTellsWhyTheServerIsNotReady(t *testing.T) {
	t.Run("a node with a leader and a writable data directory is ready", func(t *testing.T) {
		a := newNodeAPI(t, t.TempDir(), true)
		if code, reasons := a.readyz(); code != 200 || len(reasons) != 0 {
			t.Fatalf("/readyz: %d %q, want 200 and no reasons", code, reasons)
		}
	})
	t.Run("a node without a leader is not ready, yet alive", func(t *testing.T) {
		a := newNodeAPI(t, t.TempDir(), false)
		code, reasons := a.readyz()
		if code != 503 || !strings.Contains(strings.Join(reasons, "; "), "no leader") {
			t.Fatalf("/readyz: %d %q, want 503 naming no leader", code, reasons)
		}
		if w := a.do("GET", "/healthz", ""); w.Code != 200 {
			t.Fatalf("/healthz of a node without a leader: %d, want 200 (liveness)", w.Code)
		}
	})
	t.Run("a node whose data directory is full is not ready", func(t *testing.T) {
		dir := smallTmpfs(t, "4m")
		a := newNodeAPI(t, dir, true)
		fill(t, dir)
		code, reasons := a.readyz()
		joined := strings.Join(reasons, "; ")
		if code != 503 || !strings.Contains(joined, "data directory is full") {
			t.Fatalf("/readyz: %d %q, want 503 naming the full data directory", code, reasons)
		}
		if strings.Contains(joined, dir) {
			t.Fatalf("/readyz names the host path %s: %q", dir, joined)
		}
		if got := metricValue(t, a.reg, "nimbus_data_dir_writable"); got != 0 {
			t.Fatalf("nimbus_data_dir_writable = %v on a full disk, want 0", got)
		}
	})
}

// A write that fails for a full disk answers 507 with a message that
// names no host path, is counted, and no write answers 500.
func TestAFullDiskAnswers507WithoutHostPaths(t *testing.T) {
	dir := smallTmpfs(t, "4m")
	a := newNodeAPI(t, dir, true)
	fill(t, dir)
	var full *httptest.ResponseRecorder
	deadline := time.Now().Add(time.Minute)
	for i := 0; full == nil && time.Now().Before(deadline); i++ {
		// Bolt reuses the pages it freed before it needs new ones: write
		// until a write needs a page the disk does not have.
		w := a.do("POST", "/v1/keys", `{"role": "viewer", "note": "`+strings.Repeat("x", 2000)+`"}`)
		switch w.Code {
		case http.StatusCreated:
		case http.StatusInsufficientStorage:
			full = w
		case http.StatusServiceUnavailable: // the leader stepped down after the failed write; it is elected again
			if w.Header().Get("Retry-After") == "" {
				t.Fatalf("503 without Retry-After: %s", w.Body.String())
			}
		default:
			t.Fatalf("write %d on a full disk: %d %s, want 201, 507 or 503", i, w.Code, w.Body.String())
		}
	}
	if full == nil {
		t.Fatal("no write failed for the full disk within a minute")
	}
	var body client.ErrorBody
	if err := json.Unmarshal(full.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body.Error.Code != "InsufficientStorage" || !strings.Contains(body.Error.Message, "data directory is full") || strings.Contains(body.Error.Message, "/") {
		t.Fatalf("507 body %+v, want InsufficientStorage saying the data directory is full, without a path", body.Error)
	}
	if got := metricValue(t, a.reg, "nimbus_data_dir_full_errors_total"); got < 1 {
		t.Fatalf("nimbus_data_dir_full_errors_total = %v after a full-disk write, want at least 1", got)
	}

	// Once there is room again, writes succeed and the node is ready.
	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	var w *httptest.ResponseRecorder
	if !waitfor.Poll(time.Minute, func() bool { w = a.do("PUT", "/v1/namespaces/after", `{}`); return w.Code < 300 }) {
		t.Fatalf("a write after the disk has room again: %d %s", w.Code, w.Body.String())
	}
	if code, reasons := a.readyz(); code != 200 {
		t.Fatalf("/readyz once the disk has room: %d %q", code, reasons)
	}
}

// metricValue gathers reg and returns the value of the series name (a
// gauge or counter without labels).
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) != 1 {
			continue
		}
		m := mf.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue()
		}
		return m.GetCounter().GetValue()
	}
	t.Fatalf("no series %s", name)
	return 0
}
