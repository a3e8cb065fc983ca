package placement

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"nimbus/internal/model"
	"nimbus/internal/rpc/rpcpb"
)

// thousandWorkers is a registry that has heard from 1,000 workers, each
// with 20 warm revisions, as bench/scale runs them.
func thousandWorkers(tb testing.TB) *Registry {
	tb.Helper()
	r := NewRegistry(nil, time.Minute, time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 1000 {
		r.Heartbeat(heartbeatOf(i))
	}
	return r
}

func heartbeatOf(i int) *rpcpb.WorkerHeartbeat {
	var warm []string
	for k := range 20 {
		warm = append(warm, fmt.Sprintf("default/f%06d@1", i*20+k))
	}
	return &rpcpb.WorkerHeartbeat{WorkerId: fmt.Sprintf("w%04d", i), Address: fmt.Sprintf("127.0.0.1:%d", 20000+i),
		Slots: 2, Runtimes: []string{"python3.11"}, WarmRevisions: warm, PerServer: true}
}

// BenchmarkHeartbeatAmongAThousandWorkers is one heartbeat's handling
// on a server that knows 1,000 workers.
func BenchmarkHeartbeatAmongAThousandWorkers(b *testing.B) {
	r := thousandWorkers(b)
	hbs := make([]*rpcpb.WorkerHeartbeat, 1000)
	for i := range hbs {
		hbs[i] = heartbeatOf(i)
	}
	i := 0
	for b.Loop() {
		r.Heartbeat(hbs[i%1000])
		i++
	}
}

// BenchmarkPickAmongAThousandWorkers is placement's ranking of 1,000
// workers for one invocation.
func BenchmarkPickAmongAThousandWorkers(b *testing.B) {
	p := New(thousandWorkers(b))
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: "f000123", Runtime: "python3.11"}, Namespace: "default", Revision: 1}
	for b.Loop() {
		if len(p.rank(fn)) != 1000 {
			b.Fatal("not every worker was ranked")
		}
	}
}

func TestTheWarmWorkerIsFirstAmongAThousand(t *testing.T) {
	p := New(thousandWorkers(t))
	fn := model.Function{FunctionConfig: model.FunctionConfig{Name: "f012345", Runtime: "python3.11"}, Namespace: "default", Revision: 1}
	order := p.rank(fn)
	if len(order) != 1000 {
		t.Fatalf("%d workers ranked, want 1000", len(order))
	}
	if id := order[0].Status().ID; id != "w0617" { // 12345 / 20
		t.Fatalf("first is %s, want w0617, the one with an idle instance", id)
	}
	if id := order[1].Status().ID; id != "w0000" {
		t.Fatalf("second is %s, want w0000 (all equally loaded: by ID)", id)
	}
}
