package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"nimbus/internal/auth"
	"nimbus/internal/fsm"
	"nimbus/internal/placement"
	"nimbus/internal/service"
	"nimbus/internal/state"
	"nimbus/internal/worker"
	"nimbus/pkg/client"
)

// busyTarget is a ready worker with a fixed load.
type busyTarget struct{ id string }

func (b busyTarget) Invoke(context.Context, worker.Request) (worker.Result, error) {
	return worker.Result{}, worker.ErrNoCapacity
}
func (b busyTarget) Retire(string)              {}
func (b busyTarget) HasWarm(string, int64) bool { return false }
func (b busyTarget) Runtimes() []string         { return nil }
func (b busyTarget) Status() client.Worker {
	return client.Worker{ID: b.id, Slots: 4, InUse: 4, Healthy: true, State: placement.StateReady}
}

func TestTheScalingSignalIsAnAdminRouteAndAMetric(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := state.New()
	cp := &fakeControl{store: s, Writer: fsm.Direct(fsm.New(s, log))}
	g := New(Config{Control: cp, Registry: prometheus.NewRegistry(), Log: log, APIAddr: "test",
		Placer: placement.New(nil, busyTarget{"a"}, busyTarget{"b"}), Scaling: service.ScalingPolicy{MaxWorkers: 10}})
	t.Cleanup(g.Close)
	admin, err := auth.CreateKey(context.Background(), cp, auth.RoleAdmin, "test")
	if err != nil {
		t.Fatal(err)
	}
	viewer, err := auth.CreateKey(context.Background(), cp, auth.RoleViewer, "test")
	if err != nil {
		t.Fatal(err)
	}
	a := &testAPI{t: t, g: g, cp: cp, admin: admin, close: g.Close}

	a.must(403, req{method: "GET", path: "/v1/scaling", key: viewer})
	var sc client.Scaling
	if err := json.Unmarshal(a.must(200, req{method: "GET", path: "/v1/scaling", key: admin}).Body.Bytes(), &sc); err != nil {
		t.Fatal(err)
	}
	// 8 in use of 8 slots: 8 / (4 × 0.7) = 2.86, so 3 workers.
	if sc.Workers.Current != 2 || sc.Workers.Desired != 3 || sc.Workers.Max != 10 || sc.Load.Slots != 8 || sc.Load.InUse != 8 || sc.Load.PSISomeAvg10 != nil {
		t.Fatalf("scaling = %+v", sc)
	}
	body := a.must(200, req{method: "GET", path: "/metrics", key: admin}).Body.String()
	for _, line := range []string{"nimbus_scaling_desired_workers 3", "nimbus_scaling_current_workers 2", "nimbus_scaling_queue_depth 0"} {
		if !strings.Contains(body, "\n"+line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
